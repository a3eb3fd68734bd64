"""`tasteprint batch-profile` on a local Ray cluster: the profiles it writes are the ones `profile`
builds for the same users with the same backend, a rerun resumes, Parquet events are read like JSON
lines, and the real model through llama.cpp's OpenAI-compatible server gives verified profiles."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from schema_replies import schema_reply
from servers import llama_server, reply_server, request_schema
from test_local_model import assert_verified

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN
from tasteprint.llm.llamacpp import default_model_path
from tasteprint.models import UserProfile
from tasteprint.storage.sqlite import Database

CLI = Path(sys.executable).with_name("tasteprint")


def parquet_events(folder: Path) -> Path:
    """The built-in sample's events as a Parquet file, with its items file beside it."""
    folder.mkdir()
    rows = [json.loads(line) for line in (BUILT_IN / "events.jsonl").read_text().splitlines() if line.strip()]
    pq.write_table(pa.Table.from_pylist(rows), folder / "events.parquet")
    shutil.copy(BUILT_IN / "items.jsonl", folder / "items.jsonl")
    return folder / "events.parquet"


def batch_profile(events: Path, out: Path, base_url: str, model: str, users: int) -> dict:
    command = [str(CLI), "batch-profile", str(events), "--out", str(out), "--engine", "ray", "--actors", "2"]
    command += ["--llm", "openai", "--base-url", base_url, "--model", model, "--first", str(users), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def written_profiles(out: Path) -> dict[str, dict]:
    """Each line of profiles.jsonl, which holds one profile object (not a JSON string inside another)."""
    rows = [json.loads(line) for line in (out / "profiles.jsonl").read_text().splitlines()]
    assert all(UserProfile.model_validate(row).user_id == row["user_id"] for row in rows)
    return {row["user_id"]: row for row in rows}


@pytest.mark.slow
def test_ray_batch_profile_writes_what_profile_builds_and_resumes(tmp_path):
    """Against a deterministic endpoint (a real HTTP server whose reply is a function of the request),
    so equality is exact: same facts, same prompts, same replies, same verification."""
    events = parquet_events(tmp_path / "in")
    out = tmp_path / "out"

    def answer(body: dict) -> str:
        return schema_reply(body["messages"], request_schema(body))

    with reply_server(answer) as (base_url, _):
        first = batch_profile(events, out, base_url, "m", 4)
        again = batch_profile(events, out, base_url, "m", 4)
        direct = Tasteprint(store=tmp_path / "direct", llm="openai", model="m", base_url=base_url, llm_cache=False)
        direct.ingest(events)
        users = direct.users()[:4]
        expected = direct.profile_many(users, progress=False)

    assert first["built"] == 4 and not first["failures"] and not first["skipped"]
    assert again["built"] == 0 and sorted(again["skipped"]) == sorted(users)
    written = written_profiles(out)
    assert sorted(written) == sorted(users)
    for user in users:
        profile, reference = written[user], expected.profiles[user]
        assert profile["summary"] == reference.summary
        assert profile["interests"] == [i.model_dump(mode="json") for i in reference.interests]
        assert profile["dislikes"] == [d.model_dump(mode="json") for d in reference.dislikes]
        assert profile["verification"] == reference.verification.model_dump(mode="json")
    table = pq.read_table(out / "profiles.parquet")
    assert sorted(table.column("user_id").to_pylist()) == sorted(users)
    first_row = table.slice(0, 1).to_pylist()[0]
    assert first_row["interests"] == [i["label"] for i in written[first_row["user_id"]]["interests"]]
    stored = Database(out / "store")
    assert all(stored.profiles.latest(u).version == 1 for u in users)  # saved into the store as well


@pytest.mark.model
def test_ray_batch_profile_on_the_real_model_through_llama_server(tmp_path):
    # Not compared token for token with `profile`: llama.cpp's server reuses the KV prefix of whichever
    # request came before, so the order Ray sends requests in shifts greedy picks. Checked for what
    # every profile must be instead.
    events = parquet_events(tmp_path / "in")
    out = tmp_path / "out"
    with llama_server(default_model_path()) as base_url:
        report = batch_profile(events, out, base_url, "smollm2", 1)  # requests in flight: the test above
    assert report["built"] == 1 and not report["failures"]
    store = Tasteprint(store=out / "store")
    written = written_profiles(out)
    assert len(written) == 1
    for user, profile in written.items():
        assert_verified(UserProfile.model_validate(profile), store.facts(user))
        assert profile["model"] == "smollm2"
