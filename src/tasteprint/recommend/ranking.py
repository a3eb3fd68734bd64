"""The ranking stage over the retrievers' candidates: weighted reciprocal-rank fusion, or LambdaMART
(LightGBM's `LGBMRanker`, objective lambdarank) over per-candidate features. The recommender picks
one on validation users (`choose_ranker`); both see the same features, computed here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .metrics import ndcg_at_k
from .retrievers import RRF_K
from .validation import Case, keeps_long_term, objective

FUSION_GRID = tuple(
    {"main": 1.0, "main-plain": plain, "second": second, "embed": embed, "pop": pop}
    for plain in (0.0, 0.2, 0.5)
    for second in (0.0, 0.3, 0.7)
    for embed in (0.0, 0.3)
    for pop in (0.0, 0.1)
)

LEAD_ALONE = FUSION_GRID[0]  # every other weight 0: the leading retriever's own order


@dataclass
class Pool:
    """One user's candidates (indices into the fitted items) with each retriever's score and rank
    among the user's unseen items (1 = best), and the user-level facts the features need."""

    items: np.ndarray
    scores: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]
    history_length: int
    label_affinity: np.ndarray

    def fused(self, weights: dict[str, float]) -> np.ndarray:
        """Weighted reciprocal-rank fusion score of each candidate."""
        total = np.zeros(len(self.items), dtype=np.float64)
        for source, ranks in self.ranks.items():
            total += weights.get(source, 0.0) / (RRF_K + ranks)
        return total

    def ordered(self, scores: np.ndarray) -> np.ndarray:
        """The pool's items best first by `scores`; ties by the main retriever's score, then item index."""
        return self.items[np.lexsort((self.items, -self.scores["main"], -scores))]

    def features(self, popularity: np.ndarray) -> np.ndarray:
        """One row per candidate: each retriever's log rank and score relative to the user's best, item
        popularity, history length and the candidate's label affinity with the history."""
        columns = []
        for source in sorted(self.scores):
            scores = self.scores[source]
            top = (np.max(np.abs(scores)) if len(scores) else 0.0) or 1.0
            columns += [np.log1p(self.ranks[source]), scores / top]
        columns += [
            np.log1p(popularity[self.items]),
            np.full(len(self.items), np.log1p(self.history_length)),
            self.label_affinity,
        ]
        return np.column_stack(columns).astype(np.float32)


def earns_its_place(stage: np.ndarray, lead: np.ndarray, standard_errors: float = 1.96) -> bool:
    """Whether a tuned ranking stage beats the leading retriever alone on the same validation cases:
    the paired gain's mean exceeds `standard_errors` of its standard errors (1.96: the 95% confidence
    interval lies above 0). On small data a lucky stage otherwise wins."""
    gains = np.asarray(stage, dtype=np.float64) - np.asarray(lead, dtype=np.float64)
    if len(gains) < 2:
        return False
    return float(gains.mean()) > standard_errors * float(gains.std(ddof=1)) / np.sqrt(len(gains))


def fit_lambdamart(pools: list[Pool], targets: list[set[int]], popularity: np.ndarray, seed: int):
    """A LightGBM lambdarank booster trained on pools whose held-out target is among the candidates
    (its `predict` gives raw ranking scores), or None when fewer than 20 such pools exist."""
    from lightgbm import LGBMRanker

    rows, labels, groups = [], [], []
    for pool, target in zip(pools, targets):
        relevant = np.isin(pool.items, list(target))
        if not relevant.any():
            continue  # no positive: nothing to learn from this user
        rows.append(pool.features(popularity))
        labels.append(relevant.astype(int))
        groups.append(len(pool.items))
    if len(groups) < 20:
        return None
    model = LGBMRanker(
        objective="lambdarank",
        n_estimators=150,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        lambdarank_truncation_level=20,
        random_state=seed,
        n_jobs=2,
        verbose=-1,
    )
    model.fit(np.vstack(rows), np.concatenate(labels), group=groups)
    return model.booster_  # the trained booster alone: what a store saves as LightGBM's model text


def choose_ranker(
    tune_cases: list[Case],
    check_cases: list[Case],
    pool_of: dict[int, Pool],
    popularity: np.ndarray,
    ranker: str,
    seed: int,
):
    """Fusion weights tuned on `tune_cases`, LambdaMART trained on them (unless `ranker` is "fusion";
    "lambdamart" forces it), or the leading retriever alone. On `check_cases` (other users) a tuned
    stage must beat the leader alone with the 95% confidence interval of the paired gain above 0 (noise
    on small data otherwise picks it); the best that does is kept. `pool_of` maps `id(case)` to its
    pool. Returns the LambdaMART booster (None unless chosen), the fusion weights (`LEAD_ALONE` unless
    fusion is chosen), and each stage's NDCG@10 on `check_cases`."""

    def ndcgs(cases: list[Case], score: Callable[[Pool], np.ndarray]) -> np.ndarray:
        pools = [pool_of[id(c)] for c in cases]
        return np.array([c.weight * ndcg_at_k(c.wanted, p.ordered(score(p))[:10]) for c, p in zip(cases, pools)])

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else 0.0

    fusion_means = [objective(ndcgs(tune_cases, lambda p, w=w: p.fused(w)), tune_cases) for w in FUSION_GRID]
    tuned = dict(FUSION_GRID[int(np.argmax(fusion_means))])
    lead = ndcgs(check_cases, lambda p: p.fused(LEAD_ALONE))
    results = {"fusion": ndcgs(check_cases, lambda p: p.fused(tuned))}
    model = None
    if ranker != "fusion":
        model = fit_lambdamart([pool_of[id(c)] for c in tune_cases], [c.wanted for c in tune_cases], popularity, seed)
        if model is not None:
            results["lambdamart"] = ndcgs(check_cases, lambda p: model.predict(p.features(popularity)))

    earning = [stage for stage, values in results.items() if earns_its_place(values, lead)]
    earning = [
        stage
        for stage in earning
        if objective(results[stage], check_cases) > objective(lead, check_cases)
        and keeps_long_term(results[stage], lead, check_cases)
    ]
    chosen = max(earning, key=lambda stage: objective(results[stage], check_cases), default="lead alone")
    if ranker == "lambdamart" and model is not None:
        chosen = "lambdamart"
    weights = tuned if chosen == "fusion" else dict(LEAD_ALONE)
    scored = {stage: mean(values) for stage, values in results.items()} | {"lead alone": mean(lead)}
    return (model if chosen == "lambdamart" else None), weights, scored
