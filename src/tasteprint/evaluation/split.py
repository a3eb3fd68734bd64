"""Evaluation splits. No test item is ever in the part used for profiles, facts or training.

Events arrive in time order with ties in file order (the store's documented order); a user's items
are ordered by their latest event, so leave-last-out holds out the item consumed last in that order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tasteprint.config import COLD_START_MAX
from tasteprint.models import Event
from tasteprint.recommend.retrievers import ordered_history

MIN_LOO_INTERACTIONS = 5


@dataclass
class Split:
    """Per-user events for fitting, the held-out test item ids, and the validation item's events.

    `train` never holds a validation or test item's events. For the test, the validation item is
    known history: `history_for_test` adds it back.
    """

    train: dict[str, list[Event]]
    test: dict[str, set[str]] = field(default_factory=dict)
    valid_events: dict[str, list[Event]] = field(default_factory=dict)

    def history_for_test(self, user_id: str) -> list[Event]:
        return self.train[user_id] + self.valid_events.get(user_id, [])

    def evaluated_users(self) -> list[str]:
        return sorted(self.test)


def by_user(events: Iterable[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event.kind != "search":
            grouped[event.user_id].append(event)
    for user_events in grouped.values():
        user_events.sort(key=lambda e: e.timestamp)  # stable: equal timestamps keep file order
    return dict(grouped)


def leave_last_out(events: Iterable[Event], min_interactions: int = MIN_LOO_INTERACTIONS) -> Split:
    """Temporal leave-last-out: last item = test, second-last = validation. Users with fewer than
    `min_interactions` distinct items stay in training only."""
    split = Split(train={})
    for user_id, user_events in by_user(events).items():
        order = ordered_history(user_events)
        if len(order) < min_interactions:
            split.train[user_id] = user_events
            continue
        valid_item, test_item = order[-2], order[-1]
        split.train[user_id] = [e for e in user_events if e.item_id not in (valid_item, test_item)]
        split.valid_events[user_id] = [e for e in user_events if e.item_id == valid_item]
        split.test[user_id] = {test_item}
    return split


def random_split(events: Iterable[Event], ratio: float = 0.75, seed: int = 42) -> Split:
    """Per-user random split of items: `ratio` of each user's items to training, the rest to test
    (Microsoft Recommenders' MovieLens protocol). Users with fewer than 2 items stay in training."""
    rng = random.Random(seed)
    split = Split(train={})
    for user_id in sorted(grouped := by_user(events)):
        user_events = grouped[user_id]
        items = sorted({e.item_id for e in user_events})
        if len(items) < 2:
            split.train[user_id] = user_events
            continue
        rng.shuffle(items)
        cut = max(1, min(len(items) - 1, round(len(items) * ratio)))
        held_out = set(items[cut:])
        split.train[user_id] = [e for e in user_events if e.item_id not in held_out]
        split.test[user_id] = held_out
    return split


def cold_start(split: Split, max_history: int = COLD_START_MAX) -> Split:
    """Simulated cold start: each test user's history is cut to its `max_history` most recent items
    (MovieLens has no naturally cold users); other users keep their training events."""
    cold = Split(train=dict(split.train))
    for user_id, test_items in split.test.items():
        history = split.history_for_test(user_id)
        keep = set(ordered_history(history)[-max_history:])
        cold.train[user_id] = [e for e in history if e.item_id in keep]
        cold.test[user_id] = test_items
    return cold
