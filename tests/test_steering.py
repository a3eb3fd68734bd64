"""Profile edits: stored with the profile, obeyed by recommend, kept through rebuilds, undone, forgotten."""

from __future__ import annotations

import json

import pytest
from conftest import movielens_slice
from typer.testing import CliRunner

from tasteprint import Tasteprint
from tasteprint.cli import app
from tasteprint.profile.edits import UnknownNameError

SLICE_USERS = {str(u) for u in range(1, 41)}


@pytest.fixture(scope="module")
def movielens_small(tmp_path_factory):
    """Users 1-40 of ml-latest-small, fitted without embeddings (the edits act on any fitted list)."""
    folder = tmp_path_factory.mktemp("ml-steering")
    tp = Tasteprint(store=folder / "store", fit_embeddings=False)
    tp.ingest(movielens_slice(folder / "data", SLICE_USERS))
    tp.fit(progress=False)
    return folder / "store"


@pytest.fixture
def store(movielens_small, fresh_copy):
    return fresh_copy(movielens_small)


def run(store, *args):
    result = CliRunner().invoke(app, [*args, "--store", str(store)])
    return result


def picks(store, user="1", k=10):
    result = run(store, "recommend", user, "-k", str(k), "--no-rerank", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def labels_of(store, item_ids):
    items = Tasteprint(store=store, fit_embeddings=False).db.items(item_ids)
    return {i: items[i].labels() for i in item_ids}


@pytest.mark.slow
def test_every_edit_flag_steers_the_list_and_shows_in_the_profile(store):
    before = [p["item_id"] for p in picks(store)]
    labels = labels_of(store, before)
    top_label = max(
        {label for ls in labels.values() for label in ls}, key=lambda x: sum(x in s for s in labels.values())
    )
    result = run(store, "edit", "1", "--not-interested", top_label.lower(), "--json")
    assert result.exit_code == 0, result.output
    edits = json.loads(result.stdout)
    assert [(e["kind"], e["label"], e["source"]) for e in edits] == [("not_interested", top_label, "user")]
    assert set(edits[0]) == {"kind", "label", "source", "at"}
    after = [p["item_id"] for p in picks(store)]
    assert len(after) == 10 and not any(top_label in ls for ls in labels_of(store, after).values())

    # never, by exact title
    first_title = picks(store)[0]["title"]
    first_id = picks(store)[0]["item_id"]
    assert run(store, "edit", "1", "--never", first_title).exit_code == 0
    assert first_id not in [p["item_id"] for p in picks(store)]

    # more: a label with few picks today gets at least 3 of 10
    tp = Tasteprint(store=store, fit_embeddings=False)
    today = labels_of(store, [p["item_id"] for p in picks(store)])
    rare = next(
        label
        for label in ("Horror", "Documentary", "Western", "Musical")
        if sum(label in s for s in today.values()) <= 1
    )
    assert run(store, "edit", "1", "--more", rare).exit_code == 0
    more = labels_of(store, [p["item_id"] for p in picks(store)])
    assert sum(rare in s for s in more.values()) >= 3 and len(more) == 10

    assert tp.db.profiles.latest("1") is None  # no profile built yet: the edits wait for the first build
    shown = json.loads(run(store, "edit", "1", "--undo", top_label, "--json").stdout)
    assert [(e["kind"], e.get("label"), e.get("item_id")) for e in shown] == [
        ("never", None, first_id),
        ("more", rare, None),
    ]
    assert any(top_label in s for s in labels_of(store, [p["item_id"] for p in picks(store)]).values())


@pytest.mark.slow
def test_unknown_names_change_nothing_and_name_the_nearest(store):
    assert run(store, "edit", "1", "--more", "Comedy").exit_code == 0
    for flag, name, nearest in (
        ("--not-interested", "Dramma", "Drama"),
        ("--more", "Sci Fi", "Sci-Fi"),
        ("--never", "Toy Stroy", "Toy Story"),
        ("--undo", "Horror", "Comedy"),  # nothing to undo: the hint lists what this user's edits name
    ):
        result = run(store, "edit", "1", "--never", "1", flag, name)
        assert result.exit_code == 1, (flag, result.output)
        assert nearest in result.output and name in result.output
    edits = Tasteprint(store=store, fit_embeddings=False).db.profiles.edits("1")
    assert [(e.kind, e.label) for e in edits] == [("more", "Comedy")]  # the good --never 1 was not stored either
    assert run(store, "edit", "1").exit_code == 1  # nothing to edit


@pytest.mark.slow
def test_edits_are_versioned_in_the_diff_and_forgotten_with_the_user(store):
    from schema_replies import schema_reply

    from tasteprint.llm import ScriptedBackend

    tp = Tasteprint(store=store, fit_embeddings=False, llm=ScriptedBackend([schema_reply] * 8))
    built = tp.profile("2")
    result = tp.edit_profile("2", more=["Comedy"], never=["1"])
    assert result.profile.version == built.version + 1 and result.profile.based_on == built.version
    diff = json.loads(run(store, "profile", "2", "--diff", "--json").stdout)
    assert diff["edits_added"] == ["more: Comedy", "never: 1"] and diff["edits_removed"] == []
    rebuilt = tp.profile("2", refresh=True)  # a rebuild keeps the edits
    assert [(e.kind, e.target) for e in rebuilt.edits] == [("more", "Comedy"), ("never", "1")]
    with pytest.raises(UnknownNameError):
        tp.edit_profile("2", undo=["Western"])
    tp.forget("2")
    assert tp.db.profiles.edits("2") == [] and tp.db.profiles.latest("2") is None


@pytest.mark.slow
def test_a_new_person_is_served_from_what_they_state(store):
    result = run(store, "edit", "newcomer", "--more", "Animation", "--json")
    assert result.exit_code == 0, result.output
    served = picks(store, "newcomer")
    assert len(served) == 10
    assert sum("Animation" in s for s in labels_of(store, [p["item_id"] for p in served]).values()) >= 3
    profile = json.loads(run(store, "profile", "newcomer", "--json").stdout)
    assert profile["edits"][0]["label"] == "Animation" and profile["interests"] == []


@pytest.mark.model
def test_a_stated_profile_from_a_sentence_on_the_real_model(store, local_backend):
    """The model sorts the mentions it is shown; the text check keeps what the sentence says."""
    tp = Tasteprint(store=store, fit_embeddings=False, llm=local_backend)
    sentence = "I love animated films and comedies, Toy Story most of all, but please no horror."
    result = tp.edit_profile("newcomer", says=sentence)
    stated = {(e.kind, e.target) for e in result.edits}
    assert ("note", sentence) in stated
    assert {("more", "Animation"), ("more", "Comedy"), ("not_interested", "Horror")} <= stated
    toy_story = [i for i, item in tp.db.items().items() if item.title == "Toy Story (1995)"]
    assert ("liked", toy_story[0]) in stated
    served = tp.recommend("newcomer", k=10, rerank=False).recommendations
    assert len(served) == 10 and toy_story[0] not in [r.item_id for r in served]
    assert not any("Horror" in s for s in labels_of(store, [r.item_id for r in served]).values())


@pytest.mark.model
def test_an_edit_is_kept_through_a_real_model_rebuild(store, local_backend):
    tp = Tasteprint(store=store, fit_embeddings=False, llm=local_backend)
    first = tp.profile("3")
    unwanted = first.interests[0].label
    tp.edit_profile("3", not_interested=[unwanted])
    rebuilt = tp.profile("3", refresh=True)
    assert rebuilt.version == first.version + 2
    assert unwanted not in [i.label for i in rebuilt.interests]
    assert [(e.kind, e.label) for e in rebuilt.edits] == [("not_interested", unwanted)]
    assert unwanted.casefold() not in rebuilt.summary.casefold()
