import csv
import os
import subprocess
import sys
from collections import Counter

from conftest import MOVIELENS

from tasteprint.models import Event, Item
from tasteprint.profile.facts import FactBook, build_facts
from tasteprint.storage.sqlite import Database


def _user_one_ratings():
    with (MOVIELENS / "ratings.csv").open() as handle:
        return {row["movieId"]: float(row["rating"]) for row in csv.DictReader(handle) if row["userId"] == "1"}


def test_movielens_user_facts_match_a_hand_count(movielens_store):
    facts = FactBook(Database(movielens_store)).facts("1")
    ratings = _user_one_ratings()
    assert facts.n_items == len(ratings) == 232
    assert facts.rating_mean == round(sum(ratings.values()) / len(ratings), 3)
    assert sum(facts.rating_histogram.values()) == 232
    with (MOVIELENS / "movies.csv").open() as handle:
        genres = {row["movieId"]: row["genres"].split("|") for row in csv.DictReader(handle)}
    counts = Counter(g for movie in ratings for g in genres[movie])
    for stat in facts.top_attributes:
        if stat.attribute == "genres":
            assert stat.count == counts[stat.label]
            for item_id in stat.item_ids:
                assert stat.label in genres[item_id]
    assert all(ratings[i.item_id] >= 4.0 for i in facts.loved)
    assert all(ratings[i.item_id] <= 2.0 for i in facts.disliked)
    assert set(facts.history_item_ids) == set(ratings)
    assert facts.context["rating_style"].startswith("generous")


def test_tags_become_labels_and_snippets(movielens_store):
    facts = FactBook(Database(movielens_store)).facts("2")
    assert "funny" in facts.item_labels["60756"]
    assert "funny" in facts.snippets


def test_amazon_review_text_reaches_the_facts(amazon_store):
    facts = FactBook(Database(amazon_store)).facts("A5QQOOZJOVPSF")
    assert any("computer" in s for s in facts.snippets)
    assert all(len(s) <= 200 for s in facts.snippets)
    assert facts.platforms == ["amazon"]


def test_recent_shift_is_detected():
    items = {f"a{i}": Item(item_id=f"a{i}", attributes={"genres": ["Drama"]}) for i in range(20)}
    items |= {f"b{i}": Item(item_id=f"b{i}", attributes={"genres": ["Horror"]}) for i in range(5)}
    events = [Event(user_id="u", item_id=f"a{i}", kind="rating", rating=4, timestamp=1000 + i) for i in range(20)]
    events += [Event(user_id="u", item_id=f"b{i}", kind="rating", rating=4, timestamp=5000 + i) for i in range(5)]
    facts = build_facts("u", events, items, {"Drama": 0.5, "Horror": 0.1})
    assert facts.recent_shift["Horror"] == 0.8
    assert facts.recent_shift["Drama"] == -0.8
    assert "Horror" in facts.context["recent_shift"]
    horror = next(a for a in facts.top_attributes if a.label == "Horror")
    assert horror.lift == 2.0


def test_unrated_events_count_as_positive():
    items = {"x": Item(item_id="x", title="X", attributes={"category": ["Tools"]})}
    events = [Event(user_id="u", item_id="x", kind="purchase", timestamp=10)]
    facts = build_facts("u", events, items, {})
    assert facts.rating_mean is None
    assert [i.item_id for i in facts.loved] == ["x"]
    assert facts.top_attributes[0].label == "Tools"


PROMPTS_OF = """
import json, sys
from pathlib import Path
from tasteprint.storage.sqlite import Database
from tasteprint.profile.facts import FactBook
from tasteprint.profile.draft import profile_messages
book = FactBook(Database(Path(sys.argv[1])))
print(json.dumps([profile_messages(book.facts(u)) for u in sys.argv[2:]]))
"""


def test_prompts_are_the_same_in_every_process(movielens_store):
    """Python salts string hashes per process, so anything ordered by set iteration changes between
    runs; the LLM cache, resumed batches and replayed benchmarks all need identical prompts. User 101
    has three labels tied in recent shift."""
    users = ["101", "106", "112", "414"]
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        command = [sys.executable, "-c", PROMPTS_OF, str(movielens_store), *users]
        runs.append(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    assert "Mystery +17%" in runs[0]
    assert runs[0] == runs[1]


def test_the_kept_history_is_the_databases_and_follows_new_events(tmp_path):
    db = Database(tmp_path)
    db.add_items([Item(item_id=i, title=i.upper()) for i in "abcd"])
    db.add_events(
        [
            Event(user_id="u", item_id="b", kind="rating", rating=4, timestamp=20),
            Event(user_id="u", item_id="a", kind="rating", rating=5, timestamp=10),
            Event(user_id="u", item_id="c", kind="search", text="c films", timestamp=15),
            Event(user_id="u", item_id="a", kind="view", timestamp=30),
        ]
    )
    book = FactBook(db)
    facts, history = book.facts_with_history("u")
    assert history == db.user_history("u") == ["a", "b", "a"]  # oldest first, searches left out
    assert book.facts_with_history("u")[1] is history and book.facts("u") is facts  # kept
    db.add_events([Event(user_id="u", item_id="d", kind="rating", rating=3, timestamp=40)])
    assert book.facts_with_history("u")[1] == ["a", "b", "a", "d"]
