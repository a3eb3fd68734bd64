"""Validation for the fit: cases held out from the training data, optional shortlists, and the
NDCG@10 of one retriever per case at each recency setting. Pure functions of their inputs, seeded."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .metrics import ndcg_at_k
from .retrievers import Interactions, batch_scores, top_indices

NEXT_POSITIONS = 3  # next-item validation cases per user: more cases, steadier choices on small data
MIN_VALIDATION_ITEMS = 5
SCORE_CHUNK = 256  # validation histories scored at once (bounds memory on large catalogues)
HALF_LIVES = (None, 3.0, 5.0, 10.0, 20.0)  # None: the plain history, every item weighted 1
PLAIN_MIX = (0.0, 0.3, 0.5, 1.0, 3.0)
# With the both target: the share of plain EASE's NDCG on a random fifth of the history that a setting
# must keep (long-term taste) before its next-item gain counts. At 0.95 the served list kept 0.966 of
# EASE's on a held-out random split of ml-latest-small, at 0.97 0.986 (and 1.43x on the next item).
LONG_TERM_FLOOR = 0.97


@dataclass
class Case:
    """One validation case: what the recommender sees (oldest first) and the held-out items it should
    rank high, as indices into the fitted items. `kind` is its target (next or random); `weight` scales
    its NDCG in every choice the fit makes (see `weigh_cases`)."""

    user_id: str
    history: list[str]
    targets: set[str]
    wanted: set[int] = field(default_factory=set)
    kind: str = "next"
    weight: float = 1.0


def hold_out(
    histories: dict[str, list[str]], target: str, users: int, seed: int
) -> tuple[list[Case], dict[str, list[str]]]:
    """Validation cases of a seeded sample of users with enough items, and the histories without
    their targets."""
    eligible = sorted(u for u, h in histories.items() if len(set(h)) >= MIN_VALIDATION_ITEMS)
    rng = random.Random(seed)
    sample = rng.sample(eligible, min(users, len(eligible)))
    cases: list[Case] = []
    held: dict[str, set[str]] = {}
    for user_id in sorted(sample):
        history = histories[user_id]
        held[user_id] = set()
        if target in ("next", "both"):
            # Earlier positions only while the prefix stays as long as the shortest eligible history's
            # last one: a 2-item prefix would tune for histories nobody is served from.
            first = max(len(history) - NEXT_POSITIONS, MIN_VALIDATION_ITEMS - 1)
            for position in range(first, len(history)):
                item = history[position]
                cases.append(Case(user_id, [i for i in history[:position] if i != item], {item}))
            held[user_id] |= set(history[first:])
        if target in ("random", "both"):
            # With both, the random fifth is drawn from the items before the next-item targets.
            distinct = sorted(set(history) - held[user_id])
            picker = random.Random(f"{seed}:{user_id}")
            fifth = set(picker.sample(distinct, max(1, len(distinct) // 5)))
            cases.append(Case(user_id, [i for i in history if i not in fifth], fifth, kind="random"))
            held[user_id] |= fifth
    inner = {u: [i for i in h if i not in held.get(u, ())] for u, h in histories.items()}
    return cases, inner


def shortlists(cases: list[Case], interactions: Interactions, size: int | None, seed: int) -> list[np.ndarray]:
    """With a `size`, each case's targets plus random unseen items (seeded by case)."""
    if not size:
        return []
    shortlists = []
    for case in cases:
        unseen = ~(interactions.vector(case.history) > 0)
        unseen[list(case.wanted)] = False
        seed = random.Random(f"{seed}:{case.user_id}:{len(case.history)}").randrange(2**32)
        others = np.random.default_rng(seed).choice(
            np.flatnonzero(unseen), min(size - 1, int(unseen.sum())), replace=False
        )
        shortlists.append(np.concatenate([sorted(case.wanted), others]).astype(int))
    return shortlists


def recency_ndcgs(
    retriever, interactions: Interactions, cases: list[Case], shortlists: list[np.ndarray]
) -> dict[tuple, np.ndarray]:
    """NDCG@10 of each of `cases` for one retriever at each (half-life, plain mix); histories are
    scored in chunks, one matrix product per setting."""
    ndcgs: dict[tuple, list[float]] = {}
    for start in range(0, len(cases), SCORE_CHUNK):
        chunk = cases[start : start + SCORE_CHUNK]
        plain_rows = np.stack([interactions.vector(c.history) for c in chunk])
        plain = batch_scores(retriever, plain_rows)
        for half_life in HALF_LIVES:
            if half_life is None:
                recent = plain
            else:
                rows = np.stack([interactions.vector(c.history, half_life) for c in chunk])
                recent = batch_scores(retriever, rows)
            for mix in (0.0,) if half_life is None else PLAIN_MIX:
                for row, case in enumerate(chunk):
                    scores = recent[row] + mix * plain[row]
                    if shortlists:
                        listed = shortlists[start + row]
                        top = listed[np.lexsort((listed, -scores[listed]))][:10]
                    else:
                        top = top_indices(scores, plain_rows[row] > 0, 10)
                    ndcgs.setdefault((half_life, mix), []).append(case.weight * ndcg_at_k(case.wanted, top))
    return {setting: np.array(values) for setting, values in ndcgs.items()}


def weigh_cases(cases: list[Case], reference: dict[tuple, np.ndarray]) -> dict[str, float]:
    """With cases of several kinds, weight each by 1 / the `reference` (plain-history) mean NDCG on its
    kind, so that a kind's mean weighted NDCG is its ratio to the reference (1.0 for the reference
    itself; see `objective`). Returns each kind's reference mean. A single kind keeps weight 1."""
    plain = reference[(None, 0.0)]
    kinds = sorted({c.kind for c in cases})
    means = {kind: float(np.mean([v for v, c in zip(plain, cases) if c.kind == kind])) for kind in kinds}
    if len(kinds) > 1 and all(means.values()):
        for case in cases:
            case.weight = 1.0 / means[case.kind]
    return means


def objective(values: np.ndarray, cases: list[Case]) -> float:
    """What the fit maximises over `cases` (their weighted NDCG@10 in `values`): the mean for one kind
    of target. With both kinds, long-term taste comes first: a setting must keep the random fifth's
    NDCG at LONG_TERM_FLOOR of plain EASE's or more, and among those the best next-item ratio wins
    (plain EASE itself always qualifies, at 1.0); a setting below the floor scores how far below it
    is, so it never beats one that keeps long-term taste."""
    if not len(values):
        return 0.0
    kinds = {c.kind for c in cases}
    if len(kinds) == 1:
        return float(np.mean(values))
    means = {kind: float(np.mean([v for v, c in zip(values, cases) if c.kind == kind])) for kind in kinds}
    if means["random"] < LONG_TERM_FLOOR:
        return means["random"] - LONG_TERM_FLOOR
    return means["next"]


def keeps_long_term(stage: np.ndarray, lead: np.ndarray, cases: list[Case]) -> bool:
    """With both kinds of target, whether a ranking stage keeps the leading retriever's NDCG on the random
    fifth (fusing in popularity or other lists must not buy next-item gains with long-term taste).
    Always true for one kind."""
    random_cases = [n for n, c in enumerate(cases) if c.kind == "random"]
    if len(random_cases) == len(cases) or not random_cases:
        return True
    return float(np.mean(stage[random_cases])) >= float(np.mean(lead[random_cases]))
