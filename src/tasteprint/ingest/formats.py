"""One record pipeline per data format: MovieLens latest, MovieLens 100K, Amazon Review Data 2018 and
generic events (JSON lines or Parquet). Each loader yields `Event | Item | RejectedRecord` in
file order, so one bad line costs one record and nothing else."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

from tasteprint.errors import IngestError
from tasteprint.models import EVENT_KINDS, Event, Item

from .records import (
    Record,
    RecordError,
    built,
    clean_text,
    csv_rows,
    json_lines,
    parse_id,
    parse_rating,
    parse_text,
    parse_timestamp,
    require_columns,
    table_rows,
)

Format = Literal["movielens", "ml100k", "amazon", "events"]
FORMATS: tuple[str, ...] = Format.__args__  # type: ignore[attr-defined]


def load_movielens(root: Path, platform: str = "movielens") -> Iterator[Record]:
    """MovieLens latest: ratings.csv, movies.csv, optional tags.csv."""
    ratings, movies, tags = root / "ratings.csv", root / "movies.csv", root / "tags.csv"
    require_columns(ratings, ["userId", "movieId", "rating", "timestamp"])
    yield from built(movies, csv_rows(movies), partial(_movie, platform=platform))
    yield from built(ratings, csv_rows(ratings), partial(_movielens_event, kind="rating", platform=platform))
    if tags.exists():
        yield from built(tags, csv_rows(tags), partial(_movielens_event, kind="tag", platform=platform))


def _movielens_event(row: dict, kind: str, platform: str) -> Event:
    return Event(
        user_id=parse_id(row["userId"], "userId"),
        item_id=parse_id(row["movieId"], "movieId"),
        kind=kind,
        rating=parse_rating(row["rating"]) if kind == "rating" else None,
        text=parse_text(row["tag"], "tag") if kind == "tag" else None,
        timestamp=parse_timestamp(row["timestamp"]),
        platform=platform,
    )


_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _movie(row: dict, platform: str) -> Item:
    title = clean_text(row["title"])
    genres = [g for g in row["genres"].split("|") if g and g != "(no genres listed)"]
    attributes: dict[str, list[str]] = {"genres": genres}
    if match := _YEAR.search(title):
        attributes["decade"] = [f"{match.group(1)[:3]}0s"]
    return Item(item_id=parse_id(row["movieId"], "movieId"), title=title, attributes=attributes, platform=platform)


def load_ml100k(root: Path, platform: str = "movielens100k") -> Iterator[Record]:
    """MovieLens 100K: u.data (tab separated), u.item (Latin-1, pipe separated), u.genre. Demographics
    (u.user) are not read: nothing in a profile or a ranking may use them."""
    genre_file, item_file, data = root / "u.genre", root / "u.item", root / "u.data"
    genres: list[str] = []
    if genre_file.exists():
        for _, row in csv_rows(genre_file, delimiter="|", encoding="latin-1", header=False):
            if isinstance(row, list) and len(row) == 2:
                genres.append(row[0])
    if item_file.exists():
        rows = csv_rows(item_file, delimiter="|", encoding="latin-1", header=False)
        yield from built(item_file, rows, partial(_ml100k_item, genres=genres, platform=platform))
    yield from built(data, csv_rows(data, delimiter="\t", header=False), partial(_ml100k_rating, platform=platform))


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
    return Item(item_id=parse_id(row[0], "item id"), title=title, attributes=attributes, platform=platform)


def _ml100k_rating(row: list[str], platform: str) -> Event:
    if len(row) != 4:
        raise RecordError(f"expected 4 tab-separated fields, got {len(row)}")
    return Event(
        user_id=parse_id(row[0], "user id"),
        item_id=parse_id(row[1], "item id"),
        kind="rating",
        rating=parse_rating(row[2]),
        timestamp=parse_timestamp(row[3]),
        platform=platform,
    )


def load_amazon(path: Path, platform: str = "amazon") -> Iterator[Record]:
    """Amazon Review Data 2018: reviews as gzipped JSON lines, plus meta_*.json.gz in the same folder.
    A product listed twice in the metadata is kept once (its first row)."""
    root = path if path.is_dir() else path.parent
    review_files = (
        [path] if path.is_file() else sorted(p for p in root.glob("*.json*") if not p.name.startswith("meta_"))
    )
    for meta in sorted(root.glob("meta_*.json*")):
        seen: set[str] = set()
        for record in built(meta, json_lines(meta), partial(_amazon_item, platform=platform)):
            if isinstance(record, Item):
                if record.item_id in seen:
                    continue
                seen.add(record.item_id)
            yield record
    for reviews in review_files:
        yield from built(reviews, json_lines(reviews), partial(_amazon_review, platform=platform))


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
        item_id=parse_id(row["asin"], "asin"),
        title=title,
        description=description,
        attributes=attributes,
        platform=platform,
    )


def _amazon_review(row: dict, platform: str) -> Event:
    parts = [parse_text(row.get("summary"), "summary"), parse_text(row.get("reviewText"), "reviewText")]
    return Event(
        user_id=parse_id(row["reviewerID"], "reviewerID"),
        item_id=parse_id(row["asin"], "asin"),
        kind="review",
        rating=parse_rating(row.get("overall")),
        timestamp=parse_timestamp(row["unixReviewTime"]),
        text=". ".join(p for p in parts if p) or None,
        platform=platform,
    )


def load_events(path: Path, platform: str | None = None) -> Iterator[Record]:
    """Generic format: events as JSON lines or Parquet, plus an optional items JSON lines file.

    A directory holds `events.jsonl` (or `events.parquet`) and optionally `items.jsonl`; a file is an
    events file. Parquet rows are read like JSON lines; null columns count as absent fields. An
    event's `title` names an item the items file does not list.
    """
    if path.is_dir():
        events_file = path / "events.parquet" if (path / "events.parquet").exists() else path / "events.jsonl"
    else:
        events_file = path
    items_file = path / "items.jsonl" if path.is_dir() else path.with_name("items.jsonl")
    catalogued: set[str] = set()
    if items_file.exists() and items_file != events_file:
        for record in built(items_file, json_lines(items_file), partial(_generic_item, platform=platform)):
            if isinstance(record, Item):
                catalogued.add(record.item_id)
            yield record
    titles: dict[str, str] = {}
    for number, row in table_rows(events_file):
        for record in built(events_file, [(number, row)], partial(_generic_event, platform=platform)):
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
        user_id=parse_id(row["user_id"], "user_id"),
        item_id=parse_id(row["item_id"], "item_id"),
        kind=row["kind"],
        timestamp=parse_timestamp(row["timestamp"]),
        rating=parse_rating(row.get("rating")),
        text=parse_text(row.get("text")),
        platform=platform or parse_text(row.get("platform"), "platform") or "default",
    )


def _generic_item(row: dict, platform: str | None) -> Item:
    if "item_id" not in row:
        raise RecordError("missing field: item_id")
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise RecordError("wrong type: attributes must be an object of name -> value(s)")
    return Item(
        item_id=parse_id(row["item_id"], "item_id"),
        title=parse_text(row.get("title"), "title") or "",
        description=parse_text(row.get("description"), "description") or "",
        attributes={
            k: [clean_text(str(v)) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in attributes.items()
        },
        platform=platform or row.get("platform") or "default",
    )


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
