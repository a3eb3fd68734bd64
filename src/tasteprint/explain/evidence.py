"""Evidence for a recommendation: which of the user's own items may explain it, the facts computed
about the pair (shared labels, the user's rating, how many people liked both, the release year), and
the deterministic sentence built from those facts alone."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from tasteprint.models import Item, UserFacts
from tasteprint.profile.facts import DISLIKED_MAX

EVIDENCE_PER_CANDIDATE = 3
CITE_MIN_COSINE = 0.6  # text similarity that stands for "alike" when no label is shared
CO_LIKED_MIN = 2  # fewer people than this is an anecdote, not a figure worth stating


class PickFacts(BaseModel):
    """What the data says about one recommended item and the history item it cites: the only facts a
    reason for it may state."""

    item_id: str
    title: str
    year: int | None = None
    labels: list[str] = Field(default_factory=list)
    cited_id: str | None = None
    cited_title: str | None = None
    cited_rating: float | None = None
    liked: bool = Field(default=False, description="the user rated the cited item above their own mean")
    shared_labels: list[str] = Field(default_factory=list)
    co_liked: int | None = Field(default=None, description="other people who liked the cited item and this one")

    def numbers(self) -> set[str]:
        """Every number a reason may state: the rating (and the scale), the year, the co-liked count."""
        shown = {"5"} if self.cited_rating is not None else set()
        for value in (self.cited_rating, self.year, self.co_liked):
            if value is not None:
                shown |= {f"{value:g}", f"{float(value):.1f}"}
        return shown


def positive_history(facts: UserFacts) -> list[str]:
    """History items that may explain a recommendation: everything not rated as disliked."""
    return [i for i in facts.history_item_ids if facts.item_ratings.get(i, 5.0) > DISLIKED_MAX]


def nearest_history(
    candidate_vector: np.ndarray | None,
    history_vectors: dict[str, np.ndarray],
    facts: UserFacts,
    item: Item | None,
    n: int = EVIDENCE_PER_CANDIDATE,
    together: Mapping[str, int] | None = None,
) -> list[str]:
    """The user's (not disliked) items that share something real with a candidate: labels first (most
    shared, then cosine of embeddings, then rating); without a shared label an item whose text
    embedding is close (cosine >= CITE_MIN_COSINE); failing both, the one item most people consumed
    together with the candidate (`together`: history item -> how many, at least CO_LIKED_MIN). Never a
    mere word of the title in common."""
    labels = item.labels() if item else set()
    scored = []
    positive = positive_history(facts)
    for item_id in positive:
        shared = len(labels & set(facts.item_labels.get(item_id, [])))
        vector = history_vectors.get(item_id)
        cosine = float(candidate_vector @ vector) if candidate_vector is not None and vector is not None else 0.0
        if shared or cosine >= CITE_MIN_COSINE:
            scored.append((shared, cosine + 0.01 * facts.item_ratings.get(item_id, 0), item_id))
    if not scored and together:
        # One item only: the sentence states its count, and "both" must not be ambiguous.
        best = max(((together.get(i, 0), facts.item_ratings.get(i, 0), i) for i in positive), default=None)
        scored = [best] if best and best[0] >= CO_LIKED_MIN else []
    scored.sort(reverse=True)
    return [item_id for _, _, item_id in scored[:n]]


def rated_above_mean(facts: UserFacts, rating: float | None) -> bool:
    """Whether a rating says "liked" for this user: above their own mean, not just above the middle."""
    return rating is not None and facts.rating_mean is not None and rating > facts.rating_mean


def explanation_text(
    facts: UserFacts, item: Item | None, cited: list[str], together: Mapping[str, int] | None = None
) -> str:
    """A plain sentence from verified evidence, every phrase backed by data: which of the user's items it
    resembles, "liked" only for items rated above the user's own mean, and the labels both carry; when
    they share none and one item is cited, how many other people consumed both (from `together`)."""
    liked, chosen = [], []
    for item_id in cited[:2]:
        rating = facts.item_ratings.get(item_id)
        title = facts.item_titles.get(item_id, item_id)
        above_mean = rated_above_mean(facts, rating)
        (liked if above_mean else chosen).append(f"{title} (you rated it {rating:g})" if above_mean else title)
    clauses = []
    if liked:
        clauses.append("you liked " + " and ".join(liked))
    if chosen:
        clauses.append("you chose " + " and ".join(chosen))
    labels = item.labels() if item else set()
    if not clauses:
        return _uncited_text(facts, labels)
    shared = sorted(labels & {label for i in cited for label in facts.item_labels.get(i, [])})
    text = "Because " + " and ".join(clauses)
    if shared:
        text += f"; both are {', '.join(shared[:3])}"
    elif len(cited) == 1 and (count := (together or {}).get(cited[0], 0)) >= CO_LIKED_MIN:
        text += f"; {count} other people chose both"
    return text + "."


def _uncited_text(facts: UserFacts, labels: set[str]) -> str:
    """For a pick no history item can explain: the pick's label most of the user's items carry, with
    the count, or plainly that it shares none (never a reason nothing was computed for)."""
    history = facts.history_item_ids
    counts = {label: sum(label in facts.item_labels.get(i, []) for i in history) for label in labels}
    if not any(counts.values()):
        return "Ranked by the fitted recommender; it shares no label with your history."
    label = min(counts, key=lambda name: (-counts[name], name))  # most of their items, then by name
    return f"It is {label}, like {counts[label]} of your {len(history)} items."


def release_year(item: Item) -> int | None:
    """The item's year: a `year` attribute, else a "(1995)" at the end of its title (MovieLens style)."""
    for value in item.attributes.get("year", []):
        if value.isdigit():
            return int(value)
    found = re.search(r"\((\d{4})\)\s*$", item.title)
    return int(found.group(1)) if found else None


def pick_facts(
    facts: UserFacts, item: Item, cited: str | None, co_liked: int | None, label_shares: dict[str, float]
) -> PickFacts:
    """The facts about recommending `item` to the user with `cited` (a history item) as its evidence.
    Shared labels come rarest first (by `label_shares`, each label's share of all events): the most
    telling first."""
    cited_labels = set(facts.item_labels.get(cited, [])) if cited else set()
    rating = facts.item_ratings.get(cited) if cited else None
    return PickFacts(
        item_id=item.item_id,
        title=item.title or item.item_id,
        year=release_year(item),
        labels=sorted(item.labels())[:6],
        cited_id=cited,
        cited_title=facts.item_titles.get(cited, cited) if cited else None,
        cited_rating=rating,
        liked=rated_above_mean(facts, rating),
        shared_labels=sorted(item.labels() & cited_labels, key=lambda label: (label_shares.get(label, 0.0), label)),
        co_liked=co_liked if co_liked is not None and co_liked >= CO_LIKED_MIN else None,
    )
