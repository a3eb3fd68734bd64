"""`tasteprint batch-profile` on a local Ray cluster against llama.cpp's OpenAI-compatible server: the
profiles it writes are the ones `profile` builds for the same users with the same backend, a rerun
resumes, and Parquet events are read like JSON lines."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasteprint import Tasteprint
from tasteprint.db import Database
from tasteprint.demo import BUILT_IN
from tasteprint.llm.llamacpp import default_model_path

from servers import llama_server

CLI = Path(sys.executable).with_name("tasteprint")


def parquet_events(folder: Path) -> Path:
    """The built-in sample's events as a Parquet file, with its items file beside it."""
    folder.mkdir()
    rows = [json.loads(line) for line in (BUILT_IN / "events.jsonl").read_text().splitlines() if line.strip()]
    pq.write_table(pa.Table.from_pylist(rows), folder / "events.parquet")
    shutil.copy(BUILT_IN / "items.jsonl", folder / "items.jsonl")
    return folder / "events.parquet"


def batch_profile(events: Path, out: Path, base_url: str) -> dict:
    command = [str(CLI), "batch-profile", str(events), "--out", str(out), "--engine", "ray", "--concurrency", "2"]
    command += ["--llm", "openai", "--base-url", base_url, "--model", "smollm2", "--users", "3", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.model
def test_ray_batch_profile_writes_what_profile_builds_and_resumes(tmp_path):
    events = parquet_events(tmp_path / "in")
    out = tmp_path / "out"
    with llama_server(default_model_path()) as base_url:
        first = batch_profile(events, out, base_url)
        again = batch_profile(events, out, base_url)
        direct = Tasteprint(
            store=tmp_path / "direct", llm="openai", model="smollm2", base_url=base_url, llm_cache=False
        )
        direct.ingest(events)
        users = direct.users()[:3]
        expected = direct.profile_many(users, progress=False)

    assert first["built"] == 3 and not first["failures"] and not first["skipped"]
    assert again["built"] == 0 and sorted(again["skipped"]) == sorted(users)
    written = {
        row["user_id"]: json.loads(row["profile"])
        for row in map(json.loads, (out / "profiles.jsonl").read_text().splitlines())
    }
    assert sorted(written) == sorted(users)
    for user in users:
        profile, reference = written[user], expected.profiles[user]
        assert profile["summary"] == reference.summary
        assert profile["interests"] == [i.model_dump(mode="json") for i in reference.interests]
        assert profile["verification"] == reference.verification.model_dump(mode="json")
    table = pq.read_table(out / "profiles.parquet")
    assert sorted(table.column("user_id").to_pylist()) == sorted(users)
    first_row = table.slice(0, 1).to_pylist()[0]
    assert first_row["interests"] == [i["label"] for i in written[first_row["user_id"]]["interests"]]
    stored = Database(out / "store")
    assert all(stored.latest_profile(u).version == 1 for u in users)  # saved into the store as well
