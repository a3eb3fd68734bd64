"""The evaluation's tasks: each protocol's split, its candidates, and the recommender fitted on what
that split lets the model see (`build_tasks`). The fit's validation mirrors each protocol: the next
item ranked among all items for `loo`, among 20 sampled items for `cand20`, and a random fifth of
the items for `msr`."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tasteprint.explain.rerank import Judge, blend_tuner
from tasteprint.models import Event, FitConfig
from tasteprint.recommend.recommender import Recommender
from tasteprint.recommend.retrievers import ordered_history

from .split import Split, cold_start, leave_last_out, random_split

PROTOCOLS = ("loo", "cand20", "msr")
SAMPLED_NEGATIVES = 19


@dataclass
class Task:
    """One protocol on one split: who is evaluated, on which candidates (None: every unseen item),
    and the recommender fitted on what that split lets the model see."""

    protocol: str
    split: Split
    recommender: Recommender
    candidates: Callable[[str, set[str]], list[str] | None]
    user_vectors: dict[str, np.ndarray] | None = None  # bert-kmeans, fitted on first use

    def history(self, user_id: str) -> list[Event]:
        return self.split.history_for_test(user_id)

    def popularity(self, catalogue: list[str]) -> np.ndarray:
        """Interaction counts in the fitted data, aligned with `catalogue`."""
        interactions = self.recommender.interactions
        counts = dict(zip(interactions.items, interactions.popularity))
        return np.array([counts.get(i, 0) for i in catalogue], dtype=np.float32)


def all_unseen(user_id: str, seen: set[str]) -> None:
    return None


def sampled_candidates(catalogue: list[str], split: Split, seed: int) -> Callable[[str, set[str]], list[str]]:
    """1 held-out item + 19 random unseen items per user, fixed by the seed and the user id."""

    def pick(user_id: str, seen: set[str]) -> list[str]:
        rng = random.Random(f"{seed}:{user_id}")
        target = sorted(split.test[user_id])
        pool = [i for i in catalogue if i not in seen and i not in split.test[user_id]]
        return target + rng.sample(pool, min(SAMPLED_NEGATIVES, len(pool)))

    return pick


def histories(split_part: dict[str, list[Event]]) -> dict[str, list[str]]:
    return {u: ordered_history(events) for u, events in split_part.items()}


def build_tasks(
    events: list[Event],
    catalogue: list[str],
    vectors: dict[str, np.ndarray] | None,
    labels: dict[str, set[str]],
    protocols: list[str],
    seed: int,
    judge: Judge | None = None,
    rerank_users: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Task]:
    """The splits every method shares, each with a recommender fitted on what its test may see. The
    LLM blend is tuned (through `judge`) on the first fit of each target (next, random) and reused by
    the other fits of that target."""
    tasks: list[Task] = []
    loo = leave_last_out(events)
    blends: dict[str, float | None] = {}

    def fitted(known: dict[str, list[Event]], target: str, shortlist: int | None = None):
        config = FitConfig(target=target, seed=seed, validation_candidates=shortlist)
        recommender = Recommender(config)
        tune = target not in blends and judge is not None and rerank_users
        tuner = blend_tuner(judge, rerank_users, progress) if tune else None
        recommender.fit(histories(known), vectors, labels, tune_rerank=tuner, progress=progress)
        if tune:
            blends[target] = recommender.rerank_blend
        elif blends.get(target) is not None:
            recommender.rerank_blend = recommender.report.rerank_blend = blends[target]
        return recommender

    if {"loo", "cand20"} & set(protocols):
        known = {u: loo.history_for_test(u) for u in loo.train}
        cold = cold_start(loo)
        if "loo" in protocols:
            tasks += [
                Task("loo", loo, fitted(known, "next"), all_unseen),
                Task("loo-cold", cold, fitted(cold.train, "next"), all_unseen),
            ]
        if "cand20" in protocols:
            size = SAMPLED_NEGATIVES + 1
            tasks += [
                Task("cand20", loo, fitted(known, "next", shortlist=size), sampled_candidates(catalogue, loo, seed)),
                Task(
                    "cand20-cold",
                    cold,
                    fitted(cold.train, "next", shortlist=size),
                    sampled_candidates(catalogue, cold, seed),
                ),
            ]
    if "msr" in protocols:
        msr = random_split(events, seed=seed)
        tasks.append(Task("msr", msr, fitted(msr.train, "random"), all_unseen))
    return tasks
