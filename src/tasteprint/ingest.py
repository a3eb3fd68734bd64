"""Load interaction data into the store: detect the format, clean, validate every record, report rejects.

Loaders are generators of `Event | Item | UserAttributes | RejectedRecord`, so one bad line is one
RejectedRecord and never costs a good line. Exact duplicates are dropped by the store, which makes
re-ingesting a file idempotent.
"""

from __future__ import annotations

import csv
import gzip
import html
import json
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from .db import Database
from .errors import IngestError
from .models import EVENT_KINDS, Event, IngestReport, Item, RejectedRecord, UserAttributes

Record = Event | Item | UserAttributes | RejectedRecord
FORMATS = ("movielens", "ml100k", "amazon", "events")
BATCH = 5000
FUTURE_SLACK_S = 86400

_TAG = re.compile(r"<[a-zA-Z/!][^>]*(>|$)")
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Unescape HTML entities, drop HTML tags (also a tag cut off at the end), collapse whitespace."""
    text = _TAG.sub(" ", html.unescape(text))
    return _SPACE.sub(" ", text).strip()


class RecordError(ValueError):
    """A record that must be rejected; the message is the reason."""


# -- reading lines safely ---------------------------------------------------------------------


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str | RejectedRecord]]:
    """Yield (line number, text) per line; a line that does not decode yields a RejectedRecord."""
    with _open_bytes(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    RejectedRecord(file=str(path), line=number, reason=f"not valid {encoding}: byte {exc.start}"),
                )
                continue
            yield number, text.rstrip("\r\n")


def _csv_rows(path: Path, delimiter: str = ",", encoding: str = "utf-8", header: bool = True):
    """Yield (line number, dict or list | RejectedRecord) for a CSV file, one line at a time."""
    columns: list[str] | None = None
    for number, text in _lines(path, encoding):
        if isinstance(text, RejectedRecord):
            yield number, text
            continue
        if not text.strip():
            continue
        fields = next(csv.reader([text], delimiter=delimiter))
        if header and columns is None:
            columns = fields
            continue
        if columns is None:
            yield number, fields
        elif len(fields) != len(columns):
            yield (
                number,
                RejectedRecord(
                    file=str(path), line=number, reason=f"expected {len(columns)} columns, got {len(fields)}"
                ),
            )
        else:
            yield number, dict(zip(columns, fields))


def _require_columns(path: Path, required: Iterable[str]) -> None:
    with _open_bytes(path) as handle:
        first = handle.readline().decode("utf-8", errors="replace").strip()
    missing = [c for c in required if c not in next(csv.reader([first]))]
    if missing:
        raise IngestError(f"{path}: missing column(s) {', '.join(missing)} in header {first!r}")


# -- field parsing ----------------------------------------------------------------------------


def _id(value: object, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"wrong type: {field} must be a string or integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise RecordError(f"missing field: {field} is empty")
    return text


def _timestamp(value: object) -> int:
    if isinstance(value, bool):
        raise RecordError("wrong type: timestamp must be a number or ISO-8601 string")
    if isinstance(value, str):
        try:
            seconds = int(float(value)) if re.fullmatch(r"-?\d+(\.\d+)?", value.strip()) else None
            if seconds is None:
                seconds = int(datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp())
        except ValueError as exc:
            raise RecordError(f"bad timestamp: {value!r} is neither epoch seconds nor ISO-8601") from exc
    elif isinstance(value, (int, float)):
        seconds = int(value)
    else:
        raise RecordError(f"wrong type: timestamp must be a number or ISO-8601 string, got {type(value).__name__}")
    if seconds < 0:
        raise RecordError(f"bad timestamp: {seconds} is negative")
    if seconds > time.time() + FUTURE_SLACK_S:
        raise RecordError(f"bad timestamp: {seconds} is in the future")
    return seconds


def _rating(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError("wrong type: rating must be a number")
    try:
        rating = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise RecordError(f"wrong type: rating must be a number, got {value!r}") from exc
    if rating != rating or rating < 0:
        raise RecordError(f"bad rating: {value!r}")
    return rating


def _text(value: object, field: str = "text") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"wrong type: {field} must be a string, got {type(value).__name__}")
    return clean_text(value) or None


def _guard(path: Path, number: int, build) -> Record:
    """Run a record builder; turn any RecordError or ValidationError into a RejectedRecord."""
    try:
        return build()
    except RecordError as exc:
        return RejectedRecord(file=str(path), line=number, reason=str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return RejectedRecord(file=str(path), line=number, reason=f"invalid {where}: {first['msg']}")
    except KeyError as exc:
        return RejectedRecord(file=str(path), line=number, reason=f"missing field: {exc.args[0]}")


# -- loaders ----------------------------------------------------------------------------------


def load_movielens(root: Path, platform: str = "movielens") -> Iterator[Record]:
    """MovieLens latest: ratings.csv, movies.csv, optional tags.csv."""
    _require_columns(root / "ratings.csv", ["userId", "movieId", "rating", "timestamp"])
    movies = root / "movies.csv"
    for number, row in _csv_rows(movies):
        yield row if isinstance(row, RejectedRecord) else _guard(movies, number, lambda: _movie(row, platform))
    ratings = root / "ratings.csv"
    for number, row in _csv_rows(ratings):
        yield (
            row
            if isinstance(row, RejectedRecord)
            else _guard(
                ratings,
                number,
                lambda: Event(
                    user_id=_id(row["userId"], "userId"),
                    item_id=_id(row["movieId"], "movieId"),
                    kind="rating",
                    rating=_rating(row["rating"]),
                    timestamp=_timestamp(row["timestamp"]),
                    platform=platform,
                ),
            )
        )
    tags = root / "tags.csv"
    if tags.exists():
        for number, row in _csv_rows(tags):
            yield (
                row
                if isinstance(row, RejectedRecord)
                else _guard(
                    tags,
                    number,
                    lambda: Event(
                        user_id=_id(row["userId"], "userId"),
                        item_id=_id(row["movieId"], "movieId"),
                        kind="tag",
                        text=_text(row["tag"], "tag"),
                        timestamp=_timestamp(row["timestamp"]),
                        platform=platform,
                    ),
                )
            )


_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _movie(row: dict, platform: str) -> Item:
    title = clean_text(row["title"])
    genres = [g for g in row["genres"].split("|") if g and g != "(no genres listed)"]
    attributes: dict[str, list[str]] = {"genres": genres}
    if match := _YEAR.search(title):
        attributes["decade"] = [f"{match.group(1)[:3]}0s"]
    return Item(item_id=_id(row["movieId"], "movieId"), title=title, attributes=attributes, platform=platform)


def load_ml100k(root: Path, platform: str = "movielens100k") -> Iterator[Record]:
    """MovieLens 100K: u.data (tab separated), u.item (Latin-1, pipe separated), u.user, u.genre."""
    genre_file = root / "u.genre"
    genres: list[str] = []
    if genre_file.exists():
        for _, row in _csv_rows(genre_file, delimiter="|", encoding="latin-1", header=False):
            if isinstance(row, list) and len(row) == 2:
                genres.append(row[0])
    item_file = root / "u.item"
    if item_file.exists():
        for number, row in _csv_rows(item_file, delimiter="|", encoding="latin-1", header=False):
            yield (
                row
                if isinstance(row, RejectedRecord)
                else _guard(item_file, number, lambda: _ml100k_item(row, genres, platform))
            )
    user_file = root / "u.user"
    if user_file.exists():
        for number, row in _csv_rows(user_file, delimiter="|", encoding="latin-1", header=False):
            yield (
                row
                if isinstance(row, RejectedRecord)
                else _guard(
                    user_file,
                    number,
                    lambda: UserAttributes(
                        user_id=_id(row[0], "user id"), age=int(row[1]), gender=row[2], occupation=row[3]
                    ),
                )
            )
    data = root / "u.data"
    for number, row in _csv_rows(data, delimiter="\t", header=False):
        yield row if isinstance(row, RejectedRecord) else _guard(data, number, lambda: _ml100k_rating(row, platform))


def _ml100k_item(row: list[str], genres: list[str], platform: str) -> Item:
    if len(row) < 5:
        raise RecordError(f"expected at least 5 fields, got {len(row)}")
    flags = row[5:]
    names = genres if len(genres) == len(flags) else [f"genre{i}" for i in range(len(flags))]
    labels = [name for name, flag in zip(names, flags) if flag == "1" and name != "unknown"]
    title = clean_text(row[1])
    attributes = {"genres": labels}
    if match := _YEAR.search(title):
        attributes["decade"] = [f"{match.group(1)[:3]}0s"]
    return Item(item_id=_id(row[0], "item id"), title=title, attributes=attributes, platform=platform)


def _ml100k_rating(row: list[str], platform: str) -> Event:
    if len(row) != 4:
        raise RecordError(f"expected 4 tab-separated fields, got {len(row)}")
    return Event(
        user_id=_id(row[0], "user id"),
        item_id=_id(row[1], "item id"),
        kind="rating",
        rating=_rating(row[2]),
        timestamp=_timestamp(row[3]),
        platform=platform,
    )


def _json_lines(path: Path) -> Iterator[tuple[int, dict | RejectedRecord]]:
    for number, text in _lines(path):
        if isinstance(text, RejectedRecord):
            yield number, text
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, RejectedRecord(file=str(path), line=number, reason=f"not valid JSON: {exc.msg}")
            continue
        if not isinstance(value, dict):
            yield number, RejectedRecord(file=str(path), line=number, reason="not a JSON object")
            continue
        yield number, value


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict | RejectedRecord]]:
    """Rows of a Parquet file as dicts, numbered from 1 (row groups streamed, not read whole)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise IngestError(f"{path} is Parquet, which needs pyarrow", hint="pip install 'tasteprint[ray]'") from exc
    try:
        batches = pq.ParquetFile(path).iter_batches()
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield number, {k: v for k, v in row.items() if v is not None}
    except (OSError, ValueError) as exc:  # pyarrow: OSError for I/O, ArrowInvalid (a ValueError) for bad data
        raise IngestError(f"cannot read Parquet file {path}: {exc}") from exc


def _rows(path: Path) -> Iterator[tuple[int, dict | RejectedRecord]]:
    return _parquet_rows(path) if path.suffix == ".parquet" else _json_lines(path)


def load_amazon(path: Path, platform: str = "amazon") -> Iterator[Record]:
    """Amazon Review Data 2018: reviews as gzipped JSON lines, plus meta_*.json.gz in the same folder."""
    root = path if path.is_dir() else path.parent
    review_files = (
        [path] if path.is_file() else sorted(p for p in root.glob("*.json*") if not p.name.startswith("meta_"))
    )
    for meta in sorted(root.glob("meta_*.json*")):
        seen: set[str] = set()
        for number, row in _json_lines(meta):
            if isinstance(row, RejectedRecord):
                yield row
            elif row.get("asin") not in seen:
                seen.add(row.get("asin"))
                yield _guard(meta, number, lambda: _amazon_item(row, platform))
    for reviews in review_files:
        for number, row in _json_lines(reviews):
            yield (
                row
                if isinstance(row, RejectedRecord)
                else _guard(reviews, number, lambda: _amazon_review(row, platform))
            )


def _amazon_item(row: dict, platform: str) -> Item:
    description = clean_text(" ".join(row.get("description") or []))
    categories = [clean_text(c) for c in (row.get("category") or [])[1:]]
    brand = clean_text(row.get("brand") or "")
    attributes = {"category": [c for c in categories if c]}
    if brand:
        attributes["brand"] = [brand]
    # Scraped metadata titles are often an HTML fragment that cleans to nothing: name the item by brand.
    title = clean_text(row.get("title") or "") or brand or (categories[-1] if categories else "") or description[:60]
    return Item(
        item_id=_id(row["asin"], "asin"),
        title=title,
        description=description,
        attributes=attributes,
        platform=platform,
    )


def _amazon_review(row: dict, platform: str) -> Event:
    parts = [_text(row.get("summary"), "summary"), _text(row.get("reviewText"), "reviewText")]
    return Event(
        user_id=_id(row["reviewerID"], "reviewerID"),
        item_id=_id(row["asin"], "asin"),
        kind="review",
        rating=_rating(row.get("overall")),
        timestamp=_timestamp(row["unixReviewTime"]),
        text=". ".join(p for p in parts if p) or None,
        platform=platform,
    )


def load_events(path: Path, platform: str | None = None) -> Iterator[Record]:
    """Generic format: events as JSON lines or Parquet, plus an optional items JSON lines file.

    A directory holds `events.jsonl` (or `events.parquet`) and optionally `items.jsonl`; a file is an
    events file. Parquet rows are read like JSON lines; null columns count as absent fields.
    """
    if path.is_dir():
        events_file = path / "events.parquet" if (path / "events.parquet").exists() else path / "events.jsonl"
    else:
        events_file = path
    items_file = path / "items.jsonl" if path.is_dir() else path.with_name("items.jsonl")
    catalogued: set[str] = set()
    if items_file.exists() and items_file != events_file:
        for number, row in _json_lines(items_file):
            record = (
                row
                if isinstance(row, RejectedRecord)
                else _guard(items_file, number, lambda: _generic_item(row, platform))
            )
            if isinstance(record, Item):
                catalogued.add(record.item_id)
            yield record
    titles: dict[str, str] = {}
    for number, row in _rows(events_file):
        if isinstance(row, RejectedRecord):
            yield row
            continue
        record = _guard(events_file, number, lambda: _generic_event(row, platform))
        if isinstance(record, Event) and record.item_id not in catalogued and isinstance(row.get("title"), str):
            titles.setdefault(record.item_id, clean_text(row["title"]))
        yield record
    for item_id, title in titles.items():
        yield Item(item_id=item_id, title=title, platform=platform or "default")


def _generic_event(row: dict, platform: str | None) -> Event:
    for field in ("user_id", "item_id", "kind", "timestamp"):
        if field not in row or row[field] is None:
            raise RecordError(f"missing field: {field}")
    if row["kind"] not in EVENT_KINDS:
        raise RecordError(f"unknown kind: {row['kind']!r} (expected one of {', '.join(EVENT_KINDS)})")
    unknown = set(row) - {"user_id", "item_id", "kind", "timestamp", "rating", "text", "platform", "title"}
    if unknown:
        raise RecordError(f"unknown field: {', '.join(sorted(unknown))}")
    return Event(
        user_id=_id(row["user_id"], "user_id"),
        item_id=_id(row["item_id"], "item_id"),
        kind=row["kind"],
        timestamp=_timestamp(row["timestamp"]),
        rating=_rating(row.get("rating")),
        text=_text(row.get("text")),
        platform=platform or _text(row.get("platform"), "platform") or "default",
    )


def _generic_item(row: dict, platform: str | None) -> Item:
    if "item_id" not in row:
        raise RecordError("missing field: item_id")
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise RecordError("wrong type: attributes must be an object of name -> value(s)")
    return Item(
        item_id=_id(row["item_id"], "item_id"),
        title=_text(row.get("title"), "title") or "",
        description=_text(row.get("description"), "description") or "",
        attributes={
            k: [clean_text(str(v)) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in attributes.items()
        },
        platform=platform or row.get("platform") or "default",
    )


# -- detection and the ingest driver ----------------------------------------------------------


def detect_format(path: Path) -> str:
    """Guess the format of a path from the files it holds."""
    if path.is_dir():
        if (path / "ratings.csv").exists():
            return "movielens"
        if (path / "u.data").exists():
            return "ml100k"
        if (path / "events.jsonl").exists() or (path / "events.parquet").exists():
            return "events"
        if any(path.glob("*.json.gz")):
            return "amazon"
    elif path.is_file():
        if path.name == "u.data":
            return "ml100k"
        if path.name.endswith((".json.gz", ".json")):
            return "amazon"
        if path.name.endswith((".jsonl", ".ndjson", ".parquet")):
            return "events"
    raise IngestError(
        f"cannot detect the format of {path}",
        hint=f"pass --format, one of: {', '.join(FORMATS)}",
    )


def iter_records(path: Path, fmt: str | None = None, platform: str | None = None) -> tuple[str, Iterator[Record]]:
    """Choose a loader and return (format, records)."""
    if not path.exists():
        raise IngestError(f"no such file or directory: {path}")
    fmt = fmt or detect_format(path)
    if fmt == "movielens":
        return fmt, load_movielens(path, platform or "movielens")
    if fmt == "ml100k":
        return fmt, load_ml100k(path if path.is_dir() else path.parent, platform or "movielens100k")
    if fmt == "amazon":
        return fmt, load_amazon(path, platform or "amazon")
    if fmt == "events":
        return fmt, load_events(path, platform)
    raise IngestError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


IDENTITY_HEADER = ["platform", "platform_user_id", "person_id"]


def read_identity_map(path: Path, report: IngestReport) -> dict[tuple[str, str], str]:
    """Links from an identity map CSV (header platform,platform_user_id,person_id); a bad row is
    reported by line and skipped, an account linked to two people is an error on its second line."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"identity map not found: {path}")
    links: dict[tuple[str, str], str] = {}
    with path.open(newline="", encoding="utf-8", errors="strict") as handle:
        try:
            rows = list(csv.reader(handle))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise IngestError(f"{path}: cannot read the identity map: {exc}") from exc
    if not rows or [c.strip() for c in rows[0]] != IDENTITY_HEADER:
        raise IngestError(f"{path}: the header must be {','.join(IDENTITY_HEADER)}")
    for number, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) != 3 or not all(cells):
            report.reject(str(path), number, f"identity row needs 3 non-empty cells, got {row!r}")
        elif links.get((cells[0], cells[1]), cells[2]) != cells[2]:
            report.reject(str(path), number, f"account {cells[0]}:{cells[1]} is already linked to another person")
        else:
            links[(cells[0], cells[1])] = cells[2]
    return links


def ingest(
    db: Database,
    path: Path,
    fmt: str | None = None,
    platform: str | None = None,
    identity_map: Path | None = None,
) -> IngestReport:
    """Load a data set into the store; every good record is kept, every bad one reported with its line.

    Events of accounts linked to a person (this `identity_map`, or links stored before) are stored
    under the person id, so one merged user covers every platform."""
    fmt, records = iter_records(Path(path), fmt, platform)
    report = IngestReport(format=fmt)
    if identity_map is not None:
        db.link_identities(read_identity_map(identity_map, report))
    people = db.identities()
    events: list[Event] = []
    items: list[Item] = []
    users: list[UserAttributes] = []

    def flush() -> None:
        inserted, duplicates = db.add_events(events)
        report.accepted += inserted
        report.duplicates += duplicates
        report.items += db.add_items(items)
        report.users += db.add_users(users)
        events.clear(), items.clear(), users.clear()

    for record in records:
        if isinstance(record, RejectedRecord):
            report.rejected += 1
            report.errors.append(record)
        elif isinstance(record, Event):
            person = people.get((record.platform, record.user_id))
            events.append(record.model_copy(update={"user_id": person}) if person else record)
        elif isinstance(record, Item):
            items.append(record)
        else:
            users.append(record)
        if len(events) + len(items) >= BATCH:
            flush()
    flush()
    db.add_placeholder_items()
    return report
