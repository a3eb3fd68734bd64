"""Ranking and LLM-stage metrics: pure functions, one shape: `metric(relevant, ranked, k=10)`.

`relevant` is the set of held-out items, `ranked` the recommended ids best first. Formulas follow
Microsoft Recommenders' `python_evaluation` (binary relevance) and Järvelin & Kekäläinen (2002)
for nDCG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def _hits(relevant: set[str], ranked: Sequence[str], k: int) -> list[int]:
    return [1 if item in relevant else 0 for item in list(ranked)[:k]]


def dcg_at_k(gains: Sequence[float], k: int = 10) -> float:
    """Discounted cumulative gain: sum of gain_i / log2(i + 1), i = 1..k. Range [0, inf)."""
    return sum(g / math.log2(i + 1) for i, g in enumerate(list(gains)[:k], start=1))


def ndcg_at_k(relevant: Iterable[str], ranked: Sequence[str], k: int = 10) -> float:
    """Normalised DCG with binary relevance: DCG / ideal DCG. Range [0, 1]; 0 when nothing is relevant."""
    relevant = set(relevant)
    ideal = dcg_at_k([1.0] * min(len(relevant), k), k)
    return dcg_at_k(_hits(relevant, ranked, k), k) / ideal if ideal else 0.0


def hit_rate_at_k(relevant: Iterable[str], ranked: Sequence[str], k: int = 10) -> float:
    """1 if any relevant item is in the top k, else 0. Range {0, 1}."""
    return float(any(_hits(set(relevant), ranked, k)))


def precision_at_k(relevant: Iterable[str], ranked: Sequence[str], k: int = 10) -> float:
    """Relevant items in the top k, divided by k. Range [0, 1]."""
    return sum(_hits(set(relevant), ranked, k)) / k


def recall_at_k(relevant: Iterable[str], ranked: Sequence[str], k: int = 10) -> float:
    """Relevant items in the top k, divided by the number of relevant items. Range [0, 1]; 0 if none."""
    relevant = set(relevant)
    return sum(_hits(relevant, ranked, k)) / len(relevant) if relevant else 0.0


def map_at_k(relevant: Iterable[str], ranked: Sequence[str], k: int = 10) -> float:
    """Average precision at k: mean of precision@i over the ranks i of hits, divided by min(|relevant|, k)
    (the Recommenders convention). Range [0, 1]."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, hit in enumerate(_hits(relevant, ranked, k), start=1):
        if hit:
            hits += 1
            total += hits / i
    return total / min(len(relevant), k)


def mrr(relevant: Iterable[str], ranked: Sequence[str], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant item (within the top k if given). Range [0, 1]."""
    relevant = set(relevant)
    for i, item in enumerate(list(ranked)[: k or len(ranked)], start=1):
        if item in relevant:
            return 1.0 / i
    return 0.0


def catalogue_coverage(recommendation_lists: Iterable[Sequence[str]], catalogue_size: int, k: int = 10) -> float:
    """Share of the catalogue that appears in at least one top-k list. Range [0, 1]."""
    seen = {item for ranked in recommendation_lists for item in list(ranked)[:k]}
    return len(seen) / catalogue_size if catalogue_size else 0.0


def popularity_bias(recommendation_lists: Iterable[Sequence[str]], popularity: dict[str, int], k: int = 10) -> float:
    """Mean popularity percentile of recommended items (1 = only the most popular). Range [0, 1]."""
    ordered = sorted(popularity, key=lambda i: popularity[i])
    percentile = {item: (n + 1) / len(ordered) for n, item in enumerate(ordered)}
    values = [percentile.get(item, 0.0) for ranked in recommendation_lists for item in list(ranked)[:k]]
    return sum(values) / len(values) if values else 0.0


def rate(count: int, total: int) -> float:
    """count / total, 0 when total is 0: for validity, out-of-candidate, duplicate and grounding rates."""
    return count / total if total else 0.0


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a normal-approximation 95% confidence interval (1.96 * sd / sqrt(n))."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(variance / n)


def label_recall(wanted: Iterable[str], profile_text: str) -> float | None:
    """Share of `wanted` labels the profile names anywhere (case-insensitive whole words); None when
    nothing is wanted."""
    import re

    wanted = list(wanted)
    if not wanted:
        return None
    lowered = profile_text.lower()
    named = [w for w in wanted if re.search(rf"(?<!\w){re.escape(w.lower())}(?!\w)", lowered)]
    return len(named) / len(wanted)


def label_hit(predicted: Sequence[str], actual: Iterable[str]) -> float | None:
    """1 if any predicted label is among the held-out item's labels, else 0; None when the held-out item
    has no labels (nothing to predict) or nothing was predicted."""
    actual = set(actual)
    if not actual or not predicted:
        return None
    return float(bool(set(predicted) & actual))
