"""More of a label: the floor, the boost beyond it, and the boost chosen on validation by its NDCG cost."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from tasteprint.recommend.validation import Case
from tasteprint.recommend.wanted import MORE_BOOSTS, asked_label, choose_more_boost, more_floor, wanted_top

ORDER = list(range(30))  # item n at position n
WANTED = {"Horror": {11, 18, 25, 29}}


def test_the_floor_alone_replaces_the_lowest_unwanted_picks_with_the_best_wanted_ones():
    top = wanted_top(ORDER, WANTED, 10)
    assert more_floor(10) == 3
    assert top == [0, 1, 2, 3, 4, 5, 6, 11, 18, 25]


def test_a_boost_lets_wanted_items_rise_beyond_the_floor_in_order():
    # at boost 1 the item at 11 competes as 5.5 and enters on merit; 18 and 25 meet the floor
    assert wanted_top(ORDER, WANTED, 10, boost=1.0) == [0, 1, 2, 3, 4, 5, 11, 6, 18, 25]
    # at boost 4 all four compete (as 2.2, 3.6, 5 and 5.8), beyond the floor of 3
    assert wanted_top(ORDER, WANTED, 10, boost=4.0) == [0, 1, 2, 11, 3, 18, 4, 5, 25, 29]


def test_no_wanted_label_leaves_the_order_as_it_is():
    assert wanted_top(ORDER, {}, 10, boost=4.0) == ORDER[:10]


def labels_matrix(rows: dict[int, list[int]], items: int = 30, labels: int = 3) -> sparse.csr_matrix:
    cells = [(item, label) for item, ls in rows.items() for label in ls]
    data = np.ones(len(cells), dtype=np.float32)
    return sparse.csr_matrix((data, ([r for r, _ in cells], [c for _, c in cells])), shape=(items, labels))


def test_the_asked_label_is_the_one_with_most_candidates_among_those_barely_shown():
    # label 0 fills the top 10 (not asked); label 1 has one pick in the top 10 and four below; label 2 two below
    labels = labels_matrix({**{n: [0] for n in range(10)}, 3: [0, 1], 11: [1], 14: [1], 20: [1], 21: [2], 22: [2]})
    assert asked_label(np.array(ORDER), labels) == {3, 11, 14, 20}
    assert asked_label(np.array(ORDER), labels_matrix({n: [0] for n in range(10)})) is None


def test_validation_keeps_the_strongest_boost_within_the_ndcg_cost():
    labels = labels_matrix({n: [1] for n in range(12, 30)})  # the lower part of every list carries label 1
    order = np.array(ORDER)
    # held-out items at the top: each boost pushes them down, the stronger the further
    cheap = [Case("u", [], {"x"}, wanted={5}) for _ in range(4)]
    boost, means = choose_more_boost(cheap, [order] * 4, labels)
    assert set(means) == {f"more boost {b:g}" for b in MORE_BOOSTS}
    assert means["more boost 0"] > 0 and boost < MORE_BOOSTS[-1]
    assert means[f"more boost {boost:g}"] >= 0.95 * means["more boost 0"]
    # the held-out item stays first: the strongest boost costs nothing and is kept
    free = [Case("u", [], {"x"}, wanted={0}) for _ in range(4)]  # first at every boost
    assert choose_more_boost(free, [order] * 4, labels)[0] == MORE_BOOSTS[-1]
    assert choose_more_boost(free, [order] * 4, None) == (0.0, {})
