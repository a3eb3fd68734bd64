"""More of a label a person asked for: the floor every list meets, how strongly such items rise beyond
it, and choosing that strength on validation by what it costs in NDCG@10.

- The floor: at least `more_floor(k)` of the top k carry the label (3 of 10), or every servable item
  with it when there are fewer.
- The boost: before the floor is filled, an item carrying a wanted label at position p of the
  person's ranked list competes as if it were at p / (1 + boost). At 0 only the floor acts.
- `choose_more_boost`: on the fit's validation cases, each case asks for more of a label it barely
  shows (at most one of its top 10, the most items of its candidate pool among those); the strongest
  boost whose lists keep `MORE_KEEP` of the floor-only lists' NDCG@10 is kept.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from scipy import sparse

from .metrics import ndcg_at_k
from .validation import Case

MORE_SHARE = 0.3  # of a list of k: the share that carries each label asked more of (3 of 10)
MORE_BOOSTS = (0.0, 0.5, 1.0, 2.0, 4.0)  # the strengths validation tries
MORE_KEEP = 0.95  # a stronger boost must keep this share of the floor-only lists' NDCG@10 on validation


def more_floor(k: int) -> int:
    """How many of the top `k` must carry a label the person asked more of."""
    return math.ceil(MORE_SHARE * k)


def wanted_top(order: Sequence[Hashable], wanted: Mapping[Hashable, set], k: int, boost: float = 0.0) -> list:
    """The top `k` of `order` (best first) for a person who asked for more of each label in `wanted`
    (label -> the items carrying it that may be served): items carrying one rise by `boost`, then each
    label's floor is met by its best further items in `order`, which replace the lowest picks that carry
    no wanted label."""
    position = {item: n for n, item in enumerate(order)}

    def protected(item: Hashable) -> bool:
        return any(item in items for items in wanted.values())

    if boost and wanted:
        order = sorted(order, key=lambda i: (position[i] / (1 + boost) if protected(i) else position[i], position[i]))
    chosen = list(order[:k])
    for items in wanted.values():
        need = min(more_floor(k), len(items)) - sum(i in items for i in chosen)
        if need <= 0:
            continue
        additions = [i for i in order if i in items and i not in chosen][:need]
        for item in additions:
            victims = [n for n in range(len(chosen)) if not protected(chosen[n])]
            if len(chosen) < k:
                chosen.append(item)
            elif victims:
                del chosen[victims[-1]]
                chosen.append(item)
    return chosen


def asked_label(order: np.ndarray, labels: sparse.csr_matrix, k: int = 10) -> set[int] | None:
    """For a validation case ranked as `order` (item indices, best first): the items of `order` that
    carry the label a person would ask more of (at most one of the top `k` carries it, and of those
    labels it has the most items in `order`), or None when no label qualifies."""
    if not len(order):
        return None
    listed = labels[order]
    in_top = np.asarray(listed[:k].sum(axis=0)).ravel()
    in_order = np.asarray(listed.sum(axis=0)).ravel()
    eligible = np.flatnonzero((in_top <= 1) & (in_order > in_top))
    if not len(eligible):
        return None
    label = eligible[np.argmax(in_order[eligible])]
    return set(order[listed[:, label].nonzero()[0]].tolist())


def choose_more_boost(
    cases: Sequence[Case], orders: Sequence[np.ndarray], labels: sparse.csr_matrix | None
) -> tuple[float, dict[str, float]]:
    """The boost kept (see the module docstring) and each boost's mean weighted NDCG@10 over `cases`
    (`orders`: each case's ranked candidates, item indices best first)."""
    if labels is None or not labels.nnz:
        return 0.0, {}
    ndcgs: dict[float, list[float]] = {boost: [] for boost in MORE_BOOSTS}
    for case, order in zip(cases, orders):
        items = asked_label(order, labels)
        if items is None:
            continue
        for boost in MORE_BOOSTS:
            top = wanted_top(order.tolist(), {0: items}, 10, boost)
            ndcgs[boost].append(case.weight * ndcg_at_k(case.wanted, top))
    means = {boost: float(np.mean(values)) if values else 0.0 for boost, values in ndcgs.items()}
    floor_only = means[MORE_BOOSTS[0]]
    kept = [b for b in MORE_BOOSTS if floor_only > 0 and means[b] >= MORE_KEEP * floor_only]
    return max(kept, default=0.0), {f"more boost {boost:g}": value for boost, value in means.items()}
