"""Load interaction data into the store: choose the format's pipeline (`formats`), link accounts to
people, store every good record in batches and report every rejected one.

Exact duplicates are dropped by the store, which makes re-ingesting a file idempotent.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tasteprint.errors import IngestError
from tasteprint.models import Event, IngestReport, Item, RejectedRecord
from tasteprint.storage.sqlite import Database

from .formats import iter_records

BATCH = 5000

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

    def flush() -> None:
        inserted, duplicates = db.add_events(events)
        report.accepted += inserted
        report.duplicates += duplicates
        report.items += db.add_items(items)
        events.clear(), items.clear()

    for record in records:
        if isinstance(record, RejectedRecord):
            report.rejected += 1
            report.errors.append(record)
        elif isinstance(record, Event):
            person = people.get((record.platform, record.user_id))
            events.append(record.model_copy(update={"user_id": person}) if person else record)
        else:
            items.append(record)
        if len(events) + len(items) >= BATCH:
            flush()
    flush()
    db.add_placeholder_items()
    return report
