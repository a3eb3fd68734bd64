"""Offline evaluation: the same splits and seeds for every method, honest baselines, LLM error modes.

Protocols: `loo` (temporal leave-last-out, rank every unseen item), `cand20` (1 true + 19 random
unseen items, the LLMRank protocol), `msr` (per-user random 75/25, top-10 over all unseen items), and
the cold-start slice of `loo` and `cand20` (history cut to the 5 most recent items). Classical methods
run on all evaluated users; LLM methods on a seeded sample. Profiles and facts come from the
training part only; the rerank blend weight is tuned on the validation item, never on test.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from rich.progress import Progress

from .facts import build_facts
from .llm import LLMBackend
from .metrics import hit_rate_at_k, map_at_k, mrr, ndcg_at_k, precision_at_k, recall_at_k
from .models import Event, Item, UserFacts, UserProfile
from .profile import build_profile
from .rerank import RerankResult, blend_order, nearest_history, rerank
from .retrieve import COLD_START_MAX, COLD_WEIGHTS, DEFAULT_WEIGHTS, EASE, Candidate, Interactions, ItemKNN, fuse
from .split import Split, cold_start, leave_last_out, random_split

CLASSICAL = ("random", "pop", "itemknn", "ease", "hybrid", "bert-kmeans")
LLM_METHODS = ("embed", "llm", "tasteprint", "tasteprint-nofacts", "tasteprint-noverify")
PROTOCOLS = ("loo", "cand20", "msr")
BLEND_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
FUSION_GRID = (
    DEFAULT_WEIGHTS,
    {"ease": 1.0, "itemknn": 0.3, "embed": 0.2, "pop": 0.1},
    {"ease": 1.0, "itemknn": 0.0, "embed": 0.3, "pop": 0.0},
    {"ease": 1.0, "itemknn": 0.5, "embed": 0.0, "pop": 0.0},
    {"ease": 1.0, "itemknn": 0.0, "embed": 0.0, "pop": 0.0},
)
SAMPLED_NEGATIVES = 19


@dataclass
class UserOutcome:
    """One user's ranking under one method and protocol, plus what the LLM stages did."""

    user_id: str
    ranked: list[str]
    relevant: set[str]
    history: set[str]
    consumed_overlap: int = 0
    duplicates: int = 0
    rerank: RerankResult | None = None
    pool: list[str] = field(default_factory=list)  # the reranked candidates, in retrieval order
    profile: UserProfile | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def history_length(self) -> int:
        return len(self.history)

    def metrics(self, k: int, protocol: str) -> dict[str, float]:
        values = {
            f"ndcg@{k}": ndcg_at_k(self.relevant, self.ranked, k),
            f"hr@{k}": hit_rate_at_k(self.relevant, self.ranked, k),
            "mrr": mrr(self.relevant, self.ranked),
        }
        if protocol == "msr":
            values |= {
                f"precision@{k}": precision_at_k(self.relevant, self.ranked, k),
                f"recall@{k}": recall_at_k(self.relevant, self.ranked, k),
                f"map@{k}": map_at_k(self.relevant, self.ranked, k),
            }
        return values


class World:
    """Everything fitted on one split's known events: the interaction matrix, EASE, item-kNN, popularity."""

    def __init__(
        self,
        histories: dict[str, list[Event]],
        catalogue: list[str],
        vectors: np.ndarray,
        weights: dict[str, float] | None = None,
    ):
        self.weights = weights or DEFAULT_WEIGHTS
        self.user_vectors: dict[str, np.ndarray] | None = None  # set by fit_segments (bert-kmeans)
        self.interactions = Interactions.from_pairs((u, e.item_id) for u, es in histories.items() for e in es)
        self.ease = EASE().fit(self.interactions)
        self.knn = ItemKNN().fit(self.interactions)
        self.catalogue = catalogue
        self.position = {item: n for n, item in enumerate(catalogue)}
        self.vectors = vectors
        counts = dict(zip(self.interactions.items, self.interactions.popularity))
        self.popularity = np.array([counts.get(i, 0) for i in catalogue], dtype=np.float32)

    def _on_catalogue(self, scores: np.ndarray) -> np.ndarray:
        full = np.zeros(len(self.catalogue), dtype=np.float32)
        for n, item in enumerate(self.interactions.items):
            full[self.position[item]] = scores[n]
        return full

    def scores(self, method: str, history: list[str], query: np.ndarray | None) -> np.ndarray:
        """Scores over the whole catalogue for one non-LLM scorer."""
        if method == "pop":
            return self.popularity
        if method == "embed":
            return self.vectors @ query if query is not None else np.zeros(len(self.catalogue), np.float32)
        vector = self.interactions.vector(history)
        if method == "ease":
            return self._on_catalogue(self.ease.scores(vector))
        if method == "itemknn":
            return self._on_catalogue(self.knn.scores(vector))
        raise ValueError(method)

    def fit_segments(self, histories: dict[str, list[Event]], items: dict[str, Item], embed, seed: int) -> None:
        """The classic BERT + k-means pipeline: embed each user's texts (titles of their items and their own
        review and tag text), cluster users with k-means, keep each user's vector and centroid."""
        from sklearn.cluster import KMeans

        users = sorted(histories)
        texts = []
        for user_id in users:
            parts = [items[e.item_id].title for e in histories[user_id] if e.item_id in items]
            parts += [e.text for e in histories[user_id] if e.text]
            texts.append(". ".join(parts)[:2000])
        vectors = embed(texts)
        k = max(2, min(20, int(np.sqrt(len(users) / 2))))
        kmeans = KMeans(n_clusters=min(k, len(users)), n_init=4, random_state=seed).fit(vectors)
        centroids = kmeans.cluster_centers_[kmeans.labels_]
        self.user_vectors = {u: v for u, v in zip(users, (vectors + centroids) / 2)}

    def rank(
        self, method: str, history: list[str], candidates: list[str], query: np.ndarray | None, rng: random.Random
    ) -> list[str]:
        """Rank `candidates` (ties broken by popularity, then id) with a classical method or the hybrid."""
        if method == "random":
            shuffled = list(candidates)
            rng.shuffle(shuffled)
            return shuffled
        if method == "hybrid":
            return [c.item_id for c in self.hybrid(history, candidates, query)]
        scores = self.vectors @ query if method == "bert-kmeans" else self.scores(method, history, query)
        return sorted(candidates, key=lambda c: (-scores[self.position[c]], -self.popularity[self.position[c]], c))

    def ranked_lists(self, history: list[str], candidates: list[str], query: np.ndarray | None) -> dict[str, list[str]]:
        lists = {}
        for source in ("ease", "itemknn", "embed", "pop"):
            if source == "embed" and query is None:
                continue
            scores = self.scores(source, history, query)
            lists[source] = sorted(candidates, key=lambda c: (-scores[self.position[c]], c))
        return lists

    def hybrid(self, history: list[str], candidates: list[str], query: np.ndarray | None) -> list[Candidate]:
        """tasteprint's retrieval restricted to `candidates`: each scorer's ranking, fused by weighted RRF."""
        weights = COLD_WEIGHTS if len(set(history)) <= COLD_START_MAX else self.weights
        return fuse(self.ranked_lists(history, candidates, query), weights)

    def query(self, facts: UserFacts, profile_vector: np.ndarray | None) -> np.ndarray | None:
        """Mean of the user's loved items' vectors, plus the profile's vector when there is one."""
        parts = [self.vectors[self.position[i.item_id]] for i in facts.loved if i.item_id in self.position]
        if parts:
            parts = [np.mean(parts, axis=0)]
        if profile_vector is not None:
            parts.append(profile_vector)
        if not parts:
            return None
        query = np.sum(parts, axis=0)
        return query / (np.linalg.norm(query) + 1e-9)


@dataclass
class Task:
    """One protocol on one split: who is evaluated, on what candidates, with which history."""

    protocol: str
    split: Split
    world: World
    candidates: Callable[[str, set[str]], list[str]]
    target: str = "test"

    def history(self, user_id: str) -> list[Event]:
        return self.split.train[user_id] if self.target == "valid" else self.split.history_for_test(user_id)

    def relevant(self, user_id: str) -> set[str]:
        return (self.split.valid if self.target == "valid" else self.split.test)[user_id]


@dataclass
class EvalContext:
    """What methods share beyond the split: the catalogue rows, label shares, the embedder and the LLM."""

    items: dict[str, Item]
    global_shares: dict[str, float]
    embed: Callable[[list[str]], np.ndarray]
    backend: LLMBackend | None = None
    n_candidates: int = 20
    blend: float = 0.3
    rerank_passes: int = 1


def all_unseen(catalogue: list[str]) -> Callable[[str, set[str]], list[str]]:
    return lambda user_id, seen: [i for i in catalogue if i not in seen]


def sampled_candidates(catalogue: list[str], split: Split, seed: int) -> Callable[[str, set[str]], list[str]]:
    """1 held-out item + 19 random unseen items per user, fixed by the seed and the user id."""

    def pick(user_id: str, seen: set[str]) -> list[str]:
        rng = random.Random(f"{seed}:{user_id}")
        target = sorted(split.test[user_id])
        pool = [i for i in catalogue if i not in seen and i not in split.test[user_id]]
        return target + rng.sample(pool, min(SAMPLED_NEGATIVES, len(pool)))

    return pick


def evaluate_user(
    method: str, task: Task, user_id: str, k: int, seed: int, context: EvalContext, profiles: dict
) -> UserOutcome:
    """Rank one user's candidates with one method and collect what happened."""
    events = task.history(user_id)
    history = list(dict.fromkeys(e.item_id for e in events))
    seen = set(history)
    candidates = task.candidates(user_id, seen)
    rng = random.Random(f"{seed}:{method}:{user_id}")
    outcome = UserOutcome(user_id, [], task.relevant(user_id), seen)
    start = time.perf_counter()
    if method in CLASSICAL:
        query = None
        if method == "hybrid":
            query = task.world.query(build_facts(user_id, events, context.items, {}), None)
        elif method == "bert-kmeans":
            if task.world.user_vectors is None:
                task.world.fit_segments(
                    {u: task.history(u) for u in task.split.train}, context.items, context.embed, seed
                )
            query = task.world.user_vectors[user_id]
        outcome.ranked = task.world.rank(method, history, candidates, query, rng)
    else:
        _evaluate_llm_method(method, task, user_id, events, history, candidates, rng, context, profiles, outcome)
    outcome.seconds["total"] = time.perf_counter() - start
    outcome.consumed_overlap = len(seen & set(outcome.ranked[:k]))
    outcome.duplicates = len(outcome.ranked[:k]) - len(set(outcome.ranked[:k]))
    return outcome


def _evaluate_llm_method(
    method, task, user_id, events, history, candidates, rng, llm: EvalContext, profiles, outcome: UserOutcome
) -> None:
    facts = build_facts(user_id, events, llm.items, llm.global_shares)
    profile, vector = None, None
    if method != "tasteprint-nofacts":  # the ablation reranks without the facts-built profile
        verify = method != "tasteprint-noverify"
        # One profile per user and split, built from the training part: loo and cand20 share it.
        key = ("msr" if task.protocol == "msr" else "loo", "cold" in task.protocol, verify, user_id)
        if key not in profiles:
            start = time.perf_counter()
            built = build_profile(facts, llm.backend, vocabulary=set(llm.global_shares), verify=verify)
            text = built.summary + " " + ", ".join(i.label for i in built.interests)
            profiles[key] = (built, llm.embed([text])[0], time.perf_counter() - start)
        profile, vector, outcome.seconds["profile"] = profiles[key]
        outcome.profile = profile
    query = task.world.query(facts, vector)
    if method == "embed":
        outcome.ranked = task.world.rank("embed", history, candidates, query, rng)
        return
    start = time.perf_counter()
    if method == "llm":
        ordered = list(candidates)
        rng.shuffle(ordered)
        pool = [Candidate(c, 0.0) for c in ordered[: llm.n_candidates]]
        rest: list[str] = ordered[llm.n_candidates :]
        blend = 1.0
    else:
        fused = task.world.hybrid(history, candidates, query)
        pool, rest = fused[: llm.n_candidates], [c.item_id for c in fused[llm.n_candidates :]]
        blend = llm.blend
    outcome.seconds["retrieve"] = time.perf_counter() - start
    evidence = {
        c.item_id: nearest_history(
            task.world.vectors[task.world.position[c.item_id]],
            {h: task.world.vectors[task.world.position[h]] for h in history if h in task.world.position},
            facts,
            llm.items.get(c.item_id),
        )
        for c in pool
    }
    start = time.perf_counter()
    result = rerank(
        facts, profile, pool, llm.items, evidence, llm.backend, k=len(pool), blend=blend, passes=llm.rerank_passes
    )
    outcome.seconds["rerank"] = time.perf_counter() - start
    outcome.rerank = result
    outcome.pool = [c.item_id for c in pool]
    outcome.ranked = [r.item_id for r in result.recommendations] + rest


def tune_blend(outcomes: list[UserOutcome], k: int) -> tuple[float, dict[float, float]]:
    """The blend weight with the best mean NDCG@k on validation outcomes (ties: the smaller weight)."""
    means = {}
    for weight in BLEND_GRID:
        values = []
        for outcome in outcomes:
            if outcome.rerank is None:
                continue
            reordered = [c for _, c in blend_order(outcome.pool, outcome.rerank.llm_rank, weight)]
            values.append(ndcg_at_k(outcome.relevant, reordered + outcome.ranked[len(outcome.pool) :], k))
        means[weight] = float(np.mean(values)) if values else 0.0
    best = max(BLEND_GRID, key=lambda w: (round(means[w], 6), -w))
    return best, means


def tune_fusion(task: Task, users: list[str], context: EvalContext, k: int) -> tuple[dict[str, float], list[float]]:
    """The fusion weights from FUSION_GRID with the best mean NDCG@k on validation (first wins ties)."""
    totals = np.zeros(len(FUSION_GRID))
    for user_id in users:
        events = task.history(user_id)
        history = list(dict.fromkeys(e.item_id for e in events))
        query = task.world.query(build_facts(user_id, events, context.items, {}), None)
        candidates = task.candidates(user_id, set(history))
        lists = task.world.ranked_lists(history, candidates, query)
        for n, weights in enumerate(FUSION_GRID):
            ranked = [c.item_id for c in fuse(lists, weights)]
            totals[n] += ndcg_at_k(task.relevant(user_id), ranked, k)
    means = (totals / max(len(users), 1)).tolist()
    return FUSION_GRID[int(np.argmax(means))], means


def build_tasks(
    events: list[Event],
    catalogue: list[str],
    vectors: np.ndarray,
    protocols: list[str],
    seed: int,
    weights: dict[str, float] | None = None,
) -> list[Task]:
    """The splits and worlds every method shares. Worlds are fitted on what each target may see."""
    tasks: list[Task] = []
    loo = leave_last_out(events)
    if {"loo", "cand20"} & set(protocols):
        test_world = World({u: loo.history_for_test(u) for u in loo.train}, catalogue, vectors, weights)
        cold = cold_start(loo)
        cold_world = World(cold.train, catalogue, vectors, weights)
        if "loo" in protocols:
            tasks += [
                Task("loo", loo, test_world, all_unseen(catalogue)),
                Task("loo-cold", cold, cold_world, all_unseen(catalogue)),
            ]
        if "cand20" in protocols:
            tasks += [
                Task("cand20", loo, test_world, sampled_candidates(catalogue, loo, seed)),
                Task("cand20-cold", cold, cold_world, sampled_candidates(catalogue, cold, seed)),
            ]
    if "msr" in protocols:
        msr = random_split(events, seed=seed)
        tasks.append(Task("msr", msr, World(msr.train, catalogue, vectors, weights), all_unseen(catalogue)))
    return tasks


def validation_task(events: list[Event], catalogue: list[str], vectors: np.ndarray) -> Task:
    loo = leave_last_out(events)
    return Task("loo", loo, World(loo.train, catalogue, vectors), all_unseen(catalogue), target="valid")


def run_method(
    method: str,
    task: Task,
    users: list[str],
    k: int,
    seed: int,
    context: EvalContext,
    profiles: dict,
    progress: Progress | None = None,
) -> list[UserOutcome]:
    outcomes = []
    bar = progress.add_task(f"{method} / {task.protocol} ({task.target})", total=len(users)) if progress else None
    for user_id in users:
        outcomes.append(evaluate_user(method, task, user_id, k, seed, context, profiles))
        if progress:
            progress.advance(bar)
    return outcomes
