"""SQLite persistence for events, items and profile versions, inside the store directory.

Each write is one transaction, so a killed process leaves either the whole batch or none of it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock

from tasteprint.errors import StoreDamagedError
from tasteprint.models import Event, Item

from .profiles import ProfileTables
from .responses import ResponseCache
from .sessions import SessionTable
from .tokens import TokenTable

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    rating REAL,
    text TEXT,
    platform TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, timestamp);
CREATE INDEX IF NOT EXISTS events_item ON events(item_id);
-- Stores written before demographics were dropped held them here, unread; remove them.
DROP TABLE IF EXISTS users;
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    attributes TEXT NOT NULL,
    platform TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (user_id, version)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_cache (
    request_key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    user_id TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    completion TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_cache_user ON llm_cache(user_id);
CREATE TABLE IF NOT EXISTS stale_profiles (user_id TEXT PRIMARY KEY);
-- What each person stated (a JSON list of ProfileEdit): one row a user, the truth every profile version copies.
CREATE TABLE IF NOT EXISTS profile_edits (user_id TEXT PRIMARY KEY, body TEXT NOT NULL);
-- Per-user access tokens of the HTTP service: a SHA-256 hash each, never the token.
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- The service's chat sessions: what each showed and the constraints it keeps (JSON), per user.
CREATE TABLE IF NOT EXISTS chat_sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS identities (
    platform TEXT NOT NULL,
    platform_user_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    PRIMARY KEY (platform, platform_user_id)
);
"""


def event_key(event: Event) -> str:
    """Identity of an event for exact-duplicate removal: every field, hashed."""
    return hashlib.sha1(event.model_dump_json().encode()).hexdigest()


class Database:
    """Thin wrapper over one SQLite file; safe for several readers and one writer (WAL mode).

    Event order everywhere is (timestamp, rowid): equal timestamps keep the order the events were
    stored in, which is file order. Leave-last-out splits depend on this tie-break.

    Attributes:
        profiles: the profile versions and which are stale.
        responses: the LLM response cache.
        tokens: the HTTP service's access tokens (hashes only).
        sessions: the HTTP service's chat sessions.
    """

    def __init__(self, store: Path):
        store.mkdir(parents=True, exist_ok=True)
        self.path = store / "tasteprint.sqlite"
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        # Switching a new file to WAL fails at once with "database is locked", without waiting out the
        # busy timeout, when another process is switching it too; so the first open is serialised.
        with FileLock(str(store / "sqlite.lock")):
            try:
                self.conn.executescript(SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise StoreDamagedError(
                    f"the store's database {self.path} is damaged ({exc})",
                    hint="restore a backup (tasteprint backup) or ingest the data again into a new store",
                ) from exc
        self.profiles = ProfileTables(self)
        self.responses = ResponseCache(self)
        self.tokens = TokenTable(self)
        self.sessions = SessionTable(self)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the file, opened on first use. SQLite connections must not be
        shared between threads; one each lets concurrent profiling (a worker pool) read and write the
        store, with WAL serialising the writers."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)  # close() may run on another thread
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        with self._opened_lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()

    # -- writes -------------------------------------------------------------------------------

    def add_events(self, events: Iterable[Event]) -> tuple[int, int]:
        """Insert events, ignoring exact duplicates. Returns (inserted, duplicates)."""
        events = list(events)
        with self.conn:
            inserted = self._insert_events(events)
        self._bump_data_version()
        return inserted, len(events) - inserted

    def _insert_events(self, events: list[Event]) -> int:
        """Insert inside the caller's transaction; profiled users who get new events become stale."""
        rows = [(event_key(e), e.user_id, e.item_id, e.kind, e.timestamp, e.rating, e.text, e.platform) for e in events]
        before = self.conn.total_changes
        (last_row,) = self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()
        self.conn.executemany("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?)", rows)
        inserted = self.conn.total_changes - before
        self.conn.execute(
            "INSERT OR IGNORE INTO stale_profiles SELECT DISTINCT user_id FROM events "
            "WHERE rowid > ? AND user_id IN (SELECT user_id FROM profiles)",
            (last_row,),
        )
        return inserted

    def link_identities(self, links: dict[tuple[str, str], str]) -> int:
        """Record (platform, platform user id) -> person id links and move already stored events of
        those accounts to the person, in one transaction. The accounts' own profiles and cached
        responses go: the person's merged profile replaces them. Returns how many events moved."""
        moved = 0
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO identities VALUES (?,?,?)",
                [(platform, account, person) for (platform, account), person in links.items()],
            )
            for (platform, account), person in links.items():
                if account == person:
                    continue
                rows = self.conn.execute(
                    "SELECT user_id, item_id, kind, timestamp, rating, text, platform FROM events "
                    "WHERE user_id=? AND platform=?",
                    (account, platform),
                ).fetchall()
                if not rows:
                    continue
                self.conn.execute("DELETE FROM events WHERE user_id=? AND platform=?", (account, platform))
                self._insert_events([_event(row).model_copy(update={"user_id": person}) for row in rows])
                moved += len(rows)
                if not self.conn.execute("SELECT 1 FROM events WHERE user_id=? LIMIT 1", (account,)).fetchone():
                    for table in ("profiles", "llm_cache", "stale_profiles"):
                        self.conn.execute(f"DELETE FROM {table} WHERE user_id=?", (account,))
        self._bump_data_version()
        return moved

    def add_items(self, items: Iterable[Item]) -> int:
        rows = [
            (i.item_id, i.title, i.description, json.dumps(i.attributes, sort_keys=True), i.platform) for i in items
        ]
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?)", rows)
        self._bump_data_version()
        return len(rows)

    def add_placeholder_items(self) -> None:
        """Give every event's item a catalogue row, titled by its id, when the data set had none."""
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO items SELECT DISTINCT e.item_id, e.item_id, '', '{}', e.platform "
                "FROM events e LEFT JOIN items i USING(item_id) WHERE i.item_id IS NULL"
            )

    def set_item_aspects(self, aspects: dict[str, list[str]], generic: set[str], attribute: str) -> int:
        """Store each item's mined aspects as its `attribute` values (replacing earlier ones; items with
        none lose theirs) and the catalogue's generic phrases. An item known only by its id is titled by
        its aspects, so people read words, not ids. Returns how many items carry aspects."""
        rows = self.conn.execute("SELECT item_id, title, description, attributes FROM items").fetchall()
        updates = []
        for item_id, title, description, attributes in rows:
            values = json.loads(attributes)
            had = values.pop(attribute, None)
            mined = aspects.get(item_id)
            if mined:
                values[attribute] = mined
            placeholder = not description and (title == item_id or title.endswith(f"({item_id})"))
            new_title = (", ".join(mined[:3]) + f" ({item_id})" if mined else item_id) if placeholder else title
            if had != mined or new_title != title:
                updates.append((new_title, json.dumps(values, sort_keys=True), item_id))
        with self.conn:
            self.conn.executemany("UPDATE items SET title=?, attributes=? WHERE item_id=?", updates)
            self.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('generic_aspects', ?)", (json.dumps(sorted(generic)),)
            )
        if updates:
            self._bump_data_version()
        return sum(1 for v in aspects.values() if v)

    def generic_aspects(self) -> set[str]:
        row = self.conn.execute("SELECT value FROM meta WHERE key='generic_aspects'").fetchone()
        return set(json.loads(row[0])) if row else set()

    def review_texts(self) -> dict[str, list[str]]:
        """Item id -> every review text written about it."""
        texts: dict[str, list[str]] = {}
        query = "SELECT item_id, text FROM events WHERE kind='review' AND COALESCE(text, '') != '' ORDER BY rowid"
        for item_id, text in self.conn.execute(query):
            texts.setdefault(item_id, []).append(text)
        return texts

    def forget_user(self, user_id: str) -> int:
        """Delete a user's events, their edits, every profile version, the LLM responses cached for them,
        their access tokens and chat sessions, in one transaction. Returns how many events were removed."""
        with self.conn:
            removed = self.conn.execute("DELETE FROM events WHERE user_id=?", (user_id,)).rowcount
            for table in ("profiles", "llm_cache", "stale_profiles", "profile_edits", "tokens", "chat_sessions"):
                self.conn.execute(f"DELETE FROM {table} WHERE user_id=?", (user_id,))
        self._bump_data_version()
        return removed

    def add_feedback(self, event: Event) -> None:
        """Store one event a person gave in conversation. Their profile becomes stale (the next profile
        update reads it), but the data version stays: the recommender reads histories live, and one
        event is no reason to refit the whole model (the next ingest or `fit` takes it in)."""
        with self.conn:
            self._insert_events([event])

    def forget_item(self, user_id: str, item_id: str) -> int:
        """Delete a user's events on one item (their profile becomes stale; as with feedback, the data
        version stays). Returns how many events were removed."""
        with self.conn:
            removed = self.conn.execute("DELETE FROM events WHERE user_id=? AND item_id=?", (user_id, item_id)).rowcount
            if removed:
                self.conn.execute(
                    "INSERT OR IGNORE INTO stale_profiles SELECT user_id FROM profiles WHERE user_id=? LIMIT 1",
                    (user_id,),
                )
        return removed

    def _bump_data_version(self) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO meta VALUES ('data_version', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )

    # -- reads --------------------------------------------------------------------------------

    def integrity(self) -> str:
        """SQLite's integrity check: "ok", or the first problem it found."""
        try:
            return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            return str(exc)

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the database at `target`, taken while others may be writing (SQLite's
        online backup)."""
        copy = sqlite3.connect(target)
        try:
            self.conn.backup(copy)
        finally:
            copy.close()

    def data_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='data_version'").fetchone()
        return int(row[0]) if row else 0

    def user_events(self, user_id: str, after_row: int = 0) -> list[Event]:
        """The user's events in time order; `after_row` keeps only those stored after that event row."""
        rows = self.conn.execute(
            "SELECT user_id, item_id, kind, timestamp, rating, text, platform FROM events "
            "WHERE user_id=? AND rowid > ? ORDER BY timestamp, rowid",
            (user_id, after_row),
        ).fetchall()
        return [_event(row) for row in rows]

    def user_history(self, user_id: str) -> list[str]:
        """The item ids of the user's events other than searches, in `user_events`' order: what a
        recommender reads, without building an event object per row (2,700 of them for the longest
        MovieLens histories, most of such a request's time)."""
        rows = self.conn.execute(
            "SELECT item_id FROM events WHERE user_id=? AND kind != 'search' ORDER BY timestamp, rowid", (user_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def event_watermark(self, user_id: str) -> int:
        """The last event row stored for the user: a profile built now covers everything up to it."""
        row = self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events WHERE user_id=?", (user_id,)).fetchone()
        return row[0]

    def user_state(self, user_id: str) -> tuple[int, int, int]:
        """(data version, the user's event count, their last event row): equal states, equal histories."""
        count, last = self.conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM events WHERE user_id=?", (user_id,)
        ).fetchone()
        return self.data_version(), count, last

    def iter_events(self) -> Iterator[Event]:
        cursor = self.conn.execute(
            "SELECT user_id, item_id, kind, timestamp, rating, text, platform FROM events "
            "ORDER BY user_id, timestamp, rowid"
        )
        for row in cursor:
            yield _event(row)

    def histories(self) -> dict[str, list[str]]:
        """Each user's item ids in time order, ties in the order they were stored (file order); searches
        are not consumption and are left out."""
        histories: dict[str, list[str]] = {}
        rows = self.conn.execute(
            "SELECT user_id, item_id FROM events WHERE kind != 'search' ORDER BY user_id, timestamp, rowid"
        )
        for user_id, item_id in rows:
            histories.setdefault(user_id, []).append(item_id)
        return histories

    def has_user(self, user_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM events WHERE user_id=? LIMIT 1", (user_id,)).fetchone() is not None

    def user_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT user_id FROM events ORDER BY user_id")]

    def recent_users(self, limit: int) -> list[str]:
        """At most `limit` user ids, the most recently stored event's user first."""
        query = "SELECT user_id FROM events GROUP BY user_id ORDER BY MAX(rowid) DESC LIMIT ?"
        return [r[0] for r in self.conn.execute(query, (limit,))]

    def items(self, item_ids: Iterable[str] | None = None) -> dict[str, Item]:
        if item_ids is None:
            rows = self.conn.execute("SELECT * FROM items").fetchall()
        else:
            ids = list(dict.fromkeys(item_ids))
            rows = []
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                marks = ",".join("?" * len(chunk))
                rows += self.conn.execute(f"SELECT * FROM items WHERE item_id IN ({marks})", chunk).fetchall()
        return {
            r[0]: Item(item_id=r[0], title=r[1], description=r[2], attributes=json.loads(r[3]), platform=r[4])
            for r in rows
        }

    def label_event_shares(self) -> dict[str, float]:
        """Share of all events whose item carries each label: the baseline for a user's lift."""
        counts: dict[str, int] = {}
        total = 0
        query = "SELECT i.attributes, COUNT(*) FROM events e JOIN items i USING(item_id) GROUP BY e.item_id"
        for attributes, n in self.conn.execute(query):
            total += n
            for values in json.loads(attributes).values():
                for value in values:
                    counts[value] = counts.get(value, 0) + n
        return {label: n / total for label, n in counts.items()} if total else {}

    def label_items(self, max_tag_chars: int) -> dict[str, set[str]]:
        """Each label -> the items carrying it: catalogue attribute values (genres, decades, mined
        aspects...) and tags anyone gave, up to `max_tag_chars` long (longer ones are text, not labels)."""
        carried: dict[str, set[str]] = {}
        for item_id, attributes in self.conn.execute("SELECT item_id, attributes FROM items"):
            for values in json.loads(attributes).values():
                for value in values:
                    carried.setdefault(value, set()).add(item_id)
        query = "SELECT DISTINCT text, item_id FROM events WHERE kind='tag' AND length(text) <= ?"
        for tag, item_id in self.conn.execute(query, (max_tag_chars,)):
            carried.setdefault(tag, set()).add(item_id)
        return carried

    def find_items_by_title(self, text: str, limit: int = 10) -> list[str]:
        rows = self.conn.execute(
            "SELECT item_id FROM items WHERE title LIKE ? ESCAPE '\\' ORDER BY length(title) LIMIT ?",
            ("%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", limit),
        ).fetchall()
        return [r[0] for r in rows]

    def co_liked(self, liked_item: str, item: str, min_rating: float) -> int:
        """How many users liked both items: rated each at least `min_rating`, or consumed it unrated."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT a.user_id) FROM events a JOIN events b ON a.user_id = b.user_id "
            "WHERE a.item_id=? AND b.item_id=? AND a.kind != 'search' AND b.kind != 'search' "
            "AND (a.rating IS NULL OR a.rating >= ?) AND (b.rating IS NULL OR b.rating >= ?)",
            (liked_item, item, min_rating, min_rating),
        ).fetchone()
        return row[0]

    def titles(self) -> list[str]:
        """Every catalogue title."""
        return [row[0] for row in self.conn.execute("SELECT title FROM items WHERE title != ''")]

    def identities(self) -> dict[tuple[str, str], str]:
        rows = self.conn.execute("SELECT platform, platform_user_id, person_id FROM identities")
        return {(platform, account): person for platform, account, person in rows}


def _event(row: tuple) -> Event:
    user_id, item_id, kind, timestamp, rating, text, platform = row
    return Event(
        user_id=user_id,
        item_id=item_id,
        kind=kind,
        timestamp=timestamp,
        rating=rating,
        text=text,
        platform=platform,
    )
