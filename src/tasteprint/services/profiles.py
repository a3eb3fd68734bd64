"""Profiles over one store: build a profile, update it incrementally from new events, keep every
version with its embedding, diff two versions, and profile many users at once."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from tasteprint.errors import ConfigError, TasteprintError, UnknownUserError
from tasteprint.llm import on_behalf_of
from tasteprint.models import ProfileDiff, ProfileEdit, UserFacts, UserProfile, utcnow
from tasteprint.profile.draft import Update, profile_diff
from tasteprint.profile.edits import (
    EditRequest,
    apply_edits,
    obey_edits,
    reading_edits,
    resolve_undo,
    stated_profile,
    statements,
)
from tasteprint.profile.facts import build_facts, stated_facts
from tasteprint.profile.stated import StatedReading, read_statement
from tasteprint.progress import LoggedProgress
from tasteprint.storage.embeddings import profile_text

from .workspace import Workspace


@dataclass
class EditResult:
    """What an edit left: the user's edits, the profile version showing them (None while a user with
    history has no profile yet: the first build carries them), and how a `says` text was read."""

    edits: list[ProfileEdit]
    profile: UserProfile | None
    reading: StatedReading | None = None


@dataclass
class BatchResult:
    """What a batch did: every profile it returns, which of them were already stored (not recomputed),
    and each user it could not profile, with the reason."""

    profiles: dict[str, UserProfile] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


class ProfileService:
    """Builds, updates, stores and compares the profiles of one store's users."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def get(self, user_id: str, *, refresh: bool = False) -> UserProfile:
        """The user's current profile. Built when missing (or with `refresh`, from all facts), updated
        when new events arrived since the stored version (`update`), else the stored version. A person
        known only by their edits has the stated profile their last edit stored."""
        db = self.workspace.db
        if not db.has_user(user_id):
            if stated := db.profiles.latest(user_id):
                return stated
            raise UnknownUserError(user_id)
        stored = None if refresh else db.profiles.latest(user_id)
        if stored is None:
            return self._build(user_id, None)
        return self.update(user_id) if db.profiles.is_stale(user_id) else stored

    def update(self, user_id: str) -> UserProfile:
        """The next profile version from the previous one plus the facts of events that arrived since
        (the update prompt, not a rebuild). Without a previous version it is a full build; without new
        events the stored version is returned."""
        db, factbook = self.workspace.db, self.workspace.factbook
        previous = db.profiles.latest(user_id)
        if previous is None:
            return self.get(user_id)
        new_events = db.user_events(user_id, after_row=previous.event_watermark)
        if not new_events:
            return previous
        items = db.items({e.item_id for e in new_events})
        new_facts = build_facts(
            user_id, new_events, items, factbook.global_shares, generic_aspects=factbook.generic_aspects
        )
        return self._build(user_id, Update(previous, new_facts))

    def _build(self, user_id: str, update: Update | None) -> UserProfile:
        watermark = self.workspace.db.event_watermark(user_id)  # read first: later events keep it stale
        facts = self.workspace.factbook.facts(user_id)
        with on_behalf_of(user_id):
            profile = self.workspace.stages().profile(facts, update=update)
        return self.store(profile, facts, watermark)

    def store(self, profile: UserProfile, facts: UserFacts, watermark: int) -> UserProfile:
        """Save a profile built from `facts` as the user's next version, covering events up to row
        `watermark`, with its embedding. Returns it as stored (its version number assigned)."""
        edits = self.workspace.db.profiles.edits(profile.user_id)
        profile = self.workspace.db.profiles.save(
            obey_edits(profile, edits, facts).model_copy(
                update={"n_events": facts.n_events, "event_watermark": watermark}
            )
        )
        return self._embedded(profile)

    def _embedded(self, profile: UserProfile) -> UserProfile:
        """`profile`, its embedding written beside it, so that reading (recommend) never writes."""
        vector = self.workspace.embed([profile_text(profile)])[0]
        self.workspace.vectors.upsert_profile(profile.user_id, vector, {"version": profile.version})
        return profile

    def edit(self, user_id: str, request: EditRequest) -> EditResult:
        """Apply what the person stated (see `Tasteprint.edit_profile`). Every name is resolved before
        anything is stored; an unknown one raises and changes nothing."""
        ws = self.workspace
        db = ws.db
        titles = {i: item.title for i, item in db.items().items()}
        labels = ws.label_items()
        current = db.profiles.edits(user_id)
        undo = resolve_undo(request.undo, current, titles)
        made = statements(request, labels, titles)
        reading = None
        if request.says:
            with on_behalf_of(user_id):
                reading = read_statement(request.says, labels, titles, ws.stages().llm)
            made += [ProfileEdit(kind="note", text=request.says)] + reading_edits(reading)
        edits = apply_edits(current, made, undo)
        db.profiles.save_edits(user_id, edits)
        latest = db.profiles.latest(user_id)
        if latest is not None:  # a new version shows the edits (and `profile --diff` what changed)
            facts = ws.factbook.facts(user_id) if db.has_user(user_id) else stated_facts(user_id, [], {}, {})
            edited = obey_edits(latest, edits, facts).model_copy(
                update={"based_on": latest.version, "created_at": utcnow()}
            )
            latest = self._embedded(db.profiles.save(edited))  # dropped claims change its text
        elif not db.has_user(user_id):
            latest = self._embedded(db.profiles.save(stated_profile(user_id)))
        # With history and no profile yet, the edits wait in the store: the first build carries them.
        return EditResult(edits=edits, profile=latest, reading=reading)

    def history(self, user_id: str) -> list[UserProfile]:
        """Every stored version of the user's profile, oldest first."""
        return self.workspace.db.profiles.versions(user_id)

    def diff(self, user_id: str, old: int | None = None, new: int | None = None) -> ProfileDiff:
        """What changed between two versions (default: the last two)."""
        versions = {p.version: p for p in self.history(user_id)}
        if len(versions) < 2 and (old is None or new is None):
            raise TasteprintError(
                f"user {user_id!r} has {len(versions)} profile version(s); a diff needs two",
                hint="ingest new events, then run `tasteprint profile USER` to update",
            )
        new = new or max(versions)
        old = old or max(v for v in versions if v < new)
        for version in (old, new):
            if version not in versions:
                raise TasteprintError(f"user {user_id!r} has no profile version {version}")
        return profile_diff(versions[old], versions[new])

    def many(
        self, user_ids: Iterable[str], *, refresh: bool = False, progress: bool = True, threads: int = 1
    ) -> BatchResult:
        """Profile several users; each finished profile is stored at once, failures are reported, not raised.

        `threads` > 1 keeps that many users in flight on a thread pool: a hosted endpoint answers
        them in parallel, while the embedded model still decodes one request at a time.
        """
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        ids = [str(u) for u in user_ids]
        result = BatchResult()
        # Shared state is created here, once, rather than raced for by the workers.
        ws = self.workspace
        _ = (ws.backend, ws.vectors, ws.factbook.global_shares, ws.factbook.generic_aspects)
        with LoggedProgress(disable=not progress) as bar, ThreadPoolExecutor(threads) as pool:
            task = bar.add_task("profiling", total=len(ids))
            futures = {pool.submit(self._profile_one, user_id, refresh): user_id for user_id in ids}
            for future in as_completed(futures):
                user_id = futures[future]
                try:
                    profile, reused = future.result()
                except TasteprintError as exc:
                    result.failures[user_id] = str(exc)
                else:
                    result.profiles[user_id] = profile
                    if reused:
                        result.reused.append(user_id)
                bar.advance(task)
        result.profiles = {u: result.profiles[u] for u in ids if u in result.profiles}  # input order
        return result

    def _profile_one(self, user_id: str, refresh: bool) -> tuple[UserProfile, bool]:
        """One user's profile, and whether it is the stored version (not recomputed)."""
        stored = None if refresh else self.workspace.db.profiles.latest(user_id)
        profile = self.get(user_id, refresh=refresh)
        return profile, stored is not None and stored.version == profile.version
