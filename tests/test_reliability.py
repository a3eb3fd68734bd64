"""Reliability, privacy and faults: the response cache, redaction, context budget, hostile sizes,
hosted-server faults, bad model paths, SIGKILL mid-batch and concurrent processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from schema_replies import schema_reply
from servers import chat_body, scripted_http_server

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN
from tasteprint.errors import ConfigError, LLMError
from tasteprint.ingest.aspects import MAX_TEXT_CHARS
from tasteprint.ingest.loader import ingest
from tasteprint.llm import ScriptedBackend
from tasteprint.llm.llamacpp import LlamaCppBackend
from tasteprint.llm.openai_compat import OpenAICompatBackend
from tasteprint.llm.privacy import RedactingBackend, redact
from tasteprint.profile.draft import CLAIMS_MAX_TOKENS, fit_to_context, prompt_tokens
from tasteprint.profile.facts import FactBook
from tasteprint.storage.sqlite import Database

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- response cache -------------------------------------------------------------------------------


def test_cached_responses_are_replayed_without_calling_the_model(tmp_path):
    first = ScriptedBackend([schema_reply] * 10)
    tp = Tasteprint(store=tmp_path, llm=first)
    tp.ingest(BUILT_IN)
    built = tp.profile("ana")
    calls = len(first.history)
    assert calls >= 2
    rows = tp.db.conn.execute("SELECT COUNT(*) FROM llm_cache WHERE user_id='ana'").fetchone()[0]
    assert rows == calls
    # A new process with a model that has nothing to say: every call must come from the cache.
    silent = ScriptedBackend()
    again = Tasteprint(store=tmp_path, llm=silent)
    rebuilt = again.profile("ana", refresh=True)
    assert silent.history == [] and again.backend.hits == calls
    assert rebuilt.version == 2 and rebuilt.interests == built.interests and rebuilt.summary == built.summary


# -- privacy --------------------------------------------------------------------------------------

CONTACT = "Loved it! Write to jane.roe@example.com or call +1 (555) 123-4567, card 4111 1111 1111 1111."


def test_redaction_keeps_ids_dates_and_numbers_that_are_not_identifiers():
    assert redact(CONTACT) == "Loved it! Write to [email] or call [phone], card [card]."
    kept = "ids 1210, 260, 1196; ASIN 0446310786 and B00005N7P0; 2000-07-30 to 2001-08-01; rated 4.5 in 1999"
    assert redact(kept) == kept
    assert redact("server 10.0.0.12 at https://x.example/p?q=1") == "server [ip] at [url]"


def test_hosted_requests_and_stored_profiles_hold_no_identifiers(tmp_path):
    data = tmp_path / "data"
    write_jsonl(
        data / "items.jsonl",
        [{"item_id": f"i{n}", "title": f"Issue {n}", "attributes": {"topic": ["Garden"]}} for n in range(3)],
    )
    write_jsonl(
        data / "events.jsonl",
        [
            {
                "user_id": "pat",
                "item_id": f"i{n}",
                "kind": "review",
                "timestamp": 1_600_000_000 + n,
                "rating": 5,
                "text": CONTACT,
            }
            for n in range(3)
        ],
    )
    claims = {"interests": [{"label": "Garden", "evidence": ["i0", "i1"]}], "dislikes": []}
    echo = {"summary": "Enjoys Garden, such as Issue 0; reach her at jane.roe@example.com or +1 (555) 123-4567."}
    script = [(200, {}, chat_body(json.dumps(claims)), 0), (200, {}, chat_body(json.dumps(echo)), 0)]
    with scripted_http_server(script) as (base_url, requests):
        tp = Tasteprint(store=tmp_path / "s", llm="openai", model="m", base_url=base_url, json_mode="json_object")
        tp.ingest(data)
        profile = tp.profile("pat")
    sent = json.dumps(requests)
    assert len(requests) == 2
    assert "jane.roe@example.com" not in sent and "123-4567" not in sent and "4111" not in sent
    assert "[email]" in sent
    stored = tp.db.conn.execute("SELECT body FROM profiles WHERE user_id='pat'").fetchone()[0]
    assert "example.com" not in stored and "123-4567" not in stored
    assert [i.label for i in profile.interests] == ["Garden"]


def test_redacting_wrapper_redacts_every_message():
    inner = ScriptedBackend(["ok"])
    RedactingBackend(inner).complete([{"role": "user", "content": "mail a.b@c.org now"}])
    assert inner.history[0][0][0]["content"] == "mail [email] now"


# -- sizes and the context budget -----------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_store(tmp_path_factory):
    """One user with 50,000 events, a 1 MB review, a 1 MB title, a 10 kB tag and a non-UTF-8 line."""
    root = tmp_path_factory.mktemp("huge")
    genres = ["Drama", "Comedy", "Horror", "Jazz", "Poetry"]
    items = [{"item_id": f"i{n}", "title": f"Title {n}", "attributes": {"genre": [genres[n % 5]]}} for n in range(2000)]
    items[0]["title"] = "T" * 1_000_000
    write_jsonl(root / "data" / "items.jsonl", items)
    lines = [
        json.dumps(
            {
                "user_id": "big",
                "item_id": f"i{n % 2000}",
                "kind": "rating",
                "timestamp": 1_500_000_000 + n,
                "rating": 1 + n % 5,
            }
        )
        for n in range(50_000)
    ]
    lines.append(
        json.dumps(
            {"user_id": "big", "item_id": "i1", "kind": "review", "timestamp": 1_600_000_000, "text": "word " * 200_000}
        )
    )
    lines.append(
        json.dumps({"user_id": "big", "item_id": "i2", "kind": "tag", "timestamp": 1_600_000_001, "text": "x" * 10_000})
    )
    raw = "\n".join(lines).encode() + b'\n{"user_id": "big", "item_id": "i3", "kind": "view", "text": "\xff\xfe"}\n'
    (root / "data" / "events.jsonl").write_bytes(raw)
    db = Database(root / "store")
    return db, ingest(db, root / "data")


def test_huge_inputs_are_kept_and_bounded(huge_store):
    # Bounded by what facts keep, not by a wall-clock limit, which a loaded machine can break.
    db, report = huge_store
    assert report.accepted == 50_002 and report.rejected == 1
    assert report.errors[0].line == 50_003 and "utf-8" in report.errors[0].reason.lower()
    facts = FactBook(db).facts("big")
    assert facts.n_events == 50_002
    assert max(len(text) for texts in facts.item_texts.values() for text in texts) == MAX_TEXT_CHARS
    assert max(len(s) for s in facts.snippets) <= 200
    assert max(len(t) for t in facts.item_titles.values()) <= 150
    assert all(len(label) <= 60 for labels in facts.item_labels.values() for label in labels)


def test_prompt_fits_the_real_context_window(huge_store, local_backend):
    facts = FactBook(huge_store[0]).facts("big")
    shown, messages, _ = fit_to_context(facts, local_backend, CLAIMS_MAX_TOKENS)
    assert prompt_tokens(local_backend, messages) <= local_backend.n_ctx - CLAIMS_MAX_TOKENS


class SmallContext(ScriptedBackend):
    def __init__(self, n_ctx: int):
        super().__init__([schema_reply] * 4)
        self.n_ctx = n_ctx


def test_long_facts_are_condensed_to_fit_never_overflowing(huge_store):
    facts = FactBook(huge_store[0]).facts("big")
    full = prompt_tokens(SmallContext(0), fit_to_context(facts, SmallContext(0), 300)[1])
    backend = SmallContext(full * 3 // 4 + CLAIMS_MAX_TOKENS)
    shown, messages, level = fit_to_context(facts, backend, CLAIMS_MAX_TOKENS)
    assert level > 0 and prompt_tokens(backend, messages) <= backend.n_ctx - CLAIMS_MAX_TOKENS
    assert shown.context == facts.context  # rating style, era and recent shift always reach the model
    with pytest.raises(LLMError, match="context of 100"):
        fit_to_context(facts, SmallContext(100), CLAIMS_MAX_TOKENS)


# -- hosted faults --------------------------------------------------------------------------------


def test_slow_truncated_and_non_json_replies_are_retried():
    good = (200, {}, chat_body('{"ok": true}'), 0)
    script = [
        (200, {}, chat_body("late"), 2.0),  # past the 0.5 s timeout
        (200, {}, b'{"id": "x", "choices": [{"mess', 0),  # truncated body
        (200, {"content-type": "text/html"}, b"<html>502 Bad Gateway</html>", 0),  # not JSON at all
        good,
    ]
    with scripted_http_server(script) as (base_url, requests):
        backend = OpenAICompatBackend("m", base_url=base_url, timeout_s=0.5, max_retries=4)
        start = time.monotonic()
        reply = backend.complete([{"role": "user", "content": "hi"}])
    assert reply.text == '{"ok": true}'
    assert len(requests) == 4
    assert time.monotonic() - start < 30


def test_batch_reports_the_user_it_could_not_recover_and_keeps_the_others(tmp_path):
    tp = Tasteprint(store=tmp_path, llm=ScriptedBackend())
    tp.ingest(BUILT_IN)
    users = ["ana", "ben", "chloe"]
    claims = json.dumps({"interests": [], "dislikes": []})
    summary = json.dumps({"summary": "Enjoys stories told well, of many kinds."})
    ok = [(200, {}, chat_body(claims), 0), (200, {}, chat_body(summary), 0)]
    down = [(503, {}, {"error": {"message": "down"}}, 0)] * 2
    with scripted_http_server(ok + down + ok) as (base_url, requests):
        hosted = Tasteprint(store=tmp_path, llm="openai", model="m", base_url=base_url, max_retries=1)
        start = time.monotonic()
        batch = hosted.profile_many(users, progress=False)
    assert set(batch.profiles) == {"ana", "chloe"}
    assert list(batch.failures) == ["ben"] and "hosted model call failed" in batch.failures["ben"]
    assert time.monotonic() - start < 30
    assert hosted.db.profiles.latest("ana").version == 1 and hosted.db.profiles.latest("ben") is None


def test_bad_local_model_paths_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="local model file not found: .*missing.gguf"):
        LlamaCppBackend(tmp_path / "missing.gguf")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a model" * 100)
    with pytest.raises(LLMError, match="cannot load GGUF model .*garbage.gguf"):
        LlamaCppBackend(garbage)


# -- crash and resume -----------------------------------------------------------------------------


def _rows(store: Path, table: str) -> int:
    """Rows in a store table, read-only while another process writes (0 before the table exists)."""
    try:
        with sqlite3.connect(f"file:{store / 'tasteprint.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.model
def test_batch_killed_with_sigkill_resumes_without_recomputing(tmp_path):
    store = tmp_path / "store"
    Tasteprint(store=store).ingest(BUILT_IN)
    users = ["ana", "ben", "chloe"]
    command = [sys.executable, "-m", "tasteprint.cli", "profile", *users, "--store", str(store), "--json"]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _rows(store, "profiles") < 1 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    done_before = _rows(store, "profiles")
    assert 1 <= done_before < len(users), "the batch should have been killed part-way"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["reused"] == done_before and summary["built"] == len(users) - done_before
    assert summary["versions"] == {u: 1 for u in users}  # nothing recomputed, nothing lost
    with sqlite3.connect(store / "tasteprint.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 132


# -- concurrency ----------------------------------------------------------------------------------

WRITER = """
import sys, numpy as np
from pathlib import Path
from tasteprint.storage.vectors import VectorStore
store, prefix = Path(sys.argv[1]), sys.argv[2]
vectors = VectorStore(store)
rng = np.random.default_rng(abs(hash(prefix)) % 1000)
for n in range(10):
    ids = [f"{prefix}{n}-{m}" for m in range(20)]
    vectors.upsert_items(ids, rng.normal(size=(20, 8)).astype("float32"), [{"title": i} for i in ids])
"""

READER = """
import sys, time
from pathlib import Path
from tasteprint.storage.sqlite import Database
from tasteprint.profile.facts import FactBook
db = Database(Path(sys.argv[1]))
for _ in range(30):
    FactBook(db).facts("ana")
    time.sleep(0.02)
print("read ok")
"""


@pytest.mark.slow
def test_readers_work_while_one_process_writes_and_chroma_writers_are_serialised(tmp_path):
    store = tmp_path / "store"
    Tasteprint(store=store).ingest(BUILT_IN)
    extra = write_jsonl(
        tmp_path / "more" / "events.jsonl",
        [{"user_id": f"u{n}", "item_id": "b001", "kind": "view", "timestamp": 1_600_000_000 + n} for n in range(5000)],
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ingest_cmd = [sys.executable, "-m", "tasteprint.cli", "ingest", str(extra), "--store", str(store), "--json"]
    ingest_cmd.append("--no-fit")  # the writers below put 8-dimensional test vectors in the item collection
    processes = [subprocess.Popen(ingest_cmd, stdout=subprocess.PIPE, text=True, env=env)]
    processes += [
        subprocess.Popen([sys.executable, "-c", READER, str(store)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    processes += [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store), prefix], stdout=subprocess.PIPE, text=True, env=env)
        for prefix in ("a", "b")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6
    assert json.loads(outputs[0])["accepted"] == 5000
    assert all("read ok" in out for out in outputs[1:4])
    from tasteprint.storage.vectors import VectorStore

    vectors = VectorStore(store)
    assert len(vectors.item_ids()) == 400
    assert vectors.nearest_items(np.ones(8, dtype="float32"), 5)
    assert len(Database(store).user_ids()) == 12 + 5000


def _open_store_at(store: Path, start: float) -> None:
    while time.time() < start:  # every process reaches the first open at the same instant
        pass
    Database(store).conn.execute("SELECT COUNT(*) FROM events").fetchone()


def test_six_processes_opening_one_new_store_at_once_all_succeed(tmp_path):
    # Forked, so an open costs no import. Without the lock on the first open, "database is locked"
    # came within ten rounds in each of 3 runs.
    fork = multiprocessing.get_context("fork")
    for round_ in range(10):
        start = time.time() + 0.2
        processes = [fork.Process(target=_open_store_at, args=(tmp_path / str(round_), start)) for _ in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0] * 6, f"round {round_}"


@pytest.mark.slow
def test_four_processes_ingest_into_and_then_recommend_from_one_fresh_store(tmp_path):
    store = tmp_path / "fresh"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cli = [sys.executable, "-m", "tasteprint.cli"]
    ingests = [
        subprocess.Popen(
            [*cli, "ingest", str(BUILT_IN), "--store", str(store), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    finished = [p.communicate(timeout=600) for p in ingests]
    assert [p.returncode for p in ingests] == [0] * 4, [err[-2000:] for _, err in finished]
    recommends = [
        subprocess.Popen(
            [*cli, "recommend", user, "--store", str(store), "--no-rerank", "-k", "3", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for user in ("ana", "ben", "ana", "ben")
    ]
    answers = [p.communicate(timeout=600) for p in recommends]
    assert [p.returncode for p in recommends] == [0] * 4, [err[-2000:] for _, err in answers]
    assert all(len(json.loads(out)) == 3 for out, _ in answers)
    single = tmp_path / "single"
    Tasteprint(store=single).ingest(BUILT_IN)
    count = "SELECT COUNT(*) FROM events"
    assert Database(store).conn.execute(count).fetchone() == Database(single).conn.execute(count).fetchone()
    assert Database(store).user_ids() == Database(single).user_ids()


@pytest.mark.model
def test_eval_killed_with_sigkill_replays_its_llm_work(tmp_path):
    out = tmp_path / "R"
    # One split (msr has no cold-start twin): one user's profile, rerank and reasons, 4 LLM calls.
    command = [sys.executable, "-m", "tasteprint.cli", "eval", str(BUILT_IN), "--protocol", "msr"]
    command += ["--methods", "pop,tasteprint", "--sample", "1", "--out", str(out)]
    # A set blend: no blend tuning on validation users, whose profiles would be most of the LLM work.
    env = {**os.environ, "TASTEPRINT_RERANK_BLEND": "0.5"}
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while _rows(out / "store", "llm_cache") < 2 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    done_before = _rows(out / "store", "llm_cache")
    assert done_before >= 2 and not (out / "results.json").exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["llm_cache"]["hits"] >= done_before  # nothing the killed run finished is recomputed
    assert any(r["method"] == "tasteprint" and r["protocol"] == "msr" for r in results["results"])
    assert _rows(out / "store", "llm_cache") > done_before  # the resumed run did the rest
    with sqlite3.connect(out / "store" / "tasteprint.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_check_backup_and_a_damaged_database(tmp_path):
    """`check` reports a healthy store and exits 0; `backup` copies it so that the copy serves the same
    list; a truncated database gets one line naming the file and the way back, exit 1, no traceback."""
    from typer.testing import CliRunner

    from tasteprint import Tasteprint
    from tasteprint.cli import app
    from tasteprint.cli.demo import BUILT_IN

    store = tmp_path / "store"
    tp = Tasteprint(store=store, fit_embeddings=False)
    tp.ingest(BUILT_IN)
    picks = [r.item_id for r in tp.recommend("ana", k=3, rerank=False).recommendations]
    runner = CliRunner()
    healthy = runner.invoke(app, ["check", "--store", str(store), "--json"])
    assert healthy.exit_code == 0, healthy.output
    report = json.loads(healthy.stdout)
    assert report["database"] == "ok" and report["fit_current"] is True and report["items"] == len(tp.db.items())
    copied = runner.invoke(app, ["backup", str(tmp_path / "copy"), "--store", str(store)])
    assert copied.exit_code == 0, copied.output
    copy = Tasteprint(store=tmp_path / "copy", fit_embeddings=False)
    assert [r.item_id for r in copy.recommend("ana", k=3, rerank=False).recommendations] == picks
    assert runner.invoke(app, ["backup", str(tmp_path / "copy"), "--store", str(store)]).exit_code == 1  # not empty
    database = store / "tasteprint.sqlite"
    for leftover in store.glob("tasteprint.sqlite-*"):
        leftover.unlink()
    database.write_bytes(database.read_bytes()[:3000])
    damaged = runner.invoke(app, ["check", "--store", str(store)])
    assert damaged.exit_code == 1 and "Traceback" not in damaged.output
    said = damaged.output.replace("\n", "")  # the console wraps long lines
    assert str(database) in said and "is damaged" in said and "restore a backup" in said
