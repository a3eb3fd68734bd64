"""Work kept off the request path: the model's wording of reasons and profile builds on one worker
thread, refits on another. A result is cached and replaces the template in the next answer
(`explanation_source` says which); a refit is swapped in atomically when it is saved."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tasteprint.api import Tasteprint
from tasteprint.models import Recommendation, UserProfile

log = logging.getLogger("tasteprint")
WORDED_FIELDS = ("explanation", "evidence", "explanation_source")  # what the model's wording replaces in a pick


class Background:
    """Deduplicated background jobs and the reasons they worded, per (user, explanations, item)."""

    def __init__(self, tp: Tasteprint):
        self.tp = tp
        self.llm = ThreadPoolExecutor(1, thread_name_prefix="tasteprint-llm")  # one model, one call at a time
        self.fits = ThreadPoolExecutor(1, thread_name_prefix="tasteprint-fit")
        self._lock = threading.Lock()
        self._pending: set[tuple] = set()
        self._worded: dict[tuple[str, str, str], Recommendation] = {}

    def _submit(self, pool: ThreadPoolExecutor, key: tuple, job: Callable[[], object]) -> bool:
        """Run `job` on `pool` unless the same job is queued or running; whether it was queued."""
        with self._lock:
            if key in self._pending:
                return False
            self._pending.add(key)

        def run() -> None:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - a failed job leaves the template; log it and go on
                log.warning("background %s failed: %s: %s", key[0], type(exc).__name__, exc)
            finally:
                with self._lock:
                    self._pending.discard(key)

        pool.submit(run)
        return True

    def pending(self, kind: str) -> bool:
        with self._lock:
            return any(key[0] == kind for key in self._pending)

    def with_reasons(self, user_id: str, explanations: str, picks: list[Recommendation]) -> list[Recommendation]:
        """`picks` with every reason the model has worded for them already; the rest keep the template
        and are queued for wording."""
        served, missing = [], []
        for pick in picks:
            worded = self._worded.get((user_id, explanations, pick.item_id))
            if worded is None:
                missing.append(pick)
                served.append(pick)
            else:  # the current rank and score, the worded sentence
                served.append(pick.model_copy(update={k: getattr(worded, k) for k in WORDED_FIELDS}))
        if missing:
            key = ("word", user_id, explanations, tuple(p.item_id for p in missing))
            self._submit(self.llm, key, lambda: self._word(user_id, explanations, missing))
        return served

    def _word(self, user_id: str, explanations: str, picks: list[Recommendation]) -> None:
        worded, _ = self.tp.word(user_id, picks, explanations=explanations)
        with self._lock:  # a reason the check refused stays the template: cached too, not asked again
            self._worded |= {(user_id, explanations, pick.item_id): pick for pick in worded}

    def stored_profile(self, user_id: str) -> UserProfile | None:
        """The user's stored profile, as it is; when there is none, or events arrived since, building
        (or updating) it is queued, so a later request shows the current one."""
        db = self.tp.db
        stored = db.profiles.latest(user_id)
        if db.has_user(user_id) and (stored is None or db.profiles.is_stale(user_id)):
            self._submit(self.llm, ("profile", user_id), lambda: self.tp.profile(user_id))
        return stored

    def refit(self) -> bool:
        """Queue a refit on every stored event (aspects mined first); whether it was queued now."""

        def fit() -> None:
            self.tp.mine_aspects(progress=False)
            self.tp.fit(progress=False)

        return self._submit(self.fits, ("fit",), fit)

    def forget(self, user_id: str) -> None:
        """Drop the reasons worded for a user (their edits or events changed what fits, or they left)."""
        with self._lock:
            for key in [k for k in self._worded if k[0] == user_id]:
                del self._worded[key]

    def close(self) -> None:
        self.llm.shutdown(wait=False, cancel_futures=True)
        self.fits.shutdown(wait=False, cancel_futures=True)
