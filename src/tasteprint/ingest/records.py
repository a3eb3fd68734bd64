"""Reading data files safely, one record at a time: lines that do not decode, CSV rows with the
wrong number of columns, JSON lines that do not parse and fields of the wrong type each become a
RejectedRecord naming the file, line and reason, never an exception that loses the good rows."""

from __future__ import annotations

import csv
import gzip
import html
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tasteprint.errors import IngestError
from tasteprint.models import Event, Item, RejectedRecord

Record = Event | Item | RejectedRecord
FUTURE_SLACK_S = 86400

_TAG = re.compile(r"<[a-zA-Z/!][^>]*(>|$)")
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Unescape HTML entities, drop HTML tags (also a tag cut off at the end), collapse whitespace."""
    text = _TAG.sub(" ", html.unescape(text))
    return _SPACE.sub(" ", text).strip()


class RecordError(ValueError):
    """A record that must be rejected; the message is the reason."""


def open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str | RejectedRecord]]:
    """Yield (line number, text) per line; a line that does not decode yields a RejectedRecord."""
    with open_bytes(path) as handle:
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


def csv_rows(path: Path, delimiter: str = ",", encoding: str = "utf-8", header: bool = True):
    """Yield (line number, dict or list | RejectedRecord) for a CSV file, one line at a time."""
    columns: list[str] | None = None
    for number, text in read_lines(path, encoding):
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


def require_columns(path: Path, required: Iterable[str]) -> None:
    with open_bytes(path) as handle:
        first = handle.readline().decode("utf-8", errors="replace").strip()
    missing = [c for c in required if c not in next(csv.reader([first]))]
    if missing:
        raise IngestError(f"{path}: missing column(s) {', '.join(missing)} in header {first!r}")


# -- field parsing ----------------------------------------------------------------------------


def parse_id(value: object, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"wrong type: {field} must be a string or integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise RecordError(f"missing field: {field} is empty")
    return text


def parse_timestamp(value: object) -> int:
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


def parse_rating(value: object) -> float | None:
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


def parse_text(value: object, field: str = "text") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"wrong type: {field} must be a string, got {type(value).__name__}")
    return clean_text(value) or None


def built(path: Path, rows: Iterable[tuple[int, object]], build: Callable[[Any], Record]) -> Iterator[Record]:
    """Each row of `path` made into a record by `build`; a row that could not be read stays the
    RejectedRecord it is, and one that `build` refuses becomes one, naming the file, line and reason."""
    for number, row in rows:
        yield row if isinstance(row, RejectedRecord) else _guard(path, number, build, row)


def _guard(path: Path, number: int, build: Callable[[Any], Record], row: object) -> Record:
    """Run a record builder on a row; turn a RecordError, ValidationError or missing key into a RejectedRecord."""
    try:
        return build(row)
    except RecordError as exc:
        return RejectedRecord(file=str(path), line=number, reason=str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return RejectedRecord(file=str(path), line=number, reason=f"invalid {where}: {first['msg']}")
    except KeyError as exc:
        return RejectedRecord(file=str(path), line=number, reason=f"missing field: {exc.args[0]}")


def json_lines(path: Path) -> Iterator[tuple[int, dict | RejectedRecord]]:
    for number, text in read_lines(path):
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


def parquet_rows(path: Path) -> Iterator[tuple[int, dict | RejectedRecord]]:
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


def table_rows(path: Path) -> Iterator[tuple[int, dict | RejectedRecord]]:
    return parquet_rows(path) if path.suffix == ".parquet" else json_lines(path)
