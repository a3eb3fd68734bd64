"""The Python API: `Tasteprint`, one facade over the services of one store."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from .config import ExplanationMode, Settings
from .errors import TasteprintError
from .explain.chain import RecommendResult
from .explain.reasons import ReasonStats
from .llm import LLMBackend
from .models import (
    Event,
    Explanation,
    FitReport,
    IngestReport,
    LinkReport,
    ProfileDiff,
    Recommendation,
    StoreCheck,
    UserFacts,
    UserProfile,
)
from .profile.edits import EditRequest
from .profile.segments import Segmentation
from .recommend.persistence import load_recommender
from .recommend.recommender import Recommender
from .services.batch import BatchOptions, BatchReport, batch_profile
from .services.data import DataService
from .services.fitting import FittingService
from .services.profiles import BatchResult, EditResult, ProfileService
from .services.recommending import RecommendService
from .services.segments import SegmentService
from .services.workspace import Workspace
from .storage.embeddings import Embedder
from .storage.sqlite import Database
from .storage.vectors import VectorStore


@dataclass(frozen=True)
class Services:
    """The services `Tasteprint` composes, each owning its state; for tools that work below the facade
    (the evaluation runner)."""

    workspace: Workspace
    data: DataService
    profiles: ProfileService
    fitting: FittingService
    segments: SegmentService
    recommending: RecommendService

    @classmethod
    def over(cls, workspace: Workspace) -> Services:
        profiles, fitting = ProfileService(workspace), FittingService(workspace)
        segments = SegmentService(workspace, fitting)
        recommending = RecommendService(workspace, profiles, fitting, segments)
        return cls(workspace, DataService(workspace), profiles, fitting, segments, recommending)


class Tasteprint:
    """Profiles and recommendations over one store directory.

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
        """Open (or create) a store.

        Args:
            store: the store directory (default: `Settings.store`, `TASTEPRINT_STORE`).
            llm: a backend name (`local`, `openai`, `scripted`) or a backend object to use as it is.
            settings: complete settings; otherwise they are loaded from the environment.
            overrides: single settings on top of the environment's (see `Settings`).
        """
        if isinstance(llm, str):
            overrides["llm"] = llm
        self.settings = settings or Settings.load(store=store, **overrides)
        backend = llm if llm is not None and not isinstance(llm, str) else None
        self.services = Services.over(Workspace(self.settings, backend))

    @property
    def db(self) -> Database:
        """The store's SQLite database."""
        return self.services.workspace.db

    @property
    def backend(self) -> LLMBackend:
        """The language model, created on first use (responses cached in the store unless `llm_cache` is off)."""
        return self.services.workspace.backend

    @property
    def vectors(self) -> VectorStore:
        """The store's item and profile embeddings."""
        return self.services.workspace.vectors

    @property
    def embed(self) -> Embedder:
        """The sentence embedder (all-MiniLM-L6-v2, offline)."""
        return self.services.workspace.embed

    def close(self) -> None:
        self.services.workspace.close()

    # -- data ---------------------------------------------------------------------------------

    def ingest(
        self,
        path: str | Path,
        fmt: str | None = None,
        platform: str | None = None,
        identity_map: str | Path | None = None,
        mine_aspects: bool = True,
    ) -> IngestReport:
        """Load a data set. `platform` names where its events happened; `identity_map` (CSV with header
        platform,platform_user_id,person_id) stores linked accounts under their person id. With
        `mine_aspects` off the reviews' aspects are left for a later `mine_aspects` (a service taking
        events in small batches mines them before each refit)."""
        identities = Path(identity_map) if identity_map else None
        return self.services.data.ingest(Path(path), fmt, platform, identities, mine_aspects)

    def mine_aspects(self, events: Iterable[Event] | None = None, progress: bool = True) -> int:
        """Mine item aspects from the stored reviews (or only `events`'); returns how many items carry some."""
        return self.services.data.mine_aspects(events, progress)

    def link_identities(self, path: str | Path) -> LinkReport:
        """Link accounts to people from an identity map CSV; events already stored move to the person,
        and the accounts' own profiles (and profile embeddings) are removed."""
        return self.services.data.link_identities(Path(path))

    def index(self, progress: bool = True) -> int:
        """Embed catalogue items missing from the vector store; returns how many were added."""
        return self.services.workspace.index(progress)

    def forget(self, user_id: str) -> int:
        """Remove everything stored about a user: events, profiles, cached LLM responses and the profile
        embedding. Afterwards the user is unknown to every command. Returns the number of events removed."""
        return self.services.data.forget(str(user_id))

    def feedback(self, user_id: str, item_id: str, liked: bool) -> Event:
        """Record that the user liked (rated 5) or did not like (rated 1) an item, now; the next profile
        update takes it in. Returns the stored event."""
        return self.services.data.feedback(str(user_id), str(item_id), liked)

    def forget_item(self, user_id: str, item_id: str) -> int:
        """Remove one item from the user's history (every event on it). Returns how many were removed."""
        return self.db.forget_item(str(user_id), str(item_id))

    def users(self) -> list[str]:
        """Every user id in the store."""
        return self.db.user_ids()

    def facts(self, user_id: str) -> UserFacts:
        """The facts computed from the user's history: the profile's input and ground truth."""
        return self.services.workspace.factbook.facts(str(user_id))

    def label_shares(self) -> dict[str, float]:
        """Every catalogue label (genre, category, decade, tag, mined aspect) with its share of the events."""
        return self.services.workspace.factbook.global_shares

    def find_items(self, text: str) -> list[str]:
        """Item ids whose title contains `text` (case-insensitive), shortest title first."""
        return self.db.find_items_by_title(text)

    # -- profiles -----------------------------------------------------------------------------

    def profile(self, user_id: str, *, refresh: bool = False) -> UserProfile:
        """The user's current profile. Built when missing (or with `refresh`, from all facts), updated
        when new events arrived since the stored version, else the stored version."""
        return self.services.profiles.get(str(user_id), refresh=refresh)

    def edit_profile(
        self,
        user_id: str,
        *,
        not_interested: Iterable[str] = (),
        more: Iterable[str] = (),
        never: Iterable[str] = (),
        liked: Iterable[str] = (),
        undo: Iterable[str] = (),
        says: str | None = None,
    ) -> EditResult:
        """Record what a person states about their profile; recommendations obey it from now on, and
        every later profile version (a rebuild or an update) keeps it until it is undone.

        Args:
            not_interested: labels (as `profile` shows them: genres, decades, tags, mined aspects) no
                pick may carry.
            more: labels of which at least 3 of every 10 picks carry one (or all that are left).
            never: items (ids, or titles matching exactly one item) never to serve again.
            liked: items they enjoyed; they join the history the recommender reads.
            undo: labels or items whose earlier edit is removed.
            says: free text; kept as a note, and what it states becomes edits (liked and disliked
                labels, liked titles), read by the model among the catalogue's names and checked
                against the text. A person with no history can be served from this alone.

        Raises:
            UnknownNameError: a label or item the catalogue does not have (nothing is changed); its
                hint names the nearest ones.
        """
        request = EditRequest(
            not_interested=list(not_interested),
            more=list(more),
            never=list(never),
            liked=list(liked),
            undo=list(undo),
            says=says,
        )
        return self.services.profiles.edit(str(user_id), request)

    def update(self, user_id: str) -> UserProfile:
        """The next profile version from the previous one plus the facts of events that arrived since."""
        return self.services.profiles.update(str(user_id))

    def profile_history(self, user_id: str) -> list[UserProfile]:
        """Every stored version of the user's profile, oldest first."""
        return self.services.profiles.history(str(user_id))

    def diff(self, user_id: str, old: int | None = None, new: int | None = None) -> ProfileDiff:
        """What changed between two profile versions (default: the last two)."""
        return self.services.profiles.diff(str(user_id), old, new)

    def profile_many(
        self, user_ids: Iterable[str], *, refresh: bool = False, progress: bool = True, threads: int = 1
    ) -> BatchResult:
        """Profile several users in this process (`threads` in flight); failures are reported, not raised."""
        return self.services.profiles.many(user_ids, refresh=refresh, progress=progress, threads=threads)

    def batch_profile(
        self, out: str | Path, users: Iterable[str] | None = None, **options: Unpack[BatchOptions]
    ) -> BatchReport:
        """Profile `users` (default: all) on Ray Data or in this process, writing `OUT/profiles.jsonl`
        (one profile object per line) and `OUT/profiles.parquet`; a rerun resumes. `options`: `engine`
        ("ray" or "local"), `actors`, `ray_address`, `progress` (see `BatchOptions`)."""
        return batch_profile(self.services.profiles, Path(out), users, **options)

    def check(self) -> StoreCheck:
        """The store's health: the database's integrity, whether the saved fit and the item vectors
        match the data. Derived files that do not match are rebuilt on use; a damaged database is not."""
        db = self.db
        database = db.integrity()
        if database != "ok":
            return StoreCheck(database=database)
        saved = load_recommender(self.services.fitting.directory)
        version = db.data_version()
        fit_current = None if saved is None or saved.report is None else saved.report.data_version == version
        items = len(db.items())
        return StoreCheck(
            database=database,
            data_version=version,
            fit_current=fit_current,
            items=items,
            items_embedded=len(self.vectors.item_ids()),
        )

    def backup(self, directory: str | Path) -> Path:
        """A consistent copy of the store in `directory` (a new folder), taken while it may be in use:
        SQLite's online backup of the database, then the vectors and the fitted recommender."""
        target = Path(directory)
        if target.exists() and any(target.iterdir()):
            raise TasteprintError(f"{target} is not empty", hint="back up into a new folder")
        target.mkdir(parents=True, exist_ok=True)
        self.db.backup_to(target / self.db.path.name)
        for derived in ("chroma", "recommender"):
            if (self.services.workspace.store / derived).exists():
                shutil.copytree(self.services.workspace.store / derived, target / derived)
        return target

    def segments(self, k: int | str = "auto", seed: int | None = None) -> Segmentation:
        """k-means segments of every profiled user (k by silhouette with "auto"), described by the LLM;
        saved in the store as the prior for cold users."""
        return self.services.segments.build(k, seed)

    # -- recommending -------------------------------------------------------------------------

    def fit(self, progress: bool = True, rerank_users: int = 0, **config: object) -> FitReport:
        """Fit the recommender on every stored interaction and save it in the store (see `Recommender`).
        `rerank_users` > 0 also tunes the LLM rerank blend on that many validation users."""
        return self.services.fitting.fit(progress, rerank_users, **config)

    def recommender(self, progress: bool = True) -> Recommender:
        """The fitted recommender for the current data; fitted (once, under a lock) when missing or stale."""
        return self.services.fitting.get(progress)

    def current_recommender(self) -> Recommender | None:
        """The recommender fitted on the current data, or None; never fits."""
        return self.services.fitting.current()

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        rerank: bool = True,
        n_candidates: int | None = None,
        exclude: Iterable[str] = (),
        reasons: bool = True,
    ) -> RecommendResult:
        """Top-k unconsumed items for the user, each with an explanation citing the user's history.

        The fitted recommender proposes and ranks `n_candidates` (default `Settings.candidates`); with
        `rerank` the LLM reorders them, blended with the fitted order by the weight the fit chose on
        validation (or `rerank_blend`), and picks each citation, and (with `reasons`) words each pick's
        reason. `exclude` drops further items (e.g. what was shown already).

        Returns:
            The picks with what the rerank and the reason wording did.
        """
        n = self.settings.candidates if n_candidates is None else n_candidates
        return self.services.recommending.recommend(
            str(user_id), k, rerank=rerank, n_candidates=n, exclude=exclude, reasons=reasons
        )

    def recommend_many(
        self,
        user_ids: Iterable[str],
        k: int = 10,
        *,
        rerank: bool = True,
        n_candidates: int | None = None,
        exclude: Iterable[str] = (),
        reasons: bool = True,
    ) -> list[RecommendResult | TasteprintError]:
        """`recommend` for each of `user_ids`, in order, with the same arguments for all. A user that
        cannot be answered (an unknown user, say) gets its error in place; the others are answered.
        Faster than one call each: the embedding retriever reads the catalogue's vectors once for all
        of them. On one BLAS thread each user's picks equal what `recommend` returns for that user alone.
        """
        n = self.settings.candidates if n_candidates is None else n_candidates
        return self.services.recommending.recommend_many(
            [str(u) for u in user_ids], k, rerank=rerank, n_candidates=n, exclude=exclude, reasons=reasons
        )

    def word(
        self, user_id: str, recommendations: list[Recommendation], explanations: ExplanationMode | None = None
    ) -> tuple[list[Recommendation], ReasonStats]:
        """`recommendations` with the model's reasons where they pass the check (`explanation_source`
        "llm"), the rest unchanged, and what happened. One LLM call for all. `explanations` (auto, prose
        or slots) overrides the setting of who words them."""
        return self.services.recommending.word(self.facts(user_id), recommendations, explanations)

    def explain(self, user_id: str, item_id: str, *, model: bool = True) -> Explanation:
        """Why `item_id` (recommended or not) fits the user, citing the user's own history; without
        `model`, the sentence is built from the evidence alone (no LLM call)."""
        return self.services.recommending.explain(str(user_id), str(item_id), model)

    def similar_items(self, item_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """Items nearest to `item_id` by embedding, excluding `exclude` and the item itself."""
        return self.services.recommending.similar_items(str(item_id), k, exclude)
