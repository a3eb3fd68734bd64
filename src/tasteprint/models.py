"""Pydantic types at the seams of the pipeline: ingest -> facts -> profile -> recommend."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_serializer

if TYPE_CHECKING:
    from .config import Settings

FitTarget = Literal["both", "next", "random"]
EventKind = Literal["rating", "review", "tag", "view", "purchase", "search", "like"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]


class Event(BaseModel):
    """One thing a user did with an item (or a search query, whose text is the query)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1)
    item_id: str = Field(min_length=1)
    kind: EventKind
    timestamp: int = Field(description="seconds since the Unix epoch, UTC")
    rating: float | None = None
    text: str | None = None
    platform: str = "default"


class Item(BaseModel):
    """A catalogue entry. `attributes` maps an attribute name (genres, category, brand...) to values."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1)
    title: str = ""
    description: str = ""
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    platform: str = "default"

    @field_validator("attributes", mode="before")
    @classmethod
    def _values_as_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    def labels(self) -> set[str]:
        """Every attribute value of the item, the vocabulary profile claims are checked against."""
        return {v for values in self.attributes.values() for v in values if v}


class RejectedRecord(BaseModel):
    file: str
    line: int
    reason: str


class IngestReport(BaseModel):
    """What one ingest did. `duplicates` counts exact repeats, already stored or within the input."""

    accepted: int = Field(default=0, description="events stored")
    rejected: int = Field(default=0, description="records refused, each listed in `errors`")
    duplicates: int = 0
    items: int = Field(default=0, description="catalogue rows stored or updated")
    errors: list[RejectedRecord] = Field(default_factory=list)
    format: str = ""

    def reject(self, file: str, line: int, reason: str) -> None:
        self.rejected += 1
        self.errors.append(RejectedRecord(file=file, line=line, reason=reason))

    def rejected_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for error in self.errors:
            key = error.reason.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        return counts


class LinkReport(BaseModel):
    """What linking accounts to people did."""

    links: int = 0
    events_moved: int = 0
    errors: list[RejectedRecord] = Field(default_factory=list)


class ItemRef(BaseModel):
    """An item as facts cite it: id, title, and what the user did with it."""

    item_id: str
    title: str
    rating: float | None = None
    timestamp: int = 0
    labels: list[str] = Field(default_factory=list)


class AttributeStat(BaseModel):
    """How often an attribute value appears in a user's history and how the user rated it."""

    label: str
    attribute: str
    count: int
    share: float = Field(description="fraction of the user's items carrying the label")
    mean_rating: float | None = None
    lift: float = Field(description="share in the user's history / share in the whole catalogue's events")
    item_ids: list[str] = Field(description="the user's items with this label, best rated first")


class AspectStat(BaseModel):
    """A phrase the user wrote about some of their items, and how they wrote it."""

    phrase: str = Field(description="lower-case lemma form, as it occurs in their text")
    stance: Literal["praised", "criticised"]
    item_ids: list[str]
    quote: str = Field(description="the clause it was written in (redacted, bounded)")


class UserFacts(BaseModel):
    """Deterministic evidence about one user, computed from data. Ground truth for verification."""

    user_id: str
    n_events: int
    n_items: int
    kinds: dict[str, int]
    platforms: list[str]
    first_timestamp: int
    last_timestamp: int
    rating_mean: float | None = None
    rating_histogram: dict[str, int] = Field(default_factory=dict)
    top_attributes: list[AttributeStat] = Field(default_factory=list)
    loved: list[ItemRef] = Field(default_factory=list)
    disliked: list[ItemRef] = Field(default_factory=list)
    recent: list[ItemRef] = Field(default_factory=list)
    recent_shift: dict[str, float] = Field(
        default_factory=dict, description="label -> share in recent items minus share overall"
    )
    snippets: list[str] = Field(default_factory=list, description="bounded excerpts of the user's own text")
    aspects: list[AspectStat] = Field(default_factory=list, description="what they praised or criticised, in words")
    dominant: list[AttributeStat] = Field(
        default_factory=list, description="labels on at least DOMINANT_SHARE of their items: what they mostly consume"
    )
    mined_labels: list[str] = Field(
        default_factory=list, description="labels of their items mined from everyone's reviews, not catalogue data"
    )
    item_texts: dict[str, list[str]] = Field(
        default_factory=dict, description="item id -> what the user wrote about it (redacted): ground truth of aspects"
    )
    context: dict[str, str] = Field(default_factory=dict)
    history_item_ids: list[str] = Field(default_factory=list)
    item_labels: dict[str, list[str]] = Field(
        default_factory=dict, description="item id -> labels (attributes plus the user's own tags)"
    )
    item_titles: dict[str, str] = Field(default_factory=dict)
    item_ratings: dict[str, float] = Field(default_factory=dict)
    item_platforms: dict[str, str] = Field(default_factory=dict)
    item_timestamps: dict[str, int] = Field(default_factory=dict, description="item id -> last event time")


class Interest(BaseModel):
    label: str
    weight: float = Field(ge=0, le=1)
    evidence: list[str]
    platforms: list[str] = Field(default_factory=list)
    quote: str | None = Field(default=None, description="for an aspect in their own words: the clause they wrote")


class Dislike(BaseModel):
    label: str
    evidence: list[str]
    quote: str | None = None


class VerificationStats(BaseModel):
    """What claim verification kept and dropped for one profile."""

    interests_proposed: int = Field(default=0, description="interest claims in the model's draft")
    interests_kept: int = Field(default=0, description="of those, the ones the data backs")
    dislikes_proposed: int = 0
    dislikes_kept: int = 0
    evidence_proposed: int = Field(default=0, description="history items the draft cited as evidence")
    evidence_dropped: int = Field(
        default=0, description="cited items not in the history, not carrying the label, or rated against the claim"
    )
    summary_replaced: bool = Field(default=False, description="the written summary failed its checks")
    aspects_proposed: int = Field(default=0, description="claims naming a phrase from the user's own text")
    aspects_kept: int = 0
    omissions_repaired: int = Field(default=0, description="dominant labels no claim named, added from data")
    reasons: list[str] = Field(default_factory=list)

    @property
    def claims_proposed(self) -> int:
        return self.interests_proposed + self.dislikes_proposed

    @property
    def claims_dropped(self) -> int:
        return self.claims_proposed - self.interests_kept - self.dislikes_kept


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


EditKind = Literal["not_interested", "more", "never", "liked", "note"]


class ProfileEdit(BaseModel):
    """One thing a person stated about their profile (or an operator on their behalf). It outlives every
    rebuild: the profile and the recommendations obey it until it is undone.

    Kinds: `not_interested` and `more` name a `label`; `never` and `liked` name an `item_id`; `note`
    keeps free `text` (what a person said, from which the other kinds may be read)."""

    kind: EditKind
    label: str | None = None
    item_id: str | None = None
    text: str | None = Field(default=None, max_length=2000)
    source: Literal["user"] = "user"
    at: datetime = Field(default_factory=utcnow)

    @model_serializer(mode="wrap")
    def _only_what_it_names(self, handler):
        # {"kind", "label" | "item_id" | "text", "source", "at"}: the fields a kind does not use are left out.
        return {key: value for key, value in handler(self).items() if value is not None}

    @property
    def target(self) -> str:
        """What the edit names: its label, item id or text."""
        return self.label or self.item_id or self.text or ""

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')}: {self.target}"


class UserProfile(BaseModel):
    """A structured, verified profile. Every interest and dislike cites items from the user's history."""

    user_id: str
    version: int = 1
    summary: str = Field(max_length=400)
    interests: list[Interest]
    dislikes: list[Dislike]
    context: dict[str, str]
    sources: list[str]
    model: str
    prompt: str = Field(description="name of the prompt template that built this version")
    created_at: datetime = Field(default_factory=utcnow)
    verification: VerificationStats
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    based_on: int | None = Field(default=None, description="the version this one updated, None for a full build")
    n_events: int = Field(default=0, description="events the profile covers")
    event_watermark: int = Field(default=0, description="the store's last event row this version saw")
    edits: list[ProfileEdit] = Field(
        default_factory=list, description="what the person stated, oldest first; kept through every rebuild"
    )


class ProfileDiff(BaseModel):
    """What changed between two versions of a profile."""

    user_id: str
    old_version: int
    new_version: int
    added: list[str] = Field(default_factory=list, description="interest labels new in the later version")
    dropped: list[str] = Field(default_factory=list, description="interest labels gone from the later version")
    reweighted: dict[str, tuple[float, float]] = Field(default_factory=dict, description="label -> (old, new)")
    dislikes_added: list[str] = Field(default_factory=list)
    dislikes_dropped: list[str] = Field(default_factory=list)
    summary_changed: bool = False
    new_events: int = 0
    edits_added: list[str] = Field(default_factory=list, description="edits new in the later version, described")
    edits_removed: list[str] = Field(default_factory=list, description="edits undone since the earlier version")

    @property
    def changed(self) -> bool:
        return bool(
            self.added
            or self.dropped
            or self.reweighted
            or self.dislikes_added
            or self.dislikes_dropped
            or self.edits_added
            or self.edits_removed
        )


class Recommendation(BaseModel):
    item_id: str
    title: str
    score: float
    explanation: str
    evidence: list[str] = Field(description="ids of items in the user's history the explanation cites")
    explanation_source: Literal["llm", "template"] = Field(
        default="template", description="who wrote the sentence: the model (verified) or the data-backed template"
    )
    sources: dict[str, float] = Field(default_factory=dict, description="retrieval scores by retriever")


class Explanation(BaseModel):
    """Why an item fits a user: the nearest history items and shared labels, and a sentence citing them."""

    user_id: str
    item_id: str
    title: str
    evidence: list[str] = Field(description="ids of the user's items the sentence cites")
    shared_labels: list[str]
    sentence: str
    grounded: bool = Field(description="the sentence cites at least one history item and nothing else")
    by_llm: bool = Field(description="the sentence was written by the model (else built from the evidence)")

    @computed_field
    @property
    def explanation_source(self) -> Literal["llm", "template"]:
        return "llm" if self.by_llm else "template"


class FitConfig(BaseModel):
    """How a recommender is fitted; every choice the data makes is recorded in the `FitReport`."""

    target: FitTarget = Field(
        default="both",
        description="validation target: each sampled user's last 3 items, each predicted from what came before "
        "it (next), a random fifth of their items (random), or both: the best next-item NDCG among settings "
        "that keep 97% of plain EASE's on the random fifth (one list for what comes next and long-term taste)",
    )
    ease_max_items: int = Field(
        default=12_000, description="above this many items with 2+ interactions, ALS replaces EASE"
    )
    neighbours: int = 100
    factors: int = 64
    validation_users: int = 600
    ranker: Literal["auto", "fusion", "lambdamart"] = "auto"
    validation_candidates: int | None = Field(
        default=None, description="rank each target among this many sampled items (target + random unseen), not all"
    )
    seed: int = 42

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> FitConfig:
        """The fit `settings` ask for (target, EASE's item limit, seed), with `overrides` on top."""
        chosen = {"target": settings.fit_target, "ease_max_items": settings.ease_max_items, "seed": settings.seed}
        return cls(**(chosen | overrides))


class FitReport(BaseModel):
    """What a fit saw, chose and measured."""

    data_version: int = 0
    users: int
    items: int
    interactions: int
    target: str
    retrievers: list[str]
    ease_lambda: float | None = Field(default=None, description="EASE's L2 penalty, when EASE is the main retriever")
    label_weights: dict[str, float] = Field(
        default_factory=dict, description="weight of the item-label rows per retriever, chosen on validation (0: none)"
    )
    half_life: float | None
    plain_mix: float
    ranker: str
    fusion_weights: dict[str, float]
    validation: dict[str, float] = Field(description="NDCG@10 on held-out validation users, by candidate stage")
    validation_users: int
    rerank_blend: float | None = None
    rerank_gain: dict[str, float] | None = Field(default=None, description="NDCG@10 gain of the chosen blend, ±CI")
    more_boost: float = Field(
        default=0.0, description="how strongly items of a label asked more of rise beyond the floor (validation)"
    )
    seconds: float
    peak_rss_mb: float


class StoreCheck(BaseModel):
    """What `tasteprint check` found in a store."""

    database: str = Field(description='SQLite\'s integrity check: "ok" or the first problem')
    data_version: int = 0
    fit_current: bool | None = Field(default=None, description="the saved fit matches the data (None: never fitted)")
    items: int = 0
    items_embedded: int = Field(default=0, description="catalogue items in the vector store")

    @property
    def damaged(self) -> bool:
        return self.database != "ok"
