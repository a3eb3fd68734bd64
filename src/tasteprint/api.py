"""The Python API: `Tasteprint` ties the pipeline stages together over one store."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import Settings
from .db import Database
from .errors import TasteprintError, UnknownItemError, UnknownUserError
from .facts import LOVED_MIN, FactBook
from .embed import Embedder, profile_text
from .explain import explain_item
from .ingest import ingest as ingest_path
from .ingest import read_identity_map
from .llm import CachedBackend, LLMBackend, make_backend, on_behalf_of
from .models import Event, Explanation, IngestReport, LinkReport, Recommendation, UserFacts, UserProfile
from .recommender import Recommender
from .evidence import nearest_history, positive_history
from .reasons import ReasonChecker, ReasonStats, catalogue_names, resolve_mode, word_recommendations
from .rerank import DEFAULT_BLEND, RerankResult
from .rerank import rerank as rerank_candidates
from .retrieve import fuse
from .segments import Segmentation, build_segments, nearest_segment
from .split import COLD_START_MAX
from .aspects import ASPECT_ATTRIBUTE, item_aspects, review_texts
from .store import VectorStore, index_items
from .fitting import RecommenderFitting
from .profiling import ProfileLifecycle

SEGMENT_PRIOR_WEIGHT = 0.5
SEGMENT_PRIOR_DEPTH = 2000


class Tasteprint(RecommenderFitting, ProfileLifecycle):
    """Profiles and recommendations over one store directory. Fitting the recommender is in
    `RecommenderFitting`; the profile lifecycle (build, update, versions, diff, batches) in
    `ProfileLifecycle`.

    Example:
        >>> tp = Tasteprint(store="S")                       # embedded local model by default
        >>> tp.ingest("../shared/data/ml-latest-small")
        >>> tp.profile("1").interests[0].label
    """

    def __init__(
        self,
        store: str | Path | None = None,
        llm: str | LLMBackend | None = None,
        settings: Settings | None = None,
        **overrides: object,
    ):
        if isinstance(llm, str):
            overrides["llm"] = llm
        self.settings = settings or Settings.load(store=store, **overrides)
        self.db = Database(Path(self.settings.store))
        self.factbook = FactBook(self.db)
        self._backend = llm if llm is not None and not isinstance(llm, str) else None
        self.embed = Embedder()
        self._vectors: VectorStore | None = None
        self._recommender: Recommender | None = None
        self.last_rerank: RerankResult | None = None
        self.last_reasons: ReasonStats | None = None
        self._catalogue: list[tuple[str, str]] = []
        self._catalogue_version: int | None = None
        self._indexed_version: int | None = None

    @property
    def backend(self) -> LLMBackend:
        """The language model, created on first use so that ingest never loads one; its responses are
        cached in the store unless `llm_cache` is off."""
        if self._backend is None:
            self._backend = make_backend(self.settings)
        if self.settings.llm_cache and not isinstance(self._backend, CachedBackend):
            self._backend = CachedBackend(self._backend, self.db)
        return self._backend

    def close(self) -> None:
        self.db.close()

    def ingest(
        self,
        path: str | Path,
        fmt: str | None = None,
        platform: str | None = None,
        identity_map: str | Path | None = None,
    ) -> IngestReport:
        """Load a data set. `platform` names where its events happened; `identity_map` (CSV with header
        platform,platform_user_id,person_id) stores linked accounts under their person id."""
        report = ingest_path(self.db, Path(path), fmt, platform, Path(identity_map) if identity_map else None)
        self.mine_aspects()
        return report

    def mine_aspects(self, events: Iterable[Event] | None = None, progress: bool = True) -> int:
        """Mine item aspects from review text (all stored reviews, or only `events`: the evaluation passes
        its training part, so no held-out review describes an item) and store them as the items'
        `aspect` labels. Returns how many items carry aspects."""
        texts = self.db.review_texts() if events is None else review_texts(events)
        if not texts and not self.db.generic_aspects():
            return 0
        if progress and texts:
            print(f"mining aspects from the reviews of {len(texts)} items", file=sys.stderr, flush=True)
        aspects, generic = item_aspects(texts, self.embed)
        count = self.db.set_item_aspects(aspects, generic, ASPECT_ATTRIBUTE)
        self.factbook = FactBook(self.db)
        return count

    def link_identities(self, path: str | Path) -> LinkReport:
        """Link accounts to people from an identity map CSV; events already stored move to the person,
        and the accounts' own profiles (and profile embeddings) are removed."""
        report = IngestReport()
        links = read_identity_map(Path(path), report)
        moved = self.db.link_identities(links)
        for (_, account), person in links.items():
            if account != person and not self.db.has_user(account):
                self.vectors.delete_profile(account)
        self.factbook = FactBook(self.db)
        return LinkReport(links=len(links), events_moved=moved, errors=report.errors)

    @property
    def vectors(self) -> VectorStore:
        if self._vectors is None:
            self._vectors = VectorStore(Path(self.settings.store), self.settings.chroma_url)
        return self._vectors

    def index(self, progress: bool = True) -> int:
        """Embed catalogue items missing from the vector store; returns how many were added.

        Checked once per data version in this process, so recommend and explain stay cheap.
        """
        version = self.db.data_version()
        if self._indexed_version == version:
            return 0
        added = index_items(self.vectors, self.db.items(), self.embed, progress=progress)
        self._indexed_version = version
        return added

    def profile_vector(self, profile: UserProfile | None) -> np.ndarray | None:
        """The profile's text embedding (part of the embedding retriever's query), or None without one."""
        return self.embed([profile_text(profile)])[0] if profile is not None and self.settings.fit_embeddings else None

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        rerank: bool = True,
        n_candidates: int = 20,
        exclude: Iterable[str] = (),
        reasons: bool = True,
    ) -> list[Recommendation]:
        """Top-k unconsumed items for the user, each with an explanation citing the user's history.

        The fitted recommender proposes and ranks `n_candidates`; with `rerank` the LLM reorders them,
        blended with the fitted order by the weight the fit chose on validation (or `rerank_blend`),
        and picks each citation, and (with `reasons`) words each pick's reason (`word`). `exclude`
        drops further items (e.g. what was shown already).
        """
        user_id = str(user_id)
        facts = self.facts(user_id)
        profile = self.profile(user_id) if rerank else self.db.latest_profile(user_id)
        recommender = self.recommender()
        history = [e.item_id for e in self.db.user_events(user_id) if e.kind != "search"]
        profile_vector = self.profile_vector(profile)
        candidates = recommender.recommend(
            history, n=max(n_candidates, k), exclude=exclude, profile_vector=profile_vector
        )
        if len(facts.history_item_ids) <= COLD_START_MAX and self._segments_file.exists():
            query = profile_vector
            if query is None and (loved := self.vectors.item_vectors(history)):
                query = np.mean(list(loved.values()), axis=0)
            prior = self.segment_prior(query, set(history) | set(exclude))
            lists = {"fitted": [c.item_id for c in candidates], "segment": prior}
            candidates = fuse(lists, {"fitted": 1.0, "segment": SEGMENT_PRIOR_WEIGHT})[: max(n_candidates, k)]
        ids = [c.item_id for c in candidates]
        items = self.db.items(ids)
        together = recommender.interactions.together(ids, facts.history_item_ids)
        evidence = self.evidence_for(facts, ids, items, together)
        blend = self.settings.rerank_blend
        if blend is None:
            blend = DEFAULT_BLEND if recommender.rerank_blend is None else recommender.rerank_blend
        with on_behalf_of(user_id):
            self.last_rerank = rerank_candidates(
                facts,
                profile,
                candidates,
                items,
                evidence,
                self.backend if rerank else None,
                k=k,
                blend=blend,
                passes=self.settings.rerank_passes,
                prompts_dir=self.settings.prompts_dir,
                temperature=self.settings.temperature,
                together=together,
            )
        self.last_reasons = None
        if rerank and reasons and not self.last_rerank.stats.fallback:
            return self._word(facts, self.last_rerank.recommendations)
        return self.last_rerank.recommendations

    def word(self, user_id: str, recommendations: list[Recommendation]) -> list[Recommendation]:
        """`recommendations` with the model's reasons where they pass the check (`explanation_source`
        "llm"), the rest unchanged. One LLM call for all; what happened is in `last_reasons`."""
        return self._word(self.facts(user_id), recommendations)

    def _catalogue_names(self) -> list[tuple[str, str]]:
        """The catalogue's titles as the reason check looks for them, built once per data version."""
        version = self.db.data_version()
        if self._catalogue_version != version:
            self._catalogue, self._catalogue_version = catalogue_names(self.db.titles()), version
        return self._catalogue

    def _word(self, facts: UserFacts, recommendations: list[Recommendation]) -> list[Recommendation]:
        user_id = facts.user_id
        items = self.db.items([r.item_id for r in recommendations])
        checker = ReasonChecker(facts.item_titles, self._catalogue_names(), set(self.factbook.global_shares))
        with on_behalf_of(user_id):
            worded, self.last_reasons = word_recommendations(
                facts,
                recommendations,
                items,
                self.backend,
                resolve_mode(self.settings.explanations, self.backend),
                checker,
                co_liked=lambda cited, item: self.db.co_liked(cited, item, LOVED_MIN),
                label_shares=self.factbook.global_shares,
                prompts_dir=self.settings.prompts_dir,
                temperature=self.settings.temperature,
            )
        return worded

    @property
    def _segments_file(self) -> Path:
        return Path(self.settings.store) / "segments.json"

    def segments(self, k: int | str = "auto", seed: int | None = None) -> Segmentation:
        """k-means segments of every profiled user (k by silhouette with "auto"), each described by the
        LLM from its members' verified interests; saved in the store as the prior for cold users."""
        user_ids = self.db.profiled_users()
        profiles = [self.db.latest_profile(u) for u in user_ids]
        facts = [self.facts(u) for u in user_ids]
        if not profiles:
            raise TasteprintError("no profiled users to segment", hint="run `tasteprint profile --all` first")
        embeddings = self.embed([profile_text(p) for p in profiles])
        segmentation = build_segments(
            profiles,
            facts,
            embeddings,
            self.backend,
            k=k,
            seed=self.settings.seed if seed is None else seed,
            vocabulary=set(self.factbook.global_shares),
            prompts_dir=self.settings.prompts_dir,
            temperature=self.settings.temperature,
        )
        segmentation.data_version = self.db.data_version()
        partial = self._segments_file.with_suffix(".tmp")
        partial.write_text(segmentation.model_dump_json())
        partial.replace(self._segments_file)  # a reader never sees half a file
        return segmentation

    def segment_prior(self, query: np.ndarray | None, exclude: set[str]) -> list[str]:
        """Popular items (not in `exclude`) carrying the top interests of the segment nearest to `query`;
        empty when no segments were built or the user has nothing to place them by."""
        if query is None or not self._segments_file.exists():
            return []
        segment = nearest_segment(Segmentation.model_validate_json(self._segments_file.read_text()), query)
        wanted = {i.label for i in segment.top_interests}
        popular = [i for i in self.recommender().single("pop", [], n=SEGMENT_PRIOR_DEPTH) if i not in exclude]
        items = self.db.items(popular)
        return [i for i in popular if i in items and wanted & set(items[i].labels())]

    def evidence_for(
        self, facts: UserFacts, item_ids: list[str], items: dict, together: dict[str, dict[str, int]] | None = None
    ) -> dict[str, list[str]]:
        """For each item, the user's nearest (not disliked) history items: the citations it may use.
        `together` (item -> history item -> people who consumed both, counted in the fitted data) lets
        an item that shares nothing else cite what it was consumed with."""
        vectors = self.vectors.item_vectors(list(item_ids) + positive_history(facts))
        together = together or {}
        return {
            i: nearest_history(vectors.get(i), vectors, facts, items.get(i), together=together.get(i)) for i in item_ids
        }

    def explain(self, user_id: str, item_id: str) -> Explanation:
        """Why `item_id` (recommended or not) fits the user, citing the user's own history."""
        user_id, item_id = str(user_id), str(item_id)
        facts = self.facts(user_id)
        items = self.db.items([item_id])
        if item_id not in items:
            raise UnknownItemError(item_id)
        self.index()
        # Co-consumption counts come from a current fit; explaining never waits for one.
        fitted = self.current_recommender()
        together = fitted.interactions.together([item_id], facts.history_item_ids) if fitted else {}
        evidence = self.evidence_for(facts, [item_id], items, together)[item_id]
        with on_behalf_of(user_id):
            return explain_item(
                facts,
                items[item_id],
                evidence,
                self.backend,
                self.settings.prompts_dir,
                self.settings.temperature,
                together.get(item_id),
            )

    def similar_items(self, item_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """Items nearest to `item_id` by embedding, excluding `exclude` and the item itself."""
        self.index()
        vector = self.vectors.item_vectors([str(item_id)]).get(str(item_id))
        if vector is None:
            raise UnknownItemError(str(item_id))
        skip = set(exclude) | {str(item_id)}
        return [(i, s) for i, s in self.vectors.nearest_items(vector, k + len(skip)) if i not in skip][:k]

    def find_items(self, text: str) -> list[str]:
        """Item ids whose title contains `text` (case-insensitive), shortest title first."""
        return self.db.find_items_by_title(text)

    def forget(self, user_id: str) -> int:
        """Remove everything stored about a user: events, profiles, cached LLM responses and the profile embedding.
        Afterwards the user is unknown to every command. Returns the number of events removed."""
        user_id = str(user_id)
        if not self.db.has_user(user_id):
            raise UnknownUserError(user_id)
        self.vectors.delete_profile(user_id)
        return self.db.forget_user(user_id)

    def feedback(self, user_id: str, item_id: str, liked: bool) -> Event:
        """Record that the user liked (rated 5) or did not like (rated 1) an item, now; the next profile
        update takes it in. Returns the stored event."""
        user_id, item_id = str(user_id), str(item_id)
        events = self.db.user_events(user_id)
        if not events:
            raise UnknownUserError(user_id)
        if not self.db.items([item_id]):
            raise UnknownItemError(item_id)
        event = Event(
            user_id=user_id,
            item_id=item_id,
            kind="rating",
            rating=5.0 if liked else 1.0,
            timestamp=max(int(time.time()), events[-1].timestamp + 1),
            platform=events[-1].platform,
        )
        self.db.add_feedback(event)
        return event

    def forget_item(self, user_id: str, item_id: str) -> int:
        """Remove one item from the user's history (every event on it). Returns how many were removed."""
        return self.db.forget_item(str(user_id), str(item_id))

    def users(self) -> list[str]:
        return self.db.user_ids()

    def facts(self, user_id: str) -> UserFacts:
        return self.factbook.facts(str(user_id))
