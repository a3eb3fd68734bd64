import math

import pytest

from tasteprint.recommend.metrics import (
    catalogue_coverage,
    dcg_at_k,
    hit_rate_at_k,
    map_at_k,
    mean_ci95,
    mrr,
    ndcg_at_k,
    popularity_bias,
    precision_at_k,
    rate,
    recall_at_k,
)


def test_textbook_dcg_example():
    # Wikipedia "Discounted cumulative gain": relevances 3, 2, 3, 0, 1, 2 -> DCG6 = 6.861, IDCG6 = 8.740
    gains = [3, 2, 3, 0, 1, 2]
    assert dcg_at_k(gains, 6) == pytest.approx(6.861, abs=1e-3)
    assert dcg_at_k(sorted([3, 3, 3, 2, 2, 2, 1, 0], reverse=True), 6) == pytest.approx(8.740, abs=1e-3)
    assert dcg_at_k(gains, 6) / dcg_at_k([3, 3, 3, 2, 2, 2], 6) == pytest.approx(0.785, abs=1e-3)


def test_binary_ndcg_by_hand():
    ranked = ["a", "b", "c", "d"]
    assert ndcg_at_k({"a"}, ranked) == 1.0
    assert ndcg_at_k({"c"}, ranked) == pytest.approx(1 / math.log2(4))
    # relevant b and d: DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k({"b", "d"}, ranked) == pytest.approx(expected)
    assert ndcg_at_k({"z"}, ranked) == 0.0
    assert ndcg_at_k(set(), ranked) == 0.0
    assert ndcg_at_k({"d"}, ranked, k=3) == 0.0


def test_random_order_of_twenty_has_the_llmrank_expectation():
    # One relevant item uniformly placed among 20: E[NDCG@10] = (1/20) * sum_{i=1..10} 1/log2(i+1) = 0.2272
    expected = sum(ndcg_at_k({"x"}, ["o"] * i + ["x"], 10) for i in range(20)) / 20
    assert expected == pytest.approx(0.2272, abs=1e-4)


def test_precision_recall_hit_map_mrr_by_hand():
    relevant, ranked = {"a", "c", "f"}, ["a", "b", "c", "d", "e"]
    assert precision_at_k(relevant, ranked, 5) == pytest.approx(2 / 5)
    assert recall_at_k(relevant, ranked, 5) == pytest.approx(2 / 3)
    assert hit_rate_at_k(relevant, ranked, 1) == 1.0
    assert hit_rate_at_k({"e"}, ranked, 4) == 0.0
    # AP@5 = (1/1 + 2/3) / min(3, 5)
    assert map_at_k(relevant, ranked, 5) == pytest.approx((1 + 2 / 3) / 3)
    assert mrr({"c"}, ranked) == pytest.approx(1 / 3)
    assert mrr({"z"}, ranked) == 0.0


def test_coverage_popularity_rate_and_ci():
    assert catalogue_coverage([["a", "b"], ["b", "c"]], 10, k=2) == pytest.approx(0.3)
    popularity = {"a": 1, "b": 2, "c": 3, "d": 4}
    assert popularity_bias([["d"], ["c"]], popularity, k=1) == pytest.approx((1.0 + 0.75) / 2)
    assert rate(1, 4) == 0.25 and rate(3, 0) == 0.0
    mean, half = mean_ci95([1.0, 0.0, 1.0, 0.0])
    assert mean == 0.5
    assert half == pytest.approx(1.96 * math.sqrt((4 * 0.25 / 3) / 4))


def test_profile_fidelity_by_hand():
    """Three Drama items, two Comedy, one Horror: Drama and Comedy are dominant (30%+ of items); the
    profile names Drama and Horror, so it recalls 1 of the 2 dominant labels and 2 of the top 3; its
    interest (Drama) hits the held-out item's labels, and so does the data-only profile's top label."""
    from tasteprint.evaluation.methods import profile_fidelity
    from tasteprint.models import Event, Interest, Item, UserProfile, VerificationStats
    from tasteprint.profile.facts import build_facts

    genres = {"a": ["Drama"], "b": ["Drama"], "c": ["Drama", "Comedy"], "d": ["Comedy"], "e": ["Horror"]}
    items = {i: Item(item_id=i, title=i.upper(), attributes={"genres": g}) for i, g in genres.items()}
    items["next"] = Item(item_id="next", title="Next", attributes={"genres": ["Drama", "War"]})
    events = [Event(user_id="u", item_id=i, kind="rating", rating=4.0, timestamp=n) for n, i in enumerate(genres)]
    facts = build_facts("u", events, items, {})
    profile = UserProfile(
        user_id="u",
        summary="Likes horror at night.",
        interests=[Interest(label="Drama", weight=1.0, evidence=["a"])],
        dislikes=[],
        context={},
        sources=["x"],
        model="m",
        prompt="p",
        verification=VerificationStats(),
    )
    fidelity = profile_fidelity(facts, profile, {"next"}, items)
    assert [a.label for a in facts.dominant] == ["Drama", "Comedy"]
    assert fidelity["dominant_recall"] == 0.5 and fidelity["top3_recall"] == pytest.approx(2 / 3)
    assert fidelity["next_label_hit"] == 1.0 and fidelity["next_label_hit_data_only"] == 1.0
    assert profile_fidelity(facts, profile, {"e"}, items)["next_label_hit"] == 0.0
