"""Real profiles on the embedded SmolLM2-135M model: schema and verification invariants must hold."""

import pytest

from tasteprint.db import Database
from tasteprint.facts import FactBook
from tasteprint.models import UserProfile
from tasteprint.profile import build_profile

pytestmark = pytest.mark.model


def assert_verified(profile: UserProfile, facts) -> None:
    UserProfile.model_validate(profile.model_dump())
    assert profile.summary and len(profile.summary) <= 400
    history = set(facts.history_item_ids)
    for interest in profile.interests:
        assert 0 <= interest.weight <= 1
        assert interest.evidence
        for item_id in interest.evidence:
            assert item_id in history
            assert interest.label in facts.item_labels[item_id]
            assert facts.item_ratings.get(item_id, 5) > 2
    for dislike in profile.dislikes:
        for item_id in dislike.evidence:
            assert item_id in history and facts.item_ratings[item_id] <= 2
            assert dislike.label in facts.item_labels[item_id]
    v = profile.verification
    assert v.interests_kept == len(profile.interests) <= v.interests_proposed
    assert v.dislikes_kept == len(profile.dislikes) <= v.dislikes_proposed
    assert profile.completion_tokens > 0


@pytest.mark.parametrize("user_id", ["1", "2", "414"])
def test_real_profiles_on_movielens(movielens_store, local_backend, user_id):
    book = FactBook(Database(movielens_store))
    facts = book.facts(user_id)
    profile = build_profile(facts, local_backend, vocabulary=set(book.global_shares))
    assert_verified(profile, facts)
    assert profile.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert profile.interests, "the grammar requires at least one interest for users with labelled items"


@pytest.mark.parametrize("user_id", ["A5QQOOZJOVPSF", "A3JPFWKS83R49V", "A2OTUWUSH49XIN"])
def test_real_profiles_on_amazon(amazon_store, local_backend, user_id):
    book = FactBook(Database(amazon_store))
    facts = book.facts(user_id)
    profile = build_profile(facts, local_backend, vocabulary=set(book.global_shares))
    assert_verified(profile, facts)
    assert profile.sources == ["amazon"]
