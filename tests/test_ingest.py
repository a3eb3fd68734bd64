import gzip
import json

import pytest
from conftest import MOVIELENS
from typer.testing import CliRunner

from tasteprint.cli import app
from tasteprint.errors import IngestError
from tasteprint.ingest.formats import detect_format
from tasteprint.ingest.loader import ingest
from tasteprint.ingest.records import clean_text
from tasteprint.storage.sqlite import Database


def test_movielens_counts_match_source(movielens_store):
    db = Database(movielens_store)
    (ratings,) = db.conn.execute("SELECT COUNT(*) FROM events WHERE kind='rating'").fetchone()
    (tags,) = db.conn.execute("SELECT COUNT(*) FROM events WHERE kind='tag'").fetchone()
    assert ratings == 100_836
    assert tags == 3_683
    assert len(db.user_ids()) == 610
    toy_story = db.items(["1"])["1"]
    assert toy_story.title == "Toy Story (1995)"
    assert toy_story.attributes["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert toy_story.attributes["decade"] == ["1990s"]


def test_amazon_drops_duplicates_and_cleans_html_titles(amazon_store):
    db = Database(amazon_store)
    (reviews,) = db.conn.execute("SELECT COUNT(*) FROM events").fetchone()
    assert reviews == 2375 - 42  # 42 lines repeat another line exactly
    items = db.items()
    assert not any("<span" in item.title or "&amp;" in item.description for item in items.values())
    reason = items["B00005N7P0"]
    assert reason.title and reason.attributes["category"]
    (text,) = db.conn.execute(
        "SELECT text FROM events WHERE user_id='A5QQOOZJOVPSF' AND item_id='B00005N7P0'"
    ).fetchone()
    assert "Cheapskates guide" in text and "computer" in text


def test_reingest_is_idempotent(fresh_copy, movielens_store):
    db = Database(fresh_copy(movielens_store))
    before = db.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    report = ingest(db, MOVIELENS)
    assert report.accepted == 0
    assert report.duplicates == before
    assert db.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before


GOOD = [
    {"user_id": "u1", "item_id": "i1", "kind": "rating", "timestamp": 1_600_000_000, "rating": 5, "title": "Alpha"},
    {
        "user_id": "u1",
        "item_id": "i2",
        "kind": "review",
        "timestamp": "2021-03-01T10:00:00Z",
        "text": "Great <b>fun</b> &amp; more",
    },
    {"user_id": 7, "item_id": "i1", "kind": "search", "timestamp": 1_600_000_100, "text": "space operas"},
]
BAD_LINES = {
    b"{not json": "not valid JSON",
    b'{"user_id": "u2", "item_id": "i1", "kind": "rating", "timestamp": 1, "rating": "\xff\xfe"}': "not valid utf-8",
    b'{"user_id": "u2", "kind": "rating", "timestamp": 1}': "missing field: item_id",
    b'{"user_id": "u2", "item_id": "i1", "kind": "rating", "timestamp": 1, "rating": "five"}': "wrong type",
    b'{"user_id": "u2", "item_id": "i1", "kind": "teleport", "timestamp": 1}': "unknown kind",
    b'{"user_id": "u2", "item_id": "i1", "kind": "view", "timestamp": -5}': "negative",
    b'{"user_id": "u2", "item_id": "i1", "kind": "view", "timestamp": 99999999999}': "in the future",
    b'{"user_id": "u2", "item_id": "i1", "kind": "view", "timestamp": 1, "colour": "red"}': "unknown field",
    b'{"user_id": ["u2"], "item_id": "i1", "kind": "view", "timestamp": 1}': "wrong type",
    b"[1, 2, 3]": "not a JSON object",
}


def _mixed_events_file(tmp_path):
    lines = []
    expected_bad = {}
    for good, (bad, reason) in zip(GOOD + [GOOD[0]] * (len(BAD_LINES) - len(GOOD)), BAD_LINES.items()):
        lines.append(json.dumps(good).encode())
        lines.append(bad)
        expected_bad[len(lines)] = reason
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected_bad


def test_generic_events_keep_every_good_line_and_report_each_bad_one(tmp_path):
    path, expected_bad = _mixed_events_file(tmp_path)
    db = Database(tmp_path / "store")
    report = ingest(db, path)
    assert report.format == "events"
    assert report.accepted == len(GOOD)  # the repeated good line is an exact duplicate
    assert report.rejected == len(BAD_LINES)
    by_line = {e.line: e.reason.lower() for e in report.errors}
    assert set(by_line) == set(expected_bad)
    for line, reason in expected_bad.items():
        assert reason.lower() in by_line[line], (line, by_line[line])
    events = db.user_events("u1")
    assert [e.item_id for e in events] == ["i1", "i2"]
    assert events[1].text == "Great fun & more"
    assert db.user_events("7")[0].kind == "search"
    assert db.items(["i1"])["i1"].title == "Alpha"


def test_cli_ingest_json_summary_and_strict(tmp_path):
    path, expected_bad = _mixed_events_file(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(path), "--store", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["accepted"] == len(GOOD) and summary["rejected"] == len(BAD_LINES)
    assert {e["line"] for e in summary["errors"]} == set(expected_bad)
    assert all({"file", "line", "reason"} <= set(e) for e in summary["errors"])
    strict = runner.invoke(app, ["ingest", str(path), "--store", str(tmp_path / "s2"), "--strict"])
    assert strict.exit_code == 1
    assert "rejected under --strict" in strict.output


def test_ml100k_loader_reads_latin1_titles_and_ignores_demographics(tmp_path):
    root = tmp_path / "ml-100k"
    root.mkdir()
    (root / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\nbad line\n")
    (root / "u.item").write_bytes(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|Misérables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n".encode("latin-1")
    )
    genres = [
        "unknown",
        "Action",
        "Adventure",
        "Animation",
        "Children's",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    ]
    (root / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)))
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    assert detect_format(root) == "ml100k"
    db = Database(tmp_path / "store")
    report = ingest(db, root)
    assert report.accepted == 3 and report.rejected == 1
    assert report.errors[0].line == 4 and "4 tab-separated" in report.errors[0].reason
    items = db.items()
    assert items["2"].title == "Misérables, Les (1995)"
    assert items["1"].attributes["genres"] == ["Animation", "Children's", "Comedy"]
    stored = "\n".join(db.conn.iterdump())
    assert "technician" not in stored and "94043" not in stored


def test_unknown_format_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="cannot detect the format"):
        ingest(Database(tmp_path / "s"), tmp_path / "notes.txt")


def test_amazon_file_path_and_gzip_bad_line(tmp_path):
    path = tmp_path / "reviews.json.gz"
    rows = [
        json.dumps({"reviewerID": "A", "asin": "X", "overall": 4.0, "unixReviewTime": 1400000000, "reviewText": "ok"}),
        json.dumps({"reviewerID": "A", "asin": "Y", "overall": 4.0}),
    ]
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    report = ingest(Database(tmp_path / "s"), path)
    assert report.accepted == 1
    assert report.errors[0].line == 2 and "unixReviewTime" in report.errors[0].reason


def test_clean_text():
    assert clean_text('<span class="a-size-medium a-color-secondary"') == ""
    assert clean_text("Tom &amp; Jerry<br/>  rocks\n\t!") == "Tom & Jerry rocks !"
    assert clean_text("a {{ b }} c") == "a {{ b }} c"
