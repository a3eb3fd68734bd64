"""Recommendations and explanations for one store's users: the fitted recommender proposes and ranks,
a cold user's list takes in their segment's prior, and the LLM stages rerank, cite and word reasons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tasteprint.config import COLD_START_MAX, ExplanationMode
from tasteprint.errors import TasteprintError, UnknownItemError
from tasteprint.explain.chain import RecommendResult
from tasteprint.explain.item import explain_item
from tasteprint.explain.reasons import ReasonChecker, ReasonStats, catalogue_names
from tasteprint.explain.rerank import DEFAULT_BLEND
from tasteprint.llm import on_behalf_of
from tasteprint.models import Explanation, Recommendation, UserFacts, UserProfile
from tasteprint.profile.facts import LOVED_MIN, stated_facts
from tasteprint.recommend.recommender import Ask, Recommender
from tasteprint.recommend.retrievers import Candidate, fuse
from tasteprint.recommend.steering import Steering, with_wanted
from tasteprint.storage.embeddings import profile_text

from .fitting import FittingService
from .profiles import ProfileService
from .segments import SegmentService
from .workspace import Workspace

SEGMENT_PRIOR_WEIGHT = 0.5  # the segment prior's weight beside the fitted list, for cold users


@dataclass
class Asked:
    """What one user's picks are computed from, read before the recommender ranks: their steering
    (edits), facts, profile, history (oldest first, with the titles they said they liked), the items
    left out, and the profile's embedding."""

    user_id: str
    steering: Steering
    facts: UserFacts
    profile: UserProfile | None
    history: list[str]
    exclude: set[str]
    profile_vector: np.ndarray | None


class RecommendService:
    """Serves picks and explanations; caches the catalogue's titles per data version for the reason check."""

    def __init__(
        self, workspace: Workspace, profiles: ProfileService, fitting: FittingService, segments: SegmentService
    ):
        self.workspace = workspace
        self.profiles = profiles
        self.fitting = fitting
        self.segments = segments
        self._catalogue: list[tuple[str, str]] = []
        self._catalogue_version: int | None = None

    def profile_vector(self, profile: UserProfile | None) -> np.ndarray | None:
        """The profile's text embedding (part of the embedding retriever's query), or None without one."""
        if profile is None or not self.workspace.settings.fit_embeddings:
            return None
        return self.workspace.embed([profile_text(profile)])[0]

    def recommend(
        self, user_id: str, k: int, *, rerank: bool, n_candidates: int, exclude: Iterable[str], reasons: bool
    ) -> RecommendResult:
        """See `Tasteprint.recommend`."""
        (result,) = self.recommend_many(
            [user_id], k, rerank=rerank, n_candidates=n_candidates, exclude=exclude, reasons=reasons
        )
        if isinstance(result, TasteprintError):
            raise result
        return result

    def recommend_many(
        self,
        user_ids: Sequence[str],
        k: int,
        *,
        rerank: bool,
        n_candidates: int,
        exclude: Iterable[str],
        reasons: bool,
    ) -> list[RecommendResult | TasteprintError]:
        """See `Tasteprint.recommend_many`: each user's inputs first, then one `Recommender.recommend_many`
        for all of them, then each user's evidence and explanations."""
        exclude = set(exclude)
        asked: list[Asked | TasteprintError] = []
        for user_id in user_ids:
            try:
                asked.append(self._asked(user_id, rerank, exclude))
            except TasteprintError as exc:
                asked.append(exc)
        ready = [a for a in asked if isinstance(a, Asked)]
        if not ready:
            return asked
        recommender = self.fitting.get()
        n = max(n_candidates, k)
        fitted = iter(
            recommender.recommend_many([Ask(a.history, n, a.exclude, profile_vector=a.profile_vector) for a in ready])
        )
        results: list[RecommendResult | TasteprintError] = []
        for one in asked:
            if isinstance(one, Asked):
                ranked = next(fitted)
                try:
                    one = self._answer(recommender, one, self._with_segment(one, ranked, n), k, rerank, reasons)
                except TasteprintError as exc:
                    one = exc
            results.append(one)
        return results

    def _asked(self, user_id: str, rerank: bool, exclude: set[str]) -> Asked:
        """What the user's picks are computed from; UnknownUserError for a stranger."""
        ws = self.workspace
        steering = Steering.from_edits(ws.db.profiles.edits(user_id), ws.label_items())
        facts, history = self._facts_and_history(user_id, steering)
        profile = self._profile(user_id, rerank)
        history = history + steering.liked
        excluded = exclude | steering.excluded
        return Asked(user_id, steering, facts, profile, history, excluded, self.profile_vector(profile))

    def _answer(
        self, recommender: Recommender, asked: Asked, candidates: list[Candidate], k: int, rerank: bool, reasons: bool
    ) -> RecommendResult:
        """The top `k` of `candidates` after steering, with evidence and explanations (the model's when
        `rerank`, and its worded reasons too with `reasons`)."""
        ws, steering, facts, history = self.workspace, asked.steering, asked.facts, asked.history
        consumed = set(history) | asked.exclude
        candidates = with_wanted(recommender, history, candidates, steering, k, consumed)
        ids = [c.item_id for c in candidates]
        items = ws.db.items(ids)
        together = recommender.interactions.together(ids, facts.history_item_ids)
        evidence = ws.evidence(facts, ids, items, together)
        blend = ws.settings.rerank_blend
        if blend is None:
            blend = DEFAULT_BLEND if recommender.rerank_blend is None else recommender.rerank_blend
        stages = ws.stages(model=rerank)  # without the model: the fitted order, template explanations
        with on_behalf_of(asked.user_id):
            ranked = stages.rerank(
                facts, asked.profile, candidates, items, evidence, k=len(candidates), blend=blend, together=together
            )
        picks = {r.item_id: r for r in ranked.recommendations}
        top = steering.top(list(picks), k, consumed, recommender.more_boost)
        result = RecommendResult([picks[i] for i in top], ranked.stats)
        if rerank and reasons and not ranked.stats.fallback:
            result.recommendations, result.reasons = self.word(facts, result.recommendations)
        return result

    def _facts_and_history(self, user_id: str, steering: Steering) -> tuple[UserFacts, list[str]]:
        """The user's facts and history (item ids, oldest first); for a person known only by their
        edits, the facts of the titles they said they liked (or none) and no history."""
        ws = self.workspace
        if ws.db.has_user(user_id) or not ws.db.profiles.has_edits(user_id):
            return ws.factbook.facts_with_history(user_id)  # raises UnknownUserError for a stranger
        return stated_facts(user_id, steering.liked, ws.db.items(steering.liked), ws.factbook.global_shares), []

    def _profile(self, user_id: str, build: bool) -> UserProfile | None:
        """The stored profile; with `build` (the model reranks) the current one, built or updated first."""
        db = self.workspace.db
        if build and db.has_user(user_id):
            return self.profiles.get(user_id)
        return db.profiles.latest(user_id)

    def _with_segment(self, asked: Asked, fitted: list[Candidate], n: int) -> list[Candidate]:
        """The fitted recommender's top `n`, fused with the segment prior for a cold user."""
        if len(asked.facts.history_item_ids) > COLD_START_MAX or not self.segments.file.exists():
            return fitted
        query = asked.profile_vector
        if query is None and (loved := self.workspace.vectors.item_vectors(asked.history)):
            query = np.mean(list(loved.values()), axis=0)
        prior = self.segments.prior(query, set(asked.history) | asked.exclude)
        lists = {"fitted": [c.item_id for c in fitted], "segment": prior}
        return fuse(lists, {"fitted": 1.0, "segment": SEGMENT_PRIOR_WEIGHT})[:n]

    def _catalogue_names(self) -> list[tuple[str, str]]:
        """The catalogue's titles as the reason check looks for them, built once per data version."""
        version = self.workspace.db.data_version()
        if self._catalogue_version != version:
            self._catalogue, self._catalogue_version = catalogue_names(self.workspace.db.titles()), version
        return self._catalogue

    def word(
        self, facts: UserFacts, recommendations: list[Recommendation], explanations: ExplanationMode | None = None
    ) -> tuple[list[Recommendation], ReasonStats]:
        """`recommendations` with the model's reasons where they pass the check, and what happened."""
        ws = self.workspace
        items = ws.db.items([r.item_id for r in recommendations])
        checker = ReasonChecker(facts.item_titles, self._catalogue_names(), set(ws.factbook.global_shares))
        with on_behalf_of(facts.user_id):
            return ws.stages(explanations=explanations).word(
                facts,
                recommendations,
                items,
                checker,
                co_liked=lambda cited, item: ws.db.co_liked(cited, item, LOVED_MIN),
                label_shares=ws.factbook.global_shares,
            )

    def explain(self, user_id: str, item_id: str, model: bool = True) -> Explanation:
        """See `Tasteprint.explain`."""
        ws = self.workspace
        facts = ws.factbook.facts(user_id)
        items = ws.db.items([item_id])
        if item_id not in items:
            raise UnknownItemError(item_id)
        ws.index()
        # Co-consumption counts come from a current fit; explaining never waits for one.
        fitted = self.fitting.current()
        together = fitted.interactions.together([item_id], facts.history_item_ids) if fitted else {}
        evidence = ws.evidence(facts, [item_id], items, together)[item_id]
        with on_behalf_of(user_id):
            return explain_item(facts, items[item_id], evidence, ws.stages(model).llm, together.get(item_id))

    def similar_items(self, item_id: str, k: int, exclude: Iterable[str]) -> list[tuple[str, float]]:
        """See `Tasteprint.similar_items`."""
        self.workspace.index()
        vector = self.workspace.vectors.item_vectors([item_id]).get(item_id)
        if vector is None:
            raise UnknownItemError(item_id)
        skip = set(exclude) | {item_id}
        return [(i, s) for i, s in self.workspace.vectors.nearest_items(vector, k + len(skip)) if i not in skip][:k]
