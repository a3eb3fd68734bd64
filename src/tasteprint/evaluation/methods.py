"""Offline evaluation: the same splits and seeds for every method, honest baselines, LLM error modes.

Protocols: `loo` (temporal leave-last-out, ranked over every unseen item), `cand20` (1 true + 19
random unseen items, the LLMRank protocol), `msr` (per-user random 75/25, top-10 over all unseen
items), and the cold-start slice of `loo` and `cand20` (history cut to the 5 most recent items).

Every method ranks through the one fitted `Recommender`, fitted on each protocol's training part by
`Recommender.fit`, exactly as `tasteprint fit` fits a store: `hybrid` is the fitted ranking that
`recommend(..., rerank=False)` serves to a user without a stored profile and without segments, the
single retrievers are its parts, and `tasteprint` adds the LLM stages (`LLMStages`, as serving calls
them) with the blend the fit chose on validation. The fit's validation mirrors each protocol: the next item
ranked among all items for `loo`, among 20 sampled items for `cand20`, and a random fifth of the
items for `msr` (see `tasks`). Classical
methods run on all evaluated users; LLM methods on a seeded sample. Profiles and facts come from
the training part only. Over all unseen items a method returns its top 200; a held-out item below
that counts as missed (MRR 0).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from rich.progress import Progress

from tasteprint.explain.chain import LLMStages
from tasteprint.explain.reasons import Audit, ReasonChecker, ReasonStats, catalogue_names
from tasteprint.explain.rerank import DEFAULT_BLEND, RerankResult
from tasteprint.ingest.aspects import ASPECT_ATTRIBUTE
from tasteprint.models import Event, Item, UserFacts, UserProfile
from tasteprint.profile.facts import build_facts
from tasteprint.recommend.metrics import (
    hit_rate_at_k,
    label_hit,
    label_recall,
    map_at_k,
    mrr,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from tasteprint.recommend.retrievers import LIST_DEPTH, Candidate, ordered_history

from .tasks import Task

SINGLE_RETRIEVERS = ("pop", "itemknn", "ease", "als", "embed")
# Eval embeds no catalogue when only these run: every method but the embedding retriever reads no vector.
READ_NO_VECTORS = ("random", *(m for m in SINGLE_RETRIEVERS if m != "embed"))
ASPECT_ABLATION = "hybrid-noaspects"  # the same recommender fitted on the catalogue before aspect mining
CLASSICAL = ("random", *SINGLE_RETRIEVERS, "hybrid", ASPECT_ABLATION, "bert-kmeans")
LLM_METHODS = ("llm", "tasteprint", "tasteprint-nofacts", "tasteprint-noverify", "tasteprint-noaspects")


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
    reasons: ReasonStats | None = None
    # Each explanation shown: whether the code found a history item to cite, and what its text says.
    explanation_audit: list[tuple[bool, Audit]] = field(default_factory=list)
    profile: UserProfile | None = None
    fidelity: dict[str, float | None] = field(default_factory=dict)
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


@dataclass
class EvalContext:
    """What methods share beyond the split: the catalogue rows, label shares, the embedder, the LLM
    stages, and the store's evidence and profile-vector functions (the ones `recommend` uses)."""

    items: dict[str, Item]
    global_shares: dict[str, float]
    embed: Callable[[list[str]], np.ndarray]
    evidence: Callable[..., dict[str, list[str]]]
    profile_vector: Callable[[UserProfile | None], np.ndarray | None]
    stages: LLMStages | None = None
    n_candidates: int = 20
    blend: float | None = None  # an explicit setting overrides what the fit chose
    generic_aspects: set[str] = field(default_factory=set)

    @cached_property
    def catalogue_names(self) -> list[tuple[str, str]]:
        """The catalogue's titles as the reason check looks for them, built once for every user."""
        return catalogue_names([item.title for item in self.items.values() if item.title])

    @cached_property
    def items_without_aspects(self) -> dict[str, Item]:
        """The catalogue as it was before aspect mining (the `tasteprint-noaspects` ablation)."""
        stripped = {}
        for item_id, item in self.items.items():
            aspects = item.attributes.get(ASPECT_ATTRIBUTE)
            if aspects is None:
                stripped[item_id] = item
                continue
            attributes = {k: v for k, v in item.attributes.items() if k != ASPECT_ATTRIBUTE}
            title = item_id if item.title.endswith(f"({item_id})") and not item.description else item.title
            stripped[item_id] = item.model_copy(update={"attributes": attributes, "title": title})
        return stripped


def fit_user_vectors(task: Task, items: dict[str, Item], embed, seed: int) -> dict[str, np.ndarray]:
    """The classic BERT + k-means pipeline: embed each user's texts (titles of their items and their own
    review and tag text), cluster users with k-means, and blend each user's vector with its centroid."""
    from sklearn.cluster import KMeans

    users = sorted(task.split.train)
    texts = []
    for user_id in users:
        events = task.history(user_id) if user_id in task.split.test else task.split.train[user_id]
        parts = [items[e.item_id].title for e in events if e.item_id in items] + [e.text for e in events if e.text]
        texts.append(". ".join(parts)[:2000])
    vectors = embed(texts)
    k = max(2, min(20, int(np.sqrt(len(users) / 2))))
    kmeans = KMeans(n_clusters=min(k, len(users)), n_init=4, random_state=seed).fit(vectors)
    centroids = kmeans.cluster_centers_[kmeans.labels_]
    return {u: v for u, v in zip(users, (vectors + centroids) / 2)}


def _bert_kmeans(task: Task, user_id: str, candidates: list[str] | None, seen: set[str], context, seed) -> list[str]:
    if task.user_vectors is None:
        task.user_vectors = fit_user_vectors(task, context.items, context.embed, seed)
    embedding = task.recommender.embedding
    if embedding is None:
        return []
    scores = embedding.vectors @ task.user_vectors[user_id]
    items = task.recommender.interactions.items
    order = [items[i] for i in np.argsort(-scores, kind="stable")]
    if candidates is None:
        return [i for i in order if i not in seen][:LIST_DEPTH]
    wanted = set(candidates)
    ranked = [i for i in order if i in wanted]
    placed = set(ranked)
    return ranked + [c for c in candidates if c not in placed]


def evaluate_user(
    method: str, task: Task, user_id: str, k: int, seed: int, context: EvalContext, profiles: dict
) -> UserOutcome:
    """Rank one user's candidates with one method and collect what happened."""
    events = task.history(user_id)
    history = ordered_history(events)
    seen = set(history)
    candidates = task.candidates(user_id, seen)
    depth = LIST_DEPTH if candidates is None else len(candidates)
    outcome = UserOutcome(user_id, [], task.split.test[user_id], seen)
    start = time.perf_counter()
    if method == "random":
        ranked = list(candidates or [i for i in task.recommender.interactions.items if i not in seen])
        random.Random(f"{seed}:{method}:{user_id}").shuffle(ranked)
        outcome.ranked = ranked[:depth]
    elif method in SINGLE_RETRIEVERS:
        outcome.ranked = task.recommender.single(method, history, depth, candidates)
    elif method in ("hybrid", ASPECT_ABLATION):  # run_eval passes the latter its own fitted task
        outcome.ranked = [c.item_id for c in task.recommender.recommend(history, depth, candidates=candidates)]
    elif method == "bert-kmeans":
        outcome.ranked = _bert_kmeans(task, user_id, candidates, seen, context, seed)
    else:
        _evaluate_llm_method(LLMCase(method, task, user_id, events, candidates), context, profiles, outcome, seed, k)
    outcome.seconds["total"] = time.perf_counter() - start
    outcome.consumed_overlap = len(seen & set(outcome.ranked[:k]))
    outcome.duplicates = len(outcome.ranked[:k]) - len(set(outcome.ranked[:k]))
    return outcome


@dataclass
class LLMCase:
    """One user's LLM-method run: the method, the task, their training history and candidates."""

    method: str
    task: Task
    user_id: str
    events: list[Event]
    candidates: list[str] | None


def _evaluate_llm_method(case: LLMCase, llm: EvalContext, profiles: dict, outcome: UserOutcome, seed: int, k: int):
    """Profile (unless ablated), retrieve, rerank and (for `tasteprint`) word the reasons of one user."""
    method, user_id = case.method, case.user_id
    aspects = method != "tasteprint-noaspects"
    items = llm.items if aspects else llm.items_without_aspects
    facts = build_facts(user_id, case.events, items, llm.global_shares, generic_aspects=llm.generic_aspects)
    if not aspects:
        facts = facts.model_copy(update={"aspects": []})
    profile = None
    if method != "tasteprint-nofacts":  # the ablation reranks without the facts-built profile
        profile = _profile(case, facts, llm, profiles, outcome, aspects)
        outcome.fidelity = profile_fidelity(facts, profile, case.task.split.test[user_id], items)
    start = time.perf_counter()
    pool, rest, blend = _pool(case, llm, profile, seed)
    outcome.seconds["retrieve"] = time.perf_counter() - start
    start = time.perf_counter()
    # Co-consumption is counted in the training split the recommender was fitted on: no held-out event
    # reaches a citation.
    together = case.task.recommender.interactions.together([c.item_id for c in pool], facts.history_item_ids)
    evidence = llm.evidence(facts, [c.item_id for c in pool], llm.items, together)
    result = llm.stages.rerank(facts, profile, pool, llm.items, evidence, k=len(pool), blend=blend, together=together)
    outcome.seconds["rerank"] = time.perf_counter() - start
    outcome.rerank = result
    outcome.ranked = [r.item_id for r in result.recommendations] + rest
    shown = result.recommendations[:k]
    checker = ReasonChecker(facts.item_titles, llm.catalogue_names, set(llm.global_shares))
    if method == "tasteprint" and not result.stats.fallback:
        # The reasons `recommend` shows, worded on the shown picks; the training split has no store to
        # count co-liked people in, so these reasons cannot state that figure.
        shown, outcome.reasons = llm.stages.word(
            facts, shown, llm.items, checker, co_liked=lambda cited, item: None, label_shares=llm.global_shares
        )
        outcome.seconds["reasons"] = outcome.reasons.seconds
        result.recommendations[:k] = shown
    outcome.explanation_audit = [
        (bool(r.evidence), checker.audit(r.explanation, llm.items[r.item_id], facts.item_labels)) for r in shown
    ]


def _profile(
    case: LLMCase, facts: UserFacts, llm: EvalContext, profiles: dict, outcome: UserOutcome, aspects: bool
) -> UserProfile:
    """The user's profile from the training part, built once per user and split: loo and cand20 share it."""
    verify = case.method != "tasteprint-noverify"
    protocol = case.task.protocol
    key = ("msr" if protocol == "msr" else "loo", "cold" in protocol, verify, aspects, case.user_id)
    if key not in profiles:
        start = time.perf_counter()
        built = llm.stages.profile(facts, verify=verify)
        profiles[key] = (built, time.perf_counter() - start)
    profile, outcome.seconds["profile"] = profiles[key]
    outcome.profile = profile
    return profile


def _pool(
    case: LLMCase, llm: EvalContext, profile: UserProfile | None, seed: int
) -> tuple[list[Candidate], list[str], float]:
    """The candidates the LLM reranks, the ranked rest below them, and the blend weight."""
    if case.method == "llm":  # the LLM alone orders a shuffled candidate list
        ordered = list(case.candidates or [])
        random.Random(f"{seed}:{case.method}:{case.user_id}").shuffle(ordered)
        pool = [Candidate(c, 0.0) for c in ordered[: llm.n_candidates]]
        return pool, ordered[llm.n_candidates :], 1.0
    candidates = case.candidates
    depth = LIST_DEPTH if candidates is None else len(candidates)
    history = ordered_history(case.events)
    ranked = case.task.recommender.recommend(
        history, depth, candidates=candidates, profile_vector=llm.profile_vector(profile)
    )
    blend = llm.blend if llm.blend is not None else case.task.recommender.rerank_blend
    blend = DEFAULT_BLEND if blend is None else blend
    return ranked[: llm.n_candidates], [c.item_id for c in ranked[llm.n_candidates :]], blend


def profile_fidelity(facts: UserFacts, profile: UserProfile, held_out: set[str], items: dict[str, Item]) -> dict:
    """How faithfully a profile covers the history it was built from, computed without the model:
    recall of the dominant labels (on 30%+ of the items) and of the top-3 labels by share, anywhere in
    the profile's text; and whether its interests predict a label of the held-out items, next to a
    data-only profile (the same number of top labels by share)."""
    text = " ".join(
        [profile.summary, *profile.context.values(), *(c.label for c in profile.interests + profile.dislikes)]
    )
    by_share = [a.label for a in sorted(facts.top_attributes, key=lambda a: (-a.share, a.label))]
    actual = {label for i in held_out if i in items for label in items[i].labels()}
    predicted = [i.label for i in profile.interests]
    return {
        "dominant_recall": label_recall([a.label for a in facts.dominant], text),
        "top3_recall": label_recall(by_share[:3], text),
        "next_label_hit": label_hit(predicted, actual),
        "next_label_hit_data_only": label_hit(by_share[: len(predicted)], actual) if predicted else None,
    }


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
    bar = progress.add_task(f"{method} / {task.protocol}", total=len(users)) if progress else None
    for user_id in users:
        outcomes.append(evaluate_user(method, task, user_id, k, seed, context, profiles))
        if progress:
            progress.advance(bar)
    return outcomes
