"""Fitting `Tasteprint`'s recommender over its store: fit and save it with the data version it saw,
load it (or refit once, under a lock) when stale, and the LLM judge that tunes the rerank blend."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from .facts import build_facts
from .llm import on_behalf_of
from .profile import build_profile
from .models import FitConfig, FitReport
from .progress import LoggedProgress
from .recommender import Recommender
from .rerank import rerank as rerank_candidates
from .retrieve import Candidate


class RecommenderFitting:
    """Fit methods of `Tasteprint`, which provides the store (`db`, `factbook`, `vectors`, `index`),
    `backend`, `settings`, `evidence_for` and the loaded `_recommender` they use."""

    @property
    def _recommender_dir(self) -> Path:
        return Path(self.settings.store) / "recommender"

    def fit(self, progress: bool = True, rerank_users: int = 0, **config: object) -> FitReport:
        """Fit the recommender on every stored interaction and save it in the store (see `Recommender`).
        `rerank_users` > 0 also tunes the LLM rerank blend on that many validation users."""
        histories = self.db.histories()
        fit_config = FitConfig(
            target=self.settings.fit_target,
            ease_max_items=self.settings.ease_max_items,
            seed=self.settings.seed,
            rerank_users=rerank_users,
            **config,
        )
        vectors = None
        if self.settings.fit_embeddings:
            self.index(progress=progress)
            vectors = self.vectors.item_vectors(sorted({i for h in histories.values() for i in h}))
        labels = {item_id: item.labels() for item_id, item in self.db.items().items()}
        version = self.db.data_version()
        recommender = Recommender(fit_config)
        with LoggedProgress(disable=not progress) as bar:
            task = bar.add_task("fitting the recommender", total=None)

            def step(message: str) -> None:
                bar.update(task, description=f"fit: {message}")

            report = recommender.fit(
                histories, vectors, labels, judge=self.judge if rerank_users else None, progress=step
            )
        report.data_version = version
        recommender.save(self._recommender_dir)
        self._recommender = recommender
        return report

    def recommender(self, progress: bool = True) -> Recommender:
        """The fitted recommender for the current data; fitted (once, under a lock) when missing or stale."""
        if (current := self.current_recommender()) is not None:
            return current
        with FileLock(str(Path(self.settings.store) / "fit.lock")):
            if self.current_recommender() is None:  # another process may have fitted it meanwhile
                self.fit(progress=progress)
        return self._recommender

    def current_recommender(self) -> Recommender | None:
        """The recommender fitted on the current data (in memory or saved in the store), or None;
        never fits."""
        version = self.db.data_version()
        if self._recommender is None or self._recommender.report.data_version != version:
            saved = Recommender.load(self._recommender_dir)
            if saved is None or saved.report is None or saved.report.data_version != version:
                return None
            self._recommender = saved
        return self._recommender

    def judge(self, user_id: str, history: list[str], pool: list[str]) -> dict[str, float]:
        """The LLM's rank of `pool` for the user as known from `history` alone: facts, a profile built
        from them (not stored) and one rerank, so blend tuning never sees the held-out item."""
        keep = set(history)
        events = [e for e in self.db.user_events(user_id) if e.item_id in keep]
        items = self.db.items(set(pool) | keep)
        facts = build_facts(
            user_id, events, items, self.factbook.global_shares, generic_aspects=self.factbook.generic_aspects
        )
        with on_behalf_of(user_id):
            profile = build_profile(
                facts, self.backend, vocabulary=set(self.factbook.global_shares), temperature=self.settings.temperature
            )
            evidence = self.evidence_for(facts, pool, items)
            candidates = [Candidate(i, 0.0) for i in pool]
            result = rerank_candidates(
                facts,
                profile,
                candidates,
                items,
                evidence,
                self.backend,
                k=len(pool),
                blend=1.0,
                temperature=self.settings.temperature,
            )
        return result.llm_rank
