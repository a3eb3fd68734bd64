"""The fitted recommender of one store: fit and save it with the data version it saw, load it (or refit
once, under a lock) when stale, and the LLM judge that tunes the rerank blend above it."""

from __future__ import annotations

from filelock import FileLock

from tasteprint.explain.rerank import blend_tuner
from tasteprint.llm import on_behalf_of
from tasteprint.models import FitConfig, FitReport
from tasteprint.profile.facts import build_facts
from tasteprint.progress import LoggedProgress
from tasteprint.recommend.persistence import load_recommender, save_recommender
from tasteprint.recommend.recommender import Recommender
from tasteprint.recommend.retrievers import Candidate

from .workspace import Workspace


class FittingService:
    """Owns the store's fitted `Recommender`: the one in memory, and the one saved in the store."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.directory = workspace.store / "recommender"
        self._recommender: Recommender | None = None
        self._latest_stamp: int | None = None  # the saved pointer's mtime when `latest` last read it

    def fit(self, progress: bool = True, rerank_users: int = 0, **config: object) -> FitReport:
        """Fit the recommender on every stored interaction and save it in the store (see `Recommender`).
        `rerank_users` > 0 also tunes the LLM rerank blend on that many validation users."""
        ws = self.workspace
        histories = ws.db.histories()
        fit_config = FitConfig.from_settings(ws.settings, **config)
        vectors = None
        if ws.settings.fit_embeddings:
            ws.index(progress=progress)
            vectors = ws.vectors.item_vectors(sorted({i for h in histories.values() for i in h}))
        labels = {item_id: item.labels() for item_id, item in ws.db.items().items()}
        version = ws.db.data_version()
        recommender = Recommender(fit_config)
        with LoggedProgress(disable=not progress) as bar:
            task = bar.add_task("fitting the recommender", total=None)

            def step(message: str) -> None:
                bar.update(task, description=f"fit: {message}")

            tuner = blend_tuner(self.judge, rerank_users, step) if rerank_users else None
            report = recommender.fit(histories, vectors, labels, tune_rerank=tuner, progress=step)
        report.data_version = version
        save_recommender(recommender, self.directory)
        self._recommender = recommender
        self._latest_stamp = (self.directory / "current.json").stat().st_mtime_ns  # `latest` need not reread it
        return report

    def get(self, progress: bool = True) -> Recommender:
        """The fitted recommender for the current data; fitted (once, under a lock) when missing or stale.
        With `refit_stale` off, a stale fit is served as it is (a refit is the caller's to start)."""
        if (current := self.current()) is not None:
            return current
        if not self.workspace.settings.refit_stale and (latest := self.latest()) is not None:
            return latest
        with FileLock(str(self.workspace.store / "fit.lock")):
            if self.current() is None:  # another process may have fitted it meanwhile
                self.fit(progress=progress)
        return self._recommender

    def current(self) -> Recommender | None:
        """The recommender fitted on the current data (in memory or saved in the store), or None;
        never fits."""
        version = self.workspace.db.data_version()
        if self._recommender is None or self._recommender.report.data_version != version:
            saved = self.latest()  # read from the store only when a fit was saved since
            if saved is None or saved.report is None or saved.report.data_version != version:
                return None
        return self._recommender

    def latest(self) -> Recommender | None:
        """The last recommender fitted (in memory, or saved in the store by any process), current or not."""
        pointer = self.directory / "current.json"
        stamp = pointer.stat().st_mtime_ns if pointer.exists() else None
        if stamp != self._latest_stamp:  # a refit (here or in another process) replaced it
            self._latest_stamp = stamp
            self._recommender = load_recommender(self.directory) or self._recommender
        return self._recommender

    def judge(self, user_id: str, history: list[str], pool: list[str]) -> dict[str, float]:
        """The LLM's rank of `pool` for the user as known from `history` alone: facts, a profile built
        from them (not stored) and one rerank, so blend tuning never sees the held-out item."""
        ws = self.workspace
        keep = set(history)
        events = [e for e in ws.db.user_events(user_id) if e.item_id in keep]
        items = ws.db.items(set(pool) | keep)
        facts = build_facts(
            user_id, events, items, ws.factbook.global_shares, generic_aspects=ws.factbook.generic_aspects
        )
        stages = ws.stages()
        with on_behalf_of(user_id):
            profile = stages.profile(facts)
            evidence = ws.evidence(facts, pool, items)
            candidates = [Candidate(i, 0.0) for i in pool]
            result = stages.rerank(facts, profile, candidates, items, evidence, k=len(pool), blend=1.0)
        return result.llm_rank
