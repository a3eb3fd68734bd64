"""Deterministic evidence per user, computed from data. It is the LLM's input and the ground truth
that every profile claim is checked against."""

from __future__ import annotations

import statistics
import threading
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tasteprint.errors import UnknownUserError
from tasteprint.ingest.aspects import ASPECT_ATTRIBUTE, MAX_TEXT_CHARS, mine, own_verdict, stance
from tasteprint.llm.privacy import redact
from tasteprint.models import AspectStat, AttributeStat, Event, Item, ItemRef, UserFacts
from tasteprint.storage.sqlite import Database

MAX_ATTRIBUTES = 12
MAX_ITEMS_PER_LIST = 10
MAX_EVIDENCE_PER_LABEL = 6
MAX_SNIPPETS = 8
SNIPPET_CHARS = 200
TITLE_CHARS = 150
MAX_LABEL_CHARS = 60
SHIFT_THRESHOLD = 0.15
DOMINANT_SHARE = 0.3  # a label on this share of someone's items is what they mostly consume
MAX_ASPECTS = 10
# Amazon and MovieLens rate 1-5 (MovieLens latest 0.5-5): these bounds read "loved" and "disliked".
LOVED_MIN = 4.0
DISLIKED_MAX = 2.0
FACTS_CACHED = 4096  # users whose facts `FactBook` keeps (a served store answers its active users from memory)


@dataclass
class _ItemHistory:
    item_id: str
    platform: str
    last_timestamp: int = 0
    rating: float | None = None
    texts: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _histories(events: list[Event]) -> dict[str, _ItemHistory]:
    histories: dict[str, _ItemHistory] = {}
    for event in sorted(events, key=lambda e: e.timestamp):
        history = histories.setdefault(event.item_id, _ItemHistory(event.item_id, event.platform))
        history.last_timestamp = max(history.last_timestamp, event.timestamp)
        if event.rating is not None:
            history.rating = event.rating
        if event.text:
            # Identifiers never reach a prompt or a stored profile, whichever model is used.
            (history.tags if event.kind == "tag" else history.texts).append(redact(event.text))
    return histories


def _ref(history: _ItemHistory, item: Item | None, labels: list[str]) -> ItemRef:
    return ItemRef(
        item_id=history.item_id,
        title=_short(item.title if item and item.title else history.item_id, TITLE_CHARS),
        rating=history.rating,
        timestamp=history.last_timestamp,
        labels=labels,
    )


def build_facts(
    user_id: str,
    events: list[Event],
    items: dict[str, Item],
    global_shares: dict[str, float],
    generic_aspects: set[str] = frozenset(),
) -> UserFacts:
    """Compute a user's facts from their events and the catalogue.

    Args:
        user_id: the user.
        events: the user's events (for evaluation: the training part only).
        items: catalogue rows for at least the user's items.
        global_shares: label -> share of all events, the baseline for lift.
        generic_aspects: phrases too common in the catalogue's reviews to say anything about a person.

    Raises:
        UnknownUserError: when `events` is empty.
    """
    if not events:
        raise UnknownUserError(user_id)
    histories = _histories(events)
    labels_of, attribute_of = _item_labels(histories, items)

    ratings = [h.rating for h in histories.values() if h.rating is not None]
    rating_mean = round(statistics.fmean(ratings), 3) if ratings else None
    n_items = len(histories)
    every_attribute = _attribute_stats(histories, labels_of, attribute_of, global_shares, n_items)
    top_attributes = _top_attributes(every_attribute, histories)
    dominant = sorted((a for a in every_attribute if a.share >= DOMINANT_SHARE), key=lambda a: (-a.share, a.label))
    loved, disliked, recent = _item_lists(histories)
    shift = _recent_shift(histories, labels_of, {a.label for a in top_attributes})
    facts = UserFacts(
        user_id=user_id,
        n_events=len(events),
        n_items=n_items,
        kinds=dict(Counter(e.kind for e in events)),
        platforms=sorted({e.platform for e in events}),
        first_timestamp=min(e.timestamp for e in events),
        last_timestamp=max(e.timestamp for e in events),
        rating_mean=rating_mean,
        rating_histogram=dict(sorted(Counter(f"{r:g}" for r in ratings).items())),
        top_attributes=top_attributes,
        loved=[_ref(h, items.get(h.item_id), labels_of[h.item_id]) for h in loved],
        disliked=[_ref(h, items.get(h.item_id), labels_of[h.item_id]) for h in disliked],
        recent=[_ref(h, items.get(h.item_id), labels_of[h.item_id]) for h in recent],
        recent_shift=shift,
        snippets=_snippets(histories),
        aspects=_aspects(histories, rating_mean, generic_aspects),
        dominant=dominant,
        mined_labels=sorted(label for label, name in attribute_of.items() if name == ASPECT_ATTRIBUTE),
        item_texts={i: [t[:MAX_TEXT_CHARS] for t in h.texts] for i, h in histories.items() if h.texts},
        history_item_ids=sorted(histories),
        item_labels=labels_of,
        item_titles={i: _short(items[i].title if i in items and items[i].title else i, TITLE_CHARS) for i in histories},
        item_ratings={i: h.rating for i, h in histories.items() if h.rating is not None},
        item_platforms={i: h.platform for i, h in histories.items()},
        item_timestamps={i: h.last_timestamp for i, h in histories.items()},
    )
    facts.context = describe_context(facts, items)
    return facts


def _item_labels(
    histories: dict[str, _ItemHistory], items: dict[str, Item]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each history item's labels (catalogue values, then the user's own short tags), and which
    attribute each label belongs to."""
    labels_of: dict[str, list[str]] = {}
    attribute_of: dict[str, str] = {}
    for item_id, history in histories.items():
        item = items.get(item_id)
        labels: list[str] = []
        if item:
            for name, values in item.attributes.items():
                for value in values:
                    attribute_of.setdefault(value, name)
                    labels.append(value)
        for tag in history.tags:
            if len(tag) > MAX_LABEL_CHARS:  # a pasted paragraph is text, not a label; it stays a snippet
                continue
            attribute_of.setdefault(tag, "tag")
            labels.append(tag)
        labels_of[item_id] = list(dict.fromkeys(labels))
    return labels_of, attribute_of


def _item_lists(
    histories: dict[str, _ItemHistory],
) -> tuple[list[_ItemHistory], list[_ItemHistory], list[_ItemHistory]]:
    """Loved (best rated first), disliked (worst first) and most recent items, each capped."""
    ordered = sorted(histories.values(), key=lambda h: (-(h.rating or 0), -h.last_timestamp, h.item_id))
    loved = [h for h in ordered if h.rating is None or h.rating >= LOVED_MIN]
    disliked = [h for h in reversed(ordered) if h.rating is not None and h.rating <= DISLIKED_MAX]
    recent = sorted(histories.values(), key=lambda h: (-h.last_timestamp, h.item_id))
    return loved[:MAX_ITEMS_PER_LIST], disliked[:MAX_ITEMS_PER_LIST], recent[:MAX_ITEMS_PER_LIST]


def _attribute_stats(histories, labels_of, attribute_of, global_shares, n_items) -> list[AttributeStat]:
    members: dict[str, list[_ItemHistory]] = defaultdict(list)
    for item_id, labels in labels_of.items():
        for label in labels:
            members[label].append(histories[item_id])
    stats = []
    for label, group in members.items():
        rated = [h.rating for h in group if h.rating is not None]
        share = len(group) / n_items
        baseline = global_shares.get(label)
        stats.append(
            AttributeStat(
                label=label,
                attribute=attribute_of[label],
                count=len(group),
                share=round(share, 4),
                mean_rating=round(statistics.fmean(rated), 3) if rated else None,
                lift=round(share / baseline, 3) if baseline else 1.0,
                item_ids=[h.item_id for h in sorted(group, key=lambda h: (-(h.rating or 0), -h.last_timestamp))][
                    :MAX_EVIDENCE_PER_LABEL
                ],
            )
        )
    # Rank by how much of the history carries the label, weighted by how well it was rated.
    stats.sort(key=lambda s: (-s.count * ((s.mean_rating or 3.5) / 5), s.label))
    return stats


def _top_attributes(stats: list[AttributeStat], histories: dict[str, _ItemHistory]) -> list[AttributeStat]:
    platforms = sorted({h.platform for h in histories.values()})
    if len(platforms) == 1:
        return stats[:MAX_ATTRIBUTES]
    # A merged person: take labels from each platform in turn, so a small platform is not crowded out.
    ranked = [[s for s in stats if any(histories[i].platform == p for i in s.item_ids)] for p in platforms]
    chosen: list[AttributeStat] = []
    for turn in range(MAX_ATTRIBUTES):
        for queue in ranked:
            if turn < len(queue) and queue[turn] not in chosen and len(chosen) < MAX_ATTRIBUTES:
                chosen.append(queue[turn])
    return chosen


def _recent_shift(histories, labels_of, labels: set[str]) -> dict[str, float]:
    ordered = sorted(histories.values(), key=lambda h: h.last_timestamp)
    window = max(5, len(ordered) // 5)
    if len(ordered) < 2 * window:
        return {}
    recent = ordered[-window:]

    def share(group, label):
        return sum(label in labels_of[h.item_id] for h in group) / len(group)

    shift = {label: round(share(recent, label) - share(ordered, label), 3) for label in labels}
    # Ties broken by label: the order reaches the prompt, and set order changes between processes.
    return {k: v for k, v in sorted(shift.items(), key=lambda kv: (-abs(kv[1]), kv[0])) if abs(v) >= SHIFT_THRESHOLD}


def rating_allows(sign: int, rating: float | None, mean: float | None) -> bool:
    """Whether a person's rating of an item allows a stance on it: no complaint (-1) that stands for a
    dislike on an item rated at or above their own mean, no praise (+1) on one rated a star or more
    below it."""
    if rating is None or mean is None:
        return True
    return rating < mean if sign < 0 else rating > mean - 1


def _aspects(histories: dict[str, _ItemHistory], rating_mean: float | None, generic: set[str]) -> list[AspectStat]:
    """Phrases from the user's own reviews, each with the stance most of its mentions take (praised or
    criticised), the items it was written about and the first clause that says so; most items first.
    A mention counts only as its writer's own verdict, and only where their rating allows it."""
    votes: dict[str, dict[int, list[tuple[str, str]]]] = {}
    for history in sorted(histories.values(), key=lambda h: -h.last_timestamp):
        for text in history.texts:
            for mention in mine(text):
                sign = stance(mention, history.rating, rating_mean)
                if not sign or mention.phrase in generic or not own_verdict(mention.clause):
                    continue  # a hedge or someone else's words is not the writer's verdict
                if rating_allows(sign, history.rating, rating_mean):
                    votes.setdefault(mention.phrase, {1: [], -1: []})[sign].append((history.item_id, mention.clause))
    found = []
    for phrase, by_sign in votes.items():
        sign = 1 if len(by_sign[1]) >= len(by_sign[-1]) else -1
        items = list(dict.fromkeys(i for i, _ in by_sign[sign]))
        found.append(
            AspectStat(
                phrase=phrase,
                stance="praised" if sign > 0 else "criticised",
                item_ids=items,
                quote=_short(by_sign[sign][0][1], SNIPPET_CHARS),
            )
        )
    found.sort(key=lambda a: -len(a.item_ids))  # stable: ties keep the most recent first
    return found[:MAX_ASPECTS]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _snippets(histories: dict[str, _ItemHistory]) -> list[str]:
    texts: list[tuple[int, str]] = []
    for history in histories.values():
        for text in history.texts + history.tags:
            texts.append((history.last_timestamp, text))
    texts.sort(key=lambda t: -t[0])
    snippets = []
    for _, text in texts:
        snippet = _short(text, SNIPPET_CHARS)
        if snippet not in snippets:
            snippets.append(snippet)
        if len(snippets) == MAX_SNIPPETS:
            break
    return snippets


def describe_context(facts: UserFacts, items: dict[str, Item]) -> dict[str, str]:
    """Plain-language context computed from the facts: activity, rating style, era, shift, brand loyalty."""
    context: dict[str, str] = {}
    first = datetime.fromtimestamp(facts.first_timestamp, timezone.utc).date()
    last = datetime.fromtimestamp(facts.last_timestamp, timezone.utc).date()
    context["activity"] = f"{facts.n_events} events on {facts.n_items} items from {first} to {last}"
    if facts.rating_mean is not None:
        style = "generous" if facts.rating_mean >= 4.0 else "critical" if facts.rating_mean < 3.0 else "balanced"
        context["rating_style"] = f"{style} rater (mean {facts.rating_mean:.2f})"
    decades = Counter(
        d for i in facts.history_item_ids for d in (items[i].attributes.get("decade", []) if i in items else [])
    )
    if decades:
        total = sum(decades.values())
        recent_share = sum(n for d, n in decades.items() if d >= "2000s") / total
        leaning = (
            "recent releases" if recent_share >= 0.6 else "older classics" if recent_share <= 0.3 else "a mix of eras"
        )
        context["era"] = (
            f"{leaning} ({recent_share:.0%} from 2000 on; most watched decade {decades.most_common(1)[0][0]})"
        )
    if facts.recent_shift:
        parts = [f"{label} {delta:+.0%}" for label, delta in list(facts.recent_shift.items())[:3]]
        context["recent_shift"] = "recently more/less of: " + ", ".join(parts)
    brands = Counter(
        b for i in facts.history_item_ids for b in (items[i].attributes.get("brand", []) if i in items else [])
    )
    if facts.dominant:
        parts = [
            f"{a.label} ({a.share:.0%} of {facts.n_items} items"
            + (f", rated {a.mean_rating:.1f} on average" if a.mean_rating is not None else "")
            + ")"
            for a in facts.dominant
        ]
        context["mostly"] = ", ".join(parts)
    if brands and facts.n_items >= 3:
        brand, count = brands.most_common(1)[0]
        if count / facts.n_items >= 0.5:
            context["brand_loyalty"] = f"{count} of {facts.n_items} items from {brand}"
    return context


def label_shares(events: list[Event], items: dict[str, Item]) -> dict[str, float]:
    """Share of `events` whose item carries each label (the same baseline as `Database.label_event_shares`,
    computed from a given set of events, e.g. a training split)."""
    counts: Counter[str] = Counter()
    for event in events:
        if item := items.get(event.item_id):
            counts.update(item.labels())
    return {label: n / len(events) for label, n in counts.items()} if events else {}


def stated_facts(user_id: str, liked: list[str], items: dict[str, Item], global_shares: dict[str, float]) -> UserFacts:
    """Facts of a person with no history, from the titles they said they liked (each a `like` event
    on the `stated` platform, kept in memory, never stored), or empty facts when they named none."""
    events = [Event(user_id=user_id, item_id=i, kind="like", timestamp=0, platform="stated") for i in liked]
    if events:
        return build_facts(user_id, events, items, global_shares)
    return UserFacts(
        user_id=user_id, n_events=0, n_items=0, kinds={}, platforms=[], first_timestamp=0, last_timestamp=0
    )


class FactBook:
    """Facts for users of one store, with the catalogue-wide label shares computed once."""

    def __init__(self, db: Database):
        self.db = db
        self._global_shares: dict[str, float] | None = None
        self._generic_aspects: set[str] | None = None
        self._facts: OrderedDict[str, tuple[tuple[int, int, int], UserFacts, list[str]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def global_shares(self) -> dict[str, float]:
        if self._global_shares is None:
            self._global_shares = self.db.label_event_shares()
        return self._global_shares

    @property
    def generic_aspects(self) -> set[str]:
        if self._generic_aspects is None:
            self._generic_aspects = self.db.generic_aspects()
        return self._generic_aspects

    def facts(self, user_id: str) -> UserFacts:
        """The user's facts, rebuilt only when their history (or the data version) changed since the
        last call: the most recent `FACTS_CACHED` users' are kept. Callers must not modify them."""
        return self.facts_with_history(user_id)[0]

    def facts_with_history(self, user_id: str) -> tuple[UserFacts, list[str]]:
        """The user's facts and the item ids of their events other than searches, oldest first (what a
        recommender reads), both kept as `facts` keeps the facts: reading a history of 2,700 events
        from the database took 1.5 ms. Callers must not modify them."""
        state = self.db.user_state(user_id)
        with self._lock:
            cached = self._facts.get(user_id)
            if cached is not None and cached[0] == state:
                self._facts.move_to_end(user_id)
                return cached[1], cached[2]
        events = self.db.user_events(user_id)
        if not events:
            raise UnknownUserError(user_id)
        items = self.db.items({e.item_id for e in events})
        facts = build_facts(user_id, events, items, self.global_shares, self.generic_aspects)
        history = [e.item_id for e in events if e.kind != "search"]  # `Database.user_history`'s items
        with self._lock:
            self._facts[user_id] = (state, facts, history)
            while len(self._facts) > FACTS_CACHED:
                self._facts.popitem(last=False)
        return facts, history
