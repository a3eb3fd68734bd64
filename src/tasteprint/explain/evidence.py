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


class HistoryLabels:
    """A user's (not disliked) history items with their labels as a 0/1 matrix and their ratings: the
    part of `CitableHistory` that depends on the facts alone, so a caller may keep it per user state
    (building it took 2 ms for a history of 2,200 items)."""

    def __init__(self, facts: UserFacts):
        self.ids = positive_history(facts)
        self.id_array = np.array(self.ids, dtype=str)
        columns: dict[str, int] = {}
        cells = [
            (row, columns.setdefault(label, len(columns)))
            for row, i in enumerate(self.ids)
            for label in set(facts.item_labels.get(i, []))
        ]
        self.label_columns = columns  # history items x their labels, 1 where an item carries one
        self.carries = np.zeros((len(self.ids), len(columns)), dtype=np.int32)
        if cells:
            rows, label_columns = zip(*cells)
            self.carries[list(rows), list(label_columns)] = 1
        self.ratings = np.array([facts.item_ratings.get(i, 0.0) for i in self.ids], dtype=np.float64)


class CitableHistory:
    """A user's (not disliked) history items as `nearest_history` compares candidates with them: their
    labels and ratings (`labels`, built from `facts` unless given) and the embeddings as one matrix
    (rows of zeros for items without one), built once per list of candidates."""

    def __init__(self, facts: UserFacts, vectors: Mapping[str, np.ndarray], labels: HistoryLabels | None = None):
        labels = labels or HistoryLabels(facts)
        self.ids, self.id_array, self.ratings = labels.ids, labels.id_array, labels.ratings
        self.label_columns, self.carries = labels.label_columns, labels.carries
        dimension = len(next(iter(vectors.values()))) if vectors else 0
        none = np.zeros(dimension, dtype=np.float32)
        rows_of_vectors = [vectors.get(i, none) for i in self.ids]
        self.matrix = np.array(rows_of_vectors, dtype=np.float32).reshape(len(self.ids), dimension)


def nearest_history(
    candidate_vector: np.ndarray | None,
    history: CitableHistory,
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
    columns = [history.label_columns[label] for label in labels if label in history.label_columns]
    shared = history.carries[:, columns].sum(axis=1)
    cosines = np.zeros(len(history.ids))
    if candidate_vector is not None and history.matrix.shape[1]:
        cosines = (history.matrix @ candidate_vector).astype(np.float64)
    keep = np.flatnonzero((shared > 0) | (cosines >= CITE_MIN_COSINE))
    if len(keep):  # best first: most labels shared, then cosine plus a touch of rating, then item id
        scores = cosines[keep] + 0.01 * history.ratings[keep]
        if len(keep) > SORT_ALL_MAX:
            keep, scores = _contenders(keep, scores, shared[keep], n)
        order = np.lexsort((history.id_array[keep], scores, shared[keep]))[::-1][:n]
        return [history.ids[keep[r]] for r in order]
    if together:
        # One item only: the sentence states its count, and "both" must not be ambiguous.
        pairs = zip(history.ids, history.ratings)
        best = max(((together.get(i, 0), float(rating), i) for i, rating in pairs), default=None)
        return [best[2]] if best and best[0] >= CO_LIKED_MIN else []
    return []


SORT_ALL_MAX = 64  # kept items sorted whole; above it only those that can be among the best n


def _contenders(keep: np.ndarray, scores: np.ndarray, shared: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The kept items (and their scores) that can be among the best `n` by (shared, score): those
    sharing more labels than the n-th best, and of those sharing as many, the ones scoring at least
    what the last place needs, ties included, so the full sort's order survives. Sorting 1,500 kept
    items with their ids took 30 us a candidate."""
    floor = np.partition(shared, -n)[-n]
    ahead, level = shared > floor, shared == floor
    places = n - int(ahead.sum())  # at least 1: fewer than n share more than the n-th best
    cut = np.partition(scores[level], -places)[-places]
    within = ahead | (level & (scores >= cut))
    return keep[within], scores[within]


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
