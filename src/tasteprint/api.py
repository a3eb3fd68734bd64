"""The Python API: `Tasteprint` ties the pipeline stages together over one store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from .config import Settings
from .db import Database
from .errors import TasteprintError, UnknownUserError
from .facts import FactBook
from .ingest import ingest as ingest_path
from .llm import LLMBackend, make_backend
from .models import IngestReport, UserFacts, UserProfile
from .profile import build_profile


@dataclass
class BatchResult:
    profiles: dict[str, UserProfile] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


class Tasteprint:
    """Profiles and recommendations over one store directory.

    Example:
        >>> tp = Tasteprint(store="S")                       # embedded local model by default
        >>> tp.ingest("../shared/data/ml-latest-small")
        >>> tp.profile("1").interests[0].label
    """

    def __init__(self, store: str | Path | None = None, llm: str | LLMBackend | None = None,
                 settings: Settings | None = None, **overrides: object):
        if isinstance(llm, str):
            overrides["llm"] = llm
        self.settings = settings or Settings.load(store=store, **overrides)
        self.db = Database(Path(self.settings.store))
        self.factbook = FactBook(self.db)
        self._backend = llm if llm is not None and not isinstance(llm, str) else None

    @property
    def backend(self) -> LLMBackend:
        """The language model, created on first use so that ingest never loads one."""
        if self._backend is None:
            self._backend = make_backend(self.settings)
        return self._backend

    def close(self) -> None:
        self.db.close()

    def ingest(self, path: str | Path, fmt: str | None = None, platform: str | None = None) -> IngestReport:
        report = ingest_path(self.db, Path(path), fmt, platform)
        self.factbook = FactBook(self.db)
        return report

    def users(self) -> list[str]:
        return self.db.user_ids()

    def facts(self, user_id: str) -> UserFacts:
        return self.factbook.facts(str(user_id))

    def profile(self, user_id: str, *, refresh: bool = False) -> UserProfile:
        """The user's latest profile; built (and stored as a new version) when missing or `refresh`."""
        user_id = str(user_id)
        if not self.db.has_user(user_id):
            raise UnknownUserError(user_id)
        if not refresh and (stored := self.db.latest_profile(user_id)):
            return stored
        facts = self.facts(user_id)
        profile = build_profile(
            facts, self.backend, vocabulary=set(self.factbook.global_shares), prompts_dir=self.settings.prompts_dir,
            temperature=self.settings.temperature,
        )
        return self.db.save_profile(profile)

    def profile_history(self, user_id: str) -> list[UserProfile]:
        return self.db.profile_versions(str(user_id))

    def profile_many(self, user_ids: Iterable[str], *, refresh: bool = False, progress: bool = True) -> BatchResult:
        """Profile several users; each finished profile is stored at once, failures are reported, not raised."""
        ids = [str(u) for u in user_ids]
        result = BatchResult()
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("profiling", total=len(ids))
            for user_id in ids:
                try:
                    result.profiles[user_id] = self.profile(user_id, refresh=refresh)
                except TasteprintError as exc:
                    result.failures[user_id] = str(exc)
                bar.advance(task)
        return result
