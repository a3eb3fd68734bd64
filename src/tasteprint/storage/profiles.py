"""The profile side of the store's SQLite database: profile versions, which profiles are stale, and
what each person stated (their edits). `Database.profiles` is one, over the database's per-thread
connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from tasteprint.models import ProfileEdit, UserProfile

_EDITS = TypeAdapter(list[ProfileEdit])

if TYPE_CHECKING:
    from .sqlite import Database


class ProfileTables:
    """Profile versions and staleness, over the `Database` connection of the calling thread."""

    def __init__(self, db: Database):
        self.db = db  # its `conn` is this thread's connection

    def save(self, profile: UserProfile) -> UserProfile:
        """Store a profile as the user's next version, atomically, and return it with that version. It
        carries the user's edits as stored now, whatever the builder saw, so no rebuild drops one."""
        with self.db.conn:
            (latest,) = self.db.conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM profiles WHERE user_id=?", (profile.user_id,)
            ).fetchone()
            stored = profile.model_copy(update={"version": latest + 1, "edits": self.edits(profile.user_id)})
            self.db.conn.execute(
                "INSERT INTO profiles VALUES (?,?,?,?)",
                (stored.user_id, stored.version, stored.created_at.isoformat(), stored.model_dump_json()),
            )
            # Events that arrived while the profile was being built keep it stale.
            self.db.conn.execute(
                "DELETE FROM stale_profiles WHERE user_id=? AND NOT EXISTS "
                "(SELECT 1 FROM events WHERE user_id=? AND rowid > ?)",
                (stored.user_id, stored.user_id, stored.event_watermark),
            )
        return stored

    def latest(self, user_id: str) -> UserProfile | None:
        """The user's newest profile version, or None."""
        row = self.db.conn.execute(
            "SELECT body FROM profiles WHERE user_id=? ORDER BY version DESC LIMIT 1", (user_id,)
        ).fetchone()
        return UserProfile.model_validate_json(row[0]) if row else None

    def versions(self, user_id: str) -> list[UserProfile]:
        """Every stored version of the user's profile, oldest first."""
        rows = self.db.conn.execute("SELECT body FROM profiles WHERE user_id=? ORDER BY version", (user_id,)).fetchall()
        return [UserProfile.model_validate_json(r[0]) for r in rows]

    def users(self) -> list[str]:
        """Every user with a stored profile, by id."""
        return [r[0] for r in self.db.conn.execute("SELECT DISTINCT user_id FROM profiles ORDER BY user_id")]

    def is_stale(self, user_id: str) -> bool:
        """Whether events arrived after the user's stored profile was built."""
        return self.db.conn.execute("SELECT 1 FROM stale_profiles WHERE user_id=?", (user_id,)).fetchone() is not None

    def edits(self, user_id: str) -> list[ProfileEdit]:
        """What the user stated, oldest first (empty when nothing)."""
        row = self.db.conn.execute("SELECT body FROM profile_edits WHERE user_id=?", (user_id,)).fetchone()
        return _EDITS.validate_json(row[0]) if row else []

    def save_edits(self, user_id: str, edits: list[ProfileEdit]) -> None:
        """Replace the user's edits (the caller then saves a profile version that shows them)."""
        with self.db.conn:
            self.db.conn.execute(
                "INSERT OR REPLACE INTO profile_edits VALUES (?, ?)", (user_id, _EDITS.dump_json(edits).decode())
            )

    def has_edits(self, user_id: str) -> bool:
        return self.db.conn.execute("SELECT 1 FROM profile_edits WHERE user_id=?", (user_id,)).fetchone() is not None
