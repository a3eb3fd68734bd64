import numpy as np

from tasteprint.recommend.retrievers import EASE, Interactions, ItemKNN, fuse, ordered_history, top_indices


def small_world() -> Interactions:
    histories = {"u1": ["a", "b"], "u2": ["a", "b", "c"], "u3": ["b", "c"], "u4": ["a", "c", "d"], "u5": ["d", "e"]}
    return Interactions.from_histories(histories)


def test_weighted_reciprocal_rank_fusion_by_hand():
    fused = fuse({"x": ["a", "b"], "y": ["b", "c"]}, {"x": 1.0, "y": 0.5}, k=60)
    scores = {c.item_id: c.score for c in fused}
    assert np.isclose(scores["a"], 1 / 61)
    assert np.isclose(scores["b"], 1 / 62 + 0.5 / 61)
    assert np.isclose(scores["c"], 0.5 / 62)
    assert [c.item_id for c in fused] == ["b", "a", "c"]
    assert fused[0].ranks == {"x": 2, "y": 1}


def test_ease_closed_form_matches_the_formula():
    world = small_world()
    ease = EASE(lam=1.0, min_count=1).fit(world)
    x = world.matrix.toarray()
    p = np.linalg.inv(x.T @ x + np.eye(x.shape[1]))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0)
    assert np.allclose(ease.weights, expected, atol=1e-5)
    assert np.allclose(np.diag(ease.weights), 0)


def test_ease_ignores_rare_items_outside_its_columns():
    world = small_world()
    ease = EASE(lam=1.0, min_count=2).fit(world)
    assert "e" not in {world.items[i] for i in ease.columns}
    scores = ease.scores(world.vector(["d"]))
    assert scores[world.item_index["e"]] == 0


def test_itemknn_cosine_by_hand():
    world = small_world()
    scores = ItemKNN(k=10).fit(world).scores(world.vector(["a"]))
    # a is used by u1,u2,u4; b by u1,u2,u3: cosine = 2 / (sqrt3 * sqrt3)
    assert np.isclose(scores[world.item_index["b"]], 2 / 3, atol=1e-5)
    assert np.isclose(scores[world.item_index["e"]], 0)
    assert scores[world.item_index["a"]] == 0  # an item is not its own neighbour


def test_label_rows_give_items_that_share_a_label_a_similarity_by_hand():
    world = small_world()
    labels = world.label_matrix({"a": ["x"], "e": ["x", "y"], "c": ["y"]})
    assert labels.shape == (5, 2) and labels.sum() == 4
    plain = ItemKNN(k=10).fit(world).scores(world.vector(["a"]))
    labelled = ItemKNN(k=10, label_weight=2.0).fit(world, labels).scores(world.vector(["a"]))
    # a: users u1,u2,u4 plus label x at 2 -> norm sqrt(3 + 4); e: u5 plus x and y at 2 -> sqrt(1 + 8).
    assert plain[world.item_index["e"]] == 0
    assert np.isclose(labelled[world.item_index["e"]], 4 / np.sqrt(7 * 9), atol=1e-5)
    # b shares no label with a: the same co-occurrence over a longer vector for a.
    assert np.isclose(labelled[world.item_index["b"]], 2 / np.sqrt(7 * 3), atol=1e-5)
    ease = EASE(lam=1.0, min_count=1, label_weight=2.0).fit(world, labels)
    x = np.vstack([world.matrix.toarray(), 2.0 * labels.toarray().T])
    p = np.linalg.inv(x.T @ x + np.eye(x.shape[1]))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0)
    assert np.allclose(ease.weights, expected, atol=1e-5)
    unweighted = EASE(lam=1.0, min_count=1).fit(world, labels)  # label weight 0: the interactions alone
    assert np.allclose(unweighted.weights, EASE(lam=1.0, min_count=1).fit(world).weights)


def test_itemknn_keeps_only_each_items_nearest_neighbours():
    world = small_world()
    full = ItemKNN(k=10).fit(world).similarity.toarray()
    one = ItemKNN(k=1).fit(world).similarity.toarray()
    # Each item (row) keeps exactly its single most similar other item.
    for row in range(full.shape[0]):
        kept = np.flatnonzero(one[row])
        assert len(kept) == 1
        assert np.isclose(one[row, kept[0]], full[row].max())


def test_recency_weights_halve_every_half_life_items_back():
    world = small_world()
    weights = world.vector(["a", "c", "b", "d"], half_life=1.0)
    index = world.item_index
    assert weights[index["d"]] == 1.0 and weights[index["b"]] == 0.5 and weights[index["a"]] == 0.125
    assert world.vector(["a", "c"]).tolist() == [1, 0, 1, 0, 0]
    # A repeated item counts at its latest position; an item the fit never saw still counts as a step back.
    again = world.vector(["a", "b", "a", "unseen", "b"], half_life=1.0)
    assert again[index["a"]] == 0.25 and again[index["b"]] == 1.0


def test_ordered_history_keeps_each_item_at_its_latest_position():
    class E:
        def __init__(self, item_id):
            self.item_id = item_id

    assert ordered_history([E("a"), E("b"), E("a"), E("c")]) == ["b", "a", "c"]


def test_top_indices_skips_excluded_items_and_breaks_ties_by_index():
    scores = np.array([0.5, 0.9, 0.5, 0.1])
    assert top_indices(scores, np.array([False, True, False, False]), 2).tolist() == [0, 2]
    assert top_indices(scores, np.zeros(4, dtype=bool), 10).tolist() == [1, 0, 2, 3]


def test_together_counts_the_users_who_consumed_both_items():
    world = Interactions.from_histories({"a": ["x", "y"], "b": ["x", "y", "z"], "c": ["y", "z"], "d": ["x"]})
    assert world.together(["x", "z", "unknown"], ["y", "z", "x", "gone"]) == {
        "x": {"y": 2, "z": 1, "x": 3},
        "z": {"y": 2, "z": 2, "x": 1},
    }
    assert world.together(["x"], []) == {}


def test_together_counts_an_item_only_when_its_counts_are_read(monkeypatch):
    world = Interactions.from_histories({"a": ["x", "y"], "b": ["x", "y", "z"], "c": ["y", "z"]})
    counted = []
    original = Interactions.co_counts
    monkeypatch.setattr(Interactions, "co_counts", lambda self, item: counted.append(item) or original(self, item))
    table = world.together(["x", "z"], ["y", "x"])
    assert counted == [] and sorted(table) == ["x", "z"]
    assert table["z"].get("y") == 2 and table["z"].get("x") == 1 and table["z"].get("gone", 0) == 0
    assert table["z"]["y"] == 2 and counted == ["z"]  # counted once, then kept


def test_scanning_many_queries_at_once_gives_each_its_own_scores_bit_for_bit():
    from threadpoolctl import threadpool_limits

    from tasteprint.recommend.retrievers import SCAN_ROWS, Embedding

    rng = np.random.default_rng(7)
    items = 3 * SCAN_ROWS + 37  # a last block shorter than the rest
    embedding = Embedding(rng.standard_normal((items, 48)).astype(np.float32))
    histories = []
    for length in (1, 5, 40, 0, 300):
        vector = np.zeros(items, dtype=np.float32)
        vector[rng.choice(items, length, replace=False)] = rng.random(length).astype(np.float32)
        histories.append(vector)
    extras = [None, rng.standard_normal(48).astype(np.float32), None, None, None]  # the 4th asks nothing
    with threadpool_limits(1):  # as a service worker runs
        together = embedding.scores_many(histories, extras)
        alone = [embedding.scores(h, e) for h, e in zip(histories, extras)]
    assert len(together) == len(histories)
    for mine, own in zip(together, alone):
        assert mine.dtype == np.float32 and np.array_equal(mine, own)
    assert not together[3].any() and together[1].any()
    assert not np.array_equal(together[0], together[2])  # each query its own row of the scan
