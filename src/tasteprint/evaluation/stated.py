"""The `stated` protocol: how well a person is served from a sentence about their taste alone.

For each sampled user of the leave-last-out split, a short statement is written from their training
items by a fixed template (their top labels and two favourite titles). It is read as `tasteprint edit
--says` reads one (`read_statement`: the model sorts the catalogue names it mentions, each checked
against the text), and the held-out last item is ranked among every item the user has not consumed
by what serving does for a person with no history: the recommender reads the liked titles, the
edits steer (`recommend.steering`). Beside it: popularity, and item-kNN seeded with the same two
titles (`itemknn-seeded`).
"""

from __future__ import annotations

from collections.abc import Mapping

from tasteprint.llm import LLMContext
from tasteprint.models import Event, Item
from tasteprint.profile.edits import reading_edits
from tasteprint.profile.facts import build_facts
from tasteprint.profile.stated import read_statement
from tasteprint.recommend.recommender import Recommender
from tasteprint.recommend.steering import Steering, with_wanted

from .methods import UserOutcome
from .split import Split

STATED_METHODS = ("stated", "pop", "itemknn-seeded")
TOP_LABELS = 3
FAVOURITES = 2
POOL = 100  # candidates the stated list is drawn from, before the edits steer it


def statement(labels: list[str], favourites: list[str]) -> str:
    """The fixed template: "I like Drama, Comedy and Romance. Two favourites: Heat and Fargo." """
    liked = ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else "".join(labels)
    parts = [f"I like {liked}." if labels else "", f"Two favourites: {' and '.join(favourites)}." if favourites else ""]
    return " ".join(p for p in parts if p)


def stated_outcomes(
    split: Split,
    users: list[str],
    recommender: Recommender,
    items: dict[str, Item],
    label_items: Mapping[str, set[str]],
    global_shares: dict[str, float],
    llm: LLMContext,
    k: int,
) -> dict[str, list[UserOutcome]]:
    """Each method's outcome per user on the `stated` protocol."""
    titles = {i: item.title for i, item in items.items()}
    outcomes: dict[str, list[UserOutcome]] = {m: [] for m in STATED_METHODS}
    for user_id in users:
        train: list[Event] = split.history_for_test(user_id)
        facts = build_facts(user_id, train, items, global_shares)
        favourites = [ref.item_id for ref in facts.loved[:FAVOURITES]]
        said = statement([a.label for a in facts.top_attributes[:TOP_LABELS]], [titles[i] for i in favourites])
        reading = read_statement(said, label_items, titles, llm)
        steering = Steering.from_edits(reading_edits(reading), label_items)
        seen = set(facts.history_item_ids)
        relevant = split.test[user_id]
        history = steering.liked
        candidates = recommender.recommend(history, n=POOL, exclude=seen | steering.excluded)
        consumed = seen | set(history) | steering.excluded
        candidates = with_wanted(recommender, history, candidates, steering, k, consumed)
        ranked = steering.top([c.item_id for c in candidates], k, consumed, recommender.more_boost)
        outcomes["stated"].append(UserOutcome(user_id, ranked, relevant, set(history)))
        popular = [i for i in recommender.single("pop", [], n=k + len(seen)) if i not in seen][:k]
        outcomes["pop"].append(UserOutcome(user_id, popular, relevant, set()))
        seeded = [i for i in recommender.single("itemknn", favourites, n=k + len(seen)) if i not in seen][:k]
        outcomes["itemknn-seeded"].append(UserOutcome(user_id, seeded, relevant, set(favourites)))
    return outcomes


def stated_ratios(per_user: dict, k: int) -> dict:
    """The stated list's mean NDCG@k, and its ratio to popularity and to seeded item-kNN."""
    means = {}
    for method in STATED_METHODS:
        outcomes = per_user[(method, "stated")]
        means[method] = sum(o.metrics(k, "stated")[f"ndcg@{k}"] for o in outcomes) / max(len(outcomes), 1)

    def ratio(baseline: str) -> float | None:
        return round(means["stated"] / means[baseline], 4) if means[baseline] else None

    return {
        "users": len(per_user[("stated", "stated")]),
        "ndcg": {m: round(v, 5) for m, v in means.items()},
        "vs_pop": ratio("pop"),
        "vs_itemknn_seeded": ratio("itemknn-seeded"),
    }
