"""Recommendations that obey what a person stated (their profile edits).

- `never`: the item is never served again.
- `not_interested` in a label: no served item carries it (it is excluded before ranking, so the list
  is filled from the rest of the person's taste, not left short).
- `more` of a label: items carrying it rise by the fit's `more_boost` (chosen on validation), and at
  least `more_floor(k)` of the top k carry it (3 of 10), or every unconsumed item with it when there
  are fewer; they come in the recommender's own order for this person, and they replace the lowest
  picks that carry no wanted label, so the person's other tastes keep the rest (see `wanted`).
- `liked` items join the history the recommender reads, so a person with none can still be served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tasteprint.models import ProfileEdit

from .recommender import Recommender
from .retrievers import Candidate
from .wanted import wanted_top


@dataclass
class Steering:
    """A person's edits, resolved against the catalogue's labels."""

    excluded: set[str] = field(default_factory=set)
    more: dict[str, set[str]] = field(default_factory=dict)
    liked: list[str] = field(default_factory=list)

    @classmethod
    def from_edits(cls, edits: Sequence[ProfileEdit], label_items: Mapping[str, set[str]]) -> Steering:
        steering = cls()
        for edit in edits:
            if edit.kind == "never" and edit.item_id:
                steering.excluded.add(edit.item_id)
            elif edit.kind == "not_interested" and edit.label:
                steering.excluded |= label_items.get(edit.label, set())
            elif edit.kind == "more" and edit.label:
                steering.more[edit.label] = set(label_items.get(edit.label, set()))
            elif edit.kind == "liked" and edit.item_id:
                steering.liked.append(edit.item_id)
        return steering

    def servable(self, label: str, consumed: set[str]) -> list[str]:
        """The items carrying a `more` label that may still be served (unconsumed, not excluded)."""
        return sorted(self.more[label] - consumed - self.excluded)

    def top(self, order: Sequence[str], k: int, consumed: set[str], boost: float = 0.0) -> list[str]:
        """The first `k` of `order` (best first) with items of each `more` label risen by `boost` and
        each label's floor met (see `wanted.wanted_top`)."""
        return wanted_top(order, {label: set(self.servable(label, consumed)) for label in self.more}, k, boost)


def with_wanted(
    recommender: Recommender,
    history: Sequence[str],
    candidates: list[Candidate],
    steering: Steering,
    k: int,
    consumed: set[str],
) -> list[Candidate]:
    """`candidates` plus, for each `more` label, its best `k` servable items for this history (in the
    recommender's order), so that `Steering.top` can meet the label's floor from them."""
    for label in steering.more:
        have = {c.item_id for c in candidates}
        pool = steering.servable(label, consumed)
        candidates = candidates + [
            c for c in recommender.recommend(history, n=k, candidates=pool) if c.item_id not in have
        ]
    return candidates
