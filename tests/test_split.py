from tasteprint.evaluation.split import cold_start, leave_last_out, random_split
from tasteprint.models import Event


def events_for(user, n, start=0):
    return [Event(user_id=user, item_id=f"{user}-i{i}", kind="rating", rating=4, timestamp=start + i) for i in range(n)]


def test_leave_last_out_holds_out_last_two_and_keeps_short_users_in_training():
    events = events_for("long", 8) + events_for("short", 4)
    # A tag on the test item must not leak into training either.
    events.append(Event(user_id="long", item_id="long-i7", kind="tag", text="great", timestamp=3))
    split = leave_last_out(events)
    assert split.test == {"long": {"long-i7"}}
    assert {e.item_id for e in split.valid_events["long"]} == {"long-i6"}
    assert "short" in split.train and "short" not in split.test
    train_items = {e.item_id for e in split.train["long"]}
    assert "long-i7" not in train_items and "long-i6" not in train_items
    assert {e.item_id for e in split.history_for_test("long")} == train_items | {"long-i6"}


def test_no_test_item_is_seen_during_profiling(movielens_store):
    from tasteprint.profile.facts import build_facts
    from tasteprint.storage.sqlite import Database

    db = Database(movielens_store)
    events = list(db.iter_events())
    split = leave_last_out(events)
    items = db.items()
    for user_id in split.evaluated_users()[:25]:
        facts = build_facts(user_id, split.train[user_id], items, {})
        test_item = next(iter(split.test[user_id]))
        assert test_item not in facts.history_item_ids
        assert test_item not in facts.item_labels and all(test_item not in a.item_ids for a in facts.top_attributes)


def test_random_split_is_seeded_and_disjoint():
    events = events_for("u", 20)
    a, b = random_split(events, seed=1), random_split(events, seed=1)
    assert a.test == b.test and len(a.test["u"]) == 5
    assert not a.test["u"] & {e.item_id for e in a.train["u"]}
    assert random_split(events, seed=2).test != a.test


def test_cold_start_keeps_five_most_recent_items():
    split = leave_last_out(events_for("u", 12))
    cold = cold_start(split)
    # the validation item (i10) is known history at test time
    assert {e.item_id for e in cold.train["u"]} == {f"u-i{i}" for i in range(6, 11)}
    assert cold.test == split.test


def test_the_evaluations_own_path_never_sees_a_test_item(tmp_path):
    """What `eval` runs, not a copy: the tasks' fitted recommenders and the histories it builds facts
    (and so profiles and prompts) from, on every protocol."""
    from tasteprint import Tasteprint
    from tasteprint.cli.demo import BUILT_IN
    from tasteprint.evaluation.tasks import build_tasks
    from tasteprint.profile.facts import build_facts

    tp = Tasteprint(store=tmp_path, fit_embeddings=False)
    tp.ingest(BUILT_IN)
    events = list(tp.db.iter_events())
    items = tp.db.items()
    labels = {i: item.labels() for i, item in items.items()}
    tasks = build_tasks(events, sorted(items), None, labels, ["loo", "cand20", "msr"], seed=42)
    assert {t.protocol for t in tasks} >= {"loo", "cand20", "msr"}
    checked = 0
    for task in tasks:
        fitted = task.recommender.interactions
        for user_id, held_out in task.split.test.items():
            history = task.history(user_id)  # what evaluate_user builds facts from
            facts = build_facts(user_id, history, items, {})
            assert not held_out & {e.item_id for e in history}, (task.protocol, user_id)
            assert not held_out & set(facts.history_item_ids) and not held_out & set(facts.item_labels)
            row = fitted.matrix[fitted.users.index(user_id)].indices  # the fit saw the training part only
            assert not held_out & {fitted.items[i] for i in row}, (task.protocol, user_id)
            checked += 1
    assert checked >= 10
