"""Profile lifecycle: stale marking on ingest, incremental updates through the update prompt, versions
and diffs; with a scripted model for the mechanics and the real local model for one update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from schema_replies import schema_reply
from test_local_model import assert_verified
from typer.testing import CliRunner

from tasteprint import Tasteprint
from tasteprint.cli import app
from tasteprint.llm import ScriptedBackend
from tasteprint.profile.draft import UPDATE_PROMPT_NAME
from tasteprint.storage.sqlite import Database


def split_history(store: Path, user_id: str, out: Path, first_share: float = 0.6) -> tuple[Path, Path]:
    """Write a user's events from a store as two generic-format folders (earlier part, later part),
    each with the catalogue rows of its items."""
    db = Database(store)
    events = db.user_events(user_id)
    cut = int(len(events) * first_share)
    folders = []
    for name, part in (("early", events[:cut]), ("late", events[cut:])):
        folder = out / name
        folder.mkdir(parents=True)
        items = db.items({e.item_id for e in part})
        (folder / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in part))
        (folder / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in items.values()))
        folders.append(folder)
    return folders[0], folders[1]


def test_new_events_mark_stale_and_profile_updates_through_the_update_prompt(tmp_path, movielens_store):
    early, late = split_history(movielens_store, "1", tmp_path / "data")
    backend = ScriptedBackend([schema_reply] * 10)
    tp = Tasteprint(store=tmp_path / "s", llm=backend)
    tp.ingest(early)
    first = tp.profile("1")
    assert first.version == 1 and first.prompt == "profile_user.j2" and not tp.db.profiles.is_stale("1")
    assert tp.profile("1") == first  # nothing new: the stored version, no model call
    calls = len(backend.history)
    tp.ingest(early)  # duplicates only: still fresh
    assert not tp.db.profiles.is_stale("1")
    tp.ingest(late)
    assert tp.db.profiles.is_stale("1")
    second = tp.profile("1")
    assert second.version == 2 and second.prompt == UPDATE_PROMPT_NAME and second.based_on == 1
    assert not tp.db.profiles.is_stale("1") and second.n_events > first.n_events
    update_prompt = backend.history[calls][0][1]["content"]
    assert "so far (version 1)" in update_prompt and "new events" in update_prompt
    # The update's claims may only cite items that arrived after version 1.
    early_items = {json.loads(line)["item_id"] for line in (early / "events.jsonl").read_text().splitlines()}
    new_ids = {
        i
        for choice in backend.history[calls][1]["properties"]["interests"]["items"]["anyOf"]
        for i in choice["properties"]["evidence"]["items"]["enum"]
    }
    assert new_ids and not new_ids & early_items
    assert [p.version for p in tp.profile_history("1")] == [1, 2]
    change = tp.diff("1")
    assert change.new_events == second.n_events - first.n_events and change.changed


def test_cli_history_and_diff(tmp_path, movielens_store):
    early, late = split_history(movielens_store, "1", tmp_path / "data")
    tp = Tasteprint(store=tmp_path / "s", llm=ScriptedBackend([schema_reply] * 10))
    tp.ingest(early)
    tp.profile("1")
    runner = CliRunner()
    store = ["--store", str(tmp_path / "s")]
    one = runner.invoke(app, ["profile", "1", "--diff", *store])
    assert one.exit_code == 1 and "a diff needs two" in one.output
    tp.ingest(late)
    tp.profile("1")
    history = json.loads(runner.invoke(app, ["profile", "1", "--history", "--json", *store]).stdout)
    assert [(h["version"], h["prompt"], h["based_on"]) for h in history] == [
        (1, "profile_user.j2", None),
        (2, UPDATE_PROMPT_NAME, 1),
    ]
    table = runner.invoke(app, ["profile", "1", "--diff", *store])
    assert table.exit_code == 0 and "v1 -> v2" in table.output


@pytest.mark.model
def test_real_update_on_the_local_model(tmp_path, movielens_store, local_backend):
    early, late = split_history(movielens_store, "414", tmp_path / "data", first_share=0.5)
    tp = Tasteprint(store=tmp_path / "s", llm=local_backend)
    tp.ingest(early)
    first = tp.profile("414")
    tp.ingest(late)
    second = tp.update("414")
    assert (second.version, second.prompt, second.based_on) == (2, UPDATE_PROMPT_NAME, 1)
    assert_verified(second, tp.facts("414"))
    assert second.interests and second.summary
    change = tp.diff("414")
    assert change.changed, change
    assert set(change.added) == {i.label for i in second.interests} - {i.label for i in first.interests}
