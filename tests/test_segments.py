"""Segments: k-means over profile embeddings and numeric facts, verified descriptions, the CLI, and the
segment prior for users with little history."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import movielens_slice
from schema_replies import schema_reply
from typer.testing import CliRunner

from tasteprint import Tasteprint
from tasteprint.cli import app
from tasteprint.llm import ScriptedBackend
from tasteprint.profile.segments import MIN_LABEL_SHARE, description_schema, without_repeats

pytestmark = pytest.mark.xdist_group("segments")  # one worker builds the profiled slice

USERS = [str(u) for u in range(1, 41)]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """The 40 users' real MovieLens data (their ratings, tags and the movies they rated), profiled."""
    folder = tmp_path_factory.mktemp("segments")
    tp = Tasteprint(store=folder / "store", llm=ScriptedBackend([schema_reply] * 200))
    tp.ingest(movielens_slice(folder / "data", set(USERS)))
    batch = tp.profile_many(USERS, progress=False)
    assert not batch.failures
    return folder / "store"


def test_cli_segments_k5_json(profiled):
    replies = ["not a description"] * 20  # a model that ignores the pattern: descriptions come from data
    tp = Tasteprint(store=profiled, llm=ScriptedBackend(replies))
    result = tp.segments(k=5)
    assert len(result.segments) == 5 and sum(s.size for s in result.segments) == len(USERS)
    assert sorted(m for s in result.segments for m in s.members) == sorted(USERS)
    for segment in result.segments:
        assert segment.description and segment.verified and not segment.by_llm
        # Recomputed from the members' stored profiles: the labels held by at least MIN_LABEL_SHARE of
        # the members (most shared first, at most 5); only when none is, the three most shared.
        latest = [tp.db.profiles.latest(m) for m in segment.members]
        held = Counter(label for profile in latest for label in {i.label for i in profile.interests})
        ranked = sorted(held.items(), key=lambda kv: (-kv[1], kv[0]))
        common = [label for label, n in ranked if n / segment.size >= MIN_LABEL_SHARE][:5]
        assert [i.label for i in segment.top_interests] == (common or [label for label, _ in ranked[:3]])
        assert [i.share for i in segment.top_interests] == [
            round(held[i.label] / segment.size, 3) for i in segment.top_interests
        ]
    printed = CliRunner().invoke(
        app, ["segments", "--segments", "5", "--json", "--store", str(profiled), "--llm", "scripted"]
    )
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.stdout)
    assert len(document["segments"]) == 5 and sum(s["size"] for s in document["segments"]) == len(USERS)
    assert all(s["description"] and s["verified"] for s in document["segments"])
    assert "centroid" not in document["segments"][0]


def test_auto_k_picks_the_best_silhouette(profiled):
    result = Tasteprint(store=profiled, llm=ScriptedBackend(["x"] * 40)).segments(k="auto")
    assert set(result.silhouettes) == set(range(2, 9))
    assert result.k == max(result.silhouettes, key=lambda k: (result.silhouettes[k], -k))
    bad = CliRunner().invoke(app, ["segments", "--segments", "99", "--store", str(profiled), "--llm", "scripted"])
    assert bad.exit_code == 1 and "cannot make 99 segments from 40 profiled users" in bad.output


def test_description_pattern_only_admits_shared_labels():
    pattern = description_schema(["Drama", "Comedy"])["properties"]["summary"]["pattern"]
    assert re.fullmatch(pattern, "Most members enjoy Drama and Comedy.")
    assert not re.fullmatch(pattern, "Most members enjoy Horror.")


def test_repeated_labels_are_named_once():
    assert without_repeats("This group enjoys 1980s, 1990s and 1990s.", ["1980s", "1990s"]) == (
        "This group enjoys 1980s and 1990s."
    )
    assert without_repeats("Members like Drama and Action.", ["Drama", "Action"]) == "Members like Drama and Action."


def test_cold_user_gets_the_nearest_segment_as_a_prior(profiled, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(profiled, store)
    tp = Tasteprint(store=store, llm=ScriptedBackend(["x"] * 20))
    tp.segments(k=3)
    events = tmp_path / "cold" / "events.jsonl"
    events.parent.mkdir()
    events.write_text(
        "".join(
            json.dumps({"user_id": "newbie", "item_id": i, "kind": "rating", "rating": 5, "timestamp": 1_500_000_000})
            + "\n"
            for i in ("1", "260", "1196")
        )
    )
    tp.ingest(events)
    recommendations = tp.recommend("newbie", k=10, rerank=False).recommendations
    assert any("segment" in r.sources for r in recommendations)


@pytest.mark.model
def test_real_segment_descriptions(profiled, local_backend):
    result = Tasteprint(store=profiled, llm=local_backend).segments(k=3)
    assert sum(s.size for s in result.segments) == len(USERS)
    written = [s for s in result.segments if s.by_llm]
    assert written, [s.description for s in result.segments]
    for segment in written:
        labels = [i.label for i in segment.top_interests if i.share >= MIN_LABEL_SHARE]
        assert re.fullmatch(description_schema(labels)["properties"]["summary"]["pattern"], segment.description)
        assert segment.verified


def test_a_model_outage_falls_back_to_the_data_description_and_says_why(profiled):
    # No LLM cache: other tests in this module cached replies to the same segment prompts.
    result = Tasteprint(store=profiled, llm=ScriptedBackend([]), llm_cache=False).segments(k=2)  # LLMError
    assert result.segments and all(not s.by_llm and s.verified for s in result.segments)
    assert all("LLMError" in s.fallback and "no reply left" in s.fallback for s in result.segments)
    # A reply that arrives has a reason exactly when it was not used.
    answered = Tasteprint(store=profiled, llm=ScriptedBackend([schema_reply] * 10), llm_cache=False).segments(k=2)
    assert all((s.fallback is None) == s.by_llm for s in answered.segments)


def test_a_word_inside_an_allowed_label_is_not_an_unverified_label():
    from tasteprint.profile.segments import SegmentInterest, unverified_labels

    shared = [
        SegmentInterest(label="Science Fiction & Fantasy", share=0.8),
        SegmentInterest(label="History", share=0.6),
        SegmentInterest(label="Cooking", share=0.5),
        SegmentInterest(label="Horror", share=0.1),
    ]
    vocabulary = {"Science Fiction & Fantasy", "fantasy", "history", "History", "cook", "Cooking", "Horror"}
    assert unverified_labels("Members like Science Fiction & Fantasy, history and Cooking.", shared, vocabulary) == []
    assert unverified_labels("Members like Horror and cook books.", shared, vocabulary) == ["Horror", "cook"]
