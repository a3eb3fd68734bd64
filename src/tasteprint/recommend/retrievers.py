"""Retrievers without the LLM: EASE, item-kNN, ALS, popularity and embedding neighbours.

Each retriever scores every item of one fitted interaction matrix for a *weighted* history vector:
weight 1 for every consumed item gives the classical method; weights that halve every `half_life`
items back in the user's history (in time order) make it sequence-aware, since what comes next
depends most on what came last. Consumed items are never candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import linalg, sparse

RRF_K = 60
LIST_DEPTH = 200


@dataclass
class Interactions:
    """A binary user x item matrix over the items users interacted with."""

    users: list[str]
    items: list[str]
    matrix: sparse.csr_matrix
    item_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.item_index = {it: i for i, it in enumerate(self.items)}

    @classmethod
    def from_histories(cls, histories: dict[str, Sequence[str]]) -> Interactions:
        """Users and items sorted by id; duplicates of a (user, item) pair count once."""
        users = sorted(histories)
        items = sorted({i for history in histories.values() for i in history})
        index = {it: n for n, it in enumerate(items)}
        rows, cols = [], []
        for row, user_id in enumerate(users):
            columns = {index[i] for i in histories[user_id]}
            rows += [row] * len(columns)
            cols += sorted(columns)
        matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))
        return cls(users, items, matrix)

    @cached_property
    def popularity(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0)).ravel().astype(np.float32)

    @cached_property
    def by_item(self) -> sparse.csc_matrix:
        return self.matrix.tocsc()

    def together(self, item_ids: Iterable[str], others: Iterable[str]) -> dict[str, CountsWith]:
        """For each of `item_ids`, how many users consumed both it and each of `others` (counts of 0
        and items outside the fitted data left out), counted for an item when first read."""
        columns = [o for o in dict.fromkeys(others) if o in self.item_index]
        if not columns:
            return {}
        column_indices = np.array([self.item_index[o] for o in columns], dtype=np.int64)
        return {i: CountsWith(self, i, columns, column_indices) for i in item_ids if i in self.item_index}

    def co_counts(self, item_id: str) -> np.ndarray:
        """How many users consumed both `item_id` and each fitted item."""
        column = self.item_index[item_id]
        return np.asarray((self.by_item[:, column].T @ self.matrix).toarray()).ravel()

    def label_matrix(self, labels: dict[str, Iterable[str]]) -> sparse.csr_matrix:
        """Items x labels, 1 where the item carries the label (labels sorted by name)."""
        names = sorted({label for i in self.items for label in labels.get(i, ())})
        column = {name: n for n, name in enumerate(names)}
        cells = [(row, column[label]) for row, i in enumerate(self.items) for label in labels.get(i, ())]
        rows, columns = [r for r, _ in cells], [c for _, c in cells]
        data = np.ones(len(cells), dtype=np.float32)
        return sparse.csr_matrix((data, (rows, columns)), shape=(len(self.items), len(names)))

    def lookup(self, history: Sequence[str]) -> np.ndarray:
        """Each history item's index among the fitted items, -1 for an item the fit has not seen."""
        index = self.item_index.get
        return np.fromiter((index(i, -1) for i in history), dtype=np.int64, count=len(history))

    def vector(
        self, history: Sequence[str], half_life: float | None = None, looked_up: np.ndarray | None = None
    ) -> np.ndarray:
        """The history as a vector over items: 1 per consumed item, or with `half_life`, 0.5 ** (steps back
        from the most recent item / half_life), counting each item at its latest position. `looked_up`
        is the history's `lookup`, when the caller has it already."""
        row = np.zeros(len(self.items), dtype=np.float32)
        indices = self.lookup(history) if looked_up is None else looked_up
        positions = np.flatnonzero(indices >= 0)  # where in the history each fitted item stands
        indices = indices[positions]
        if not len(indices):
            return row
        if half_life is None:
            row[indices] = 1.0
            return row
        # An item consumed twice counts at its latest position: keep each index's last occurrence.
        _, first_from_end = np.unique(indices[::-1], return_index=True)
        latest = len(indices) - 1 - first_from_end
        row[indices[latest]] = 0.5 ** ((len(history) - 1 - positions[latest]) / half_life)
        return row


class CountsWith(Mapping[str, int]):
    """One item's co-consumption counts: other item id (of `columns`) -> how many users consumed both,
    counts of 0 left out. Computed when first read: a pick is cited by co-consumption only when it
    shares no label or close embedding with the history, and counting every candidate against a long
    history cost up to 3 ms a request."""

    def __init__(self, interactions: Interactions, item_id: str, columns: list[str], column_indices: np.ndarray):
        self.interactions, self.item_id = interactions, item_id
        self.columns, self.column_indices = columns, column_indices
        self._counts: dict[str, int] | None = None

    @property
    def counts(self) -> dict[str, int]:
        if self._counts is None:
            counts = self.interactions.co_counts(self.item_id)[self.column_indices]
            self._counts = {self.columns[n]: int(counts[n]) for n in np.flatnonzero(counts)}
        return self._counts

    def __getitem__(self, other: str) -> int:
        return self.counts[other]

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)


def with_labels(interactions: Interactions, labels: sparse.csr_matrix | None, weight: float) -> sparse.csr_matrix:
    """The user x item matrix with one more row per label (`labels` is items x labels): a pseudo-user
    who consumed every item carrying it, with value `weight`. Items that share labels then co-occur,
    so an item few people consumed still finds neighbours (side information as in Ning & Karypis's
    SSLIM and Jeunen et al.'s EASE with side information). Weight 0 or no labels: the interactions alone."""
    if not weight or labels is None or labels.shape[1] == 0:
        return interactions.matrix
    return sparse.vstack([interactions.matrix, weight * labels.T]).tocsr().astype(np.float32)


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form: B = I - P / diag(P), P = (X'X + λI)^-1.

    Fitted on items with at least `min_count` interactions; X gets label rows of weight `label_weight`
    when labels are given (`with_labels`). Its dense items x items inverse costs memory quadratic in
    items, so the recommender uses it only below a configured item count.
    """

    def __init__(self, lam: float = 250.0, min_count: int = 2, label_weight: float = 0.0):
        self.lam = lam
        self.min_count = min_count
        self.label_weight = label_weight
        self.columns: np.ndarray = np.zeros(0, dtype=int)
        self.weights: np.ndarray = np.zeros((0, 0), dtype=np.float32)

    def fit(self, interactions: Interactions, labels: sparse.csr_matrix | None = None) -> EASE:
        self.columns = np.flatnonzero(interactions.popularity >= self.min_count)
        x = with_labels(interactions, labels, self.label_weight)[:, self.columns]
        gram = (x.T @ x).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += self.lam
        # X'X + λI is symmetric positive definite: LAPACK inverts it through its Cholesky factor,
        # about 3.7x faster here than numpy.linalg.inv's general solve (6,000 items: 1.8 s against 6.8 s).
        precision = linalg.inv(gram, overwrite_a=True, check_finite=False, assume_a="pos")
        weights = -precision / np.diag(precision)
        weights[np.diag_indices_from(weights)] = 0.0
        # LAPACK returns Fortran order; scoring reads the rows of consumed items, so keep them contiguous
        # (a row gathered from a Fortran-ordered 6,300-item matrix costs ~5x more).
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        return self

    def scores(self, user_vector: np.ndarray) -> np.ndarray:
        full = np.zeros_like(user_vector)
        history = user_vector[self.columns]
        consumed = np.flatnonzero(history)  # a history touches few items: sum just their rows of B
        full[self.columns] = history[consumed] @ self.weights[consumed]
        return full


class ItemKNN:
    """Item-based k-nearest neighbours (Sarwar et al. 2001) on implicit's sparse all-pairs kNN: each
    item keeps its `k` most cosine-similar items, and a candidate scores the weighted sum of its
    similarities to the user's items among them, computed over the interactions plus label rows of
    weight `label_weight` when labels are given (`with_labels`). Memory is items x k, never items x items."""

    def __init__(self, k: int = 100, label_weight: float = 0.0):
        self.k = k
        self.label_weight = label_weight
        self.similarity = sparse.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, interactions: Interactions, labels: sparse.csr_matrix | None = None) -> ItemKNN:
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=self.k + 1)  # its neighbour lists include the item itself
        with warnings.catch_warnings():  # it converts its own intermediate COO matrix and says so
            warnings.simplefilter("ignore")
            model.fit(with_labels(interactions, labels, self.label_weight), show_progress=False)
        similarity = model.similarity.tocsr().astype(np.float32)
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        self.similarity = similarity
        self.__dict__.pop("by_neighbour", None)  # derived from the old similarities
        return self

    @cached_property
    def by_neighbour(self) -> sparse.csr_matrix:
        """The similarity matrix transposed: row j lists the items that count j among their neighbours,
        so a history sums just its items' rows (a few hundred) rather than every item's list."""
        return self.similarity.T.tocsr()

    def scores(self, user_vector: np.ndarray) -> np.ndarray:
        return self.batch_scores(user_vector[None, :])[0]

    def batch_scores(self, user_vectors: np.ndarray) -> np.ndarray:
        """Scores of every item for each row of `user_vectors` (histories x items)."""
        consumed = np.flatnonzero(user_vectors.any(axis=0))
        weights = sparse.csr_matrix(user_vectors[:, consumed])
        return np.asarray((weights @ self.by_neighbour[consumed]).toarray(), dtype=np.float32)


class ALS:
    """Implicit-feedback matrix factorisation (Hu, Koren, Volinsky 2008) from `implicit`, for catalogues
    too large for EASE: memory is (users + items) x factors. A new history is folded in by solving
    for its user factor against the fitted item factors."""

    def __init__(self, factors: int = 64, iterations: int = 15, regularization: float = 0.05, seed: int = 42):
        self.params = {"factors": factors, "iterations": iterations, "regularization": regularization}
        self.seed = seed
        self.model = None

    def fit(self, interactions: Interactions) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"), warnings.catch_warnings():  # implicit's own threads do the work
            warnings.simplefilter("ignore", RuntimeWarning)  # its BLAS-threads check runs before the limit applies
            self.model = AlternatingLeastSquares(**self.params, random_state=self.seed)
            self.model.fit(interactions.matrix, show_progress=False)
        return self

    def scores(self, user_vector: np.ndarray) -> np.ndarray:
        if not user_vector.any():
            return np.zeros_like(user_vector)
        row = sparse.csr_matrix(user_vector[None, :])
        factor = self.model.recalculate_user(0, row)
        return (self.model.item_factors @ factor).astype(np.float32)


SCAN_ROWS = 512  # item vectors scanned at a time for several queries: 0.8 MB of 384-d rows, within a core's L2


class Embedding:
    """Embedding neighbours: cosine of each item's text embedding with the user's query, the
    history-weighted mean of the consumed items' embeddings (plus a profile vector when given)."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors.astype(np.float32, copy=False)  # a memory-mapped fit stays shared between workers

    def query(self, user_vector: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray | None:
        parts = []
        if user_vector.any():
            consumed = np.flatnonzero(user_vector)  # a history touches few items: average just their rows
            parts.append(user_vector[consumed] @ self.vectors[consumed] / user_vector.sum())
        if extra is not None:
            parts.append(extra)
        if not parts:
            return None
        query = np.sum(parts, axis=0)
        return query / (np.linalg.norm(query) + 1e-9)

    def scores(self, user_vector: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        query = self.query(user_vector, extra)
        return np.zeros(len(self.vectors), np.float32) if query is None else self.vectors @ query

    def scores_many(self, user_vectors: Sequence[np.ndarray], extras: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """`scores` for each (user vector, extra) pair, reading the item vectors once for all of them.

        The scan of every item's vector is memory-bound (15 MB for ml-latest-small, evicted from the
        cache by the rest of a request): one query took 1.2 ms on one thread, eight took 2.9 ms when each
        block of rows served every query while it was in the cache. Each block is the same matrix-vector
        product as `scores` makes over the whole matrix, in blocks whose size is a multiple of any row
        grouping the BLAS kernel uses, so on one BLAS thread (as a service worker runs) each query's
        scores equal its `scores` bit for bit, whichever queries share the scan."""
        queries = [self.query(vector, extra) for vector, extra in zip(user_vectors, extras, strict=True)]
        asked = [q for q in queries if q is not None]
        if len(asked) == 1:
            scanned = [self.vectors @ asked[0]]
        else:
            scanned = np.empty((len(asked), len(self.vectors)), dtype=np.float32)
            for start in range(0, len(self.vectors), SCAN_ROWS):
                block = self.vectors[start : start + SCAN_ROWS]
                for row, query in enumerate(asked):
                    np.matmul(block, query, out=scanned[row, start : start + SCAN_ROWS])
        rows = iter(scanned)
        return [np.zeros(len(self.vectors), np.float32) if q is None else next(rows) for q in queries]


@dataclass
class Candidate:
    item_id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


ROW_BLOCK = 64  # EASE rows gathered at a time for a history's scores (fastest of 16-256 measured)
FEW_HISTORIES = 8


def batch_scores(retriever: EASE | ItemKNN | ALS, user_vectors: np.ndarray) -> np.ndarray:
    """Scores of every item for each row of `user_vectors` (histories x items), one row per history."""
    if isinstance(retriever, EASE):
        full = np.zeros_like(user_vectors)
        histories = user_vectors[:, retriever.columns]
        consumed = np.flatnonzero(histories.any(axis=0))  # few items: sum just their rows of B
        # A few histories (serving) or few consumed items: their rows in blocks that stay in cache.
        # Gathering every consumed row at once copied up to ~100 MB for the longest histories and took
        # 3.7x as long; the product with all of B took 4-6x as long for one history of 1,700-3,600 items
        # (ml-latest-small). Many histories at once (validation) share a full product.
        if len(user_vectors) <= FEW_HISTORIES or len(consumed) < len(retriever.columns) // 4:
            scores = np.zeros((len(user_vectors), len(retriever.columns)), dtype=np.float32)
            for start in range(0, len(consumed), ROW_BLOCK):
                rows = consumed[start : start + ROW_BLOCK]
                scores += histories[:, rows] @ retriever.weights[rows]
            full[:, retriever.columns] = scores
        else:
            full[:, retriever.columns] = histories @ retriever.weights
        return full
    if isinstance(retriever, ItemKNN):
        return retriever.batch_scores(user_vectors)
    return np.stack([retriever.scores(row) for row in user_vectors])


def top_indices(scores: np.ndarray, exclude: np.ndarray, depth: int = LIST_DEPTH) -> np.ndarray:
    """Indices of the `depth` best scores, best first (ties by index), skipping `exclude` (a boolean mask)."""
    masked = np.where(exclude, -np.inf, scores)
    depth = min(depth, int((~exclude).sum()))
    if depth == 0:
        return np.zeros(0, dtype=int)
    head = np.argpartition(-masked, depth - 1)[:depth] if depth < len(masked) else np.arange(len(masked))
    return head[np.lexsort((head, -masked[head]))]


def fuse(ranked_lists: dict[str, list[str]], weights: dict[str, float], k: int = RRF_K) -> list[Candidate]:
    """Weighted reciprocal rank fusion: score(i) = sum over lists of weight / (k + rank)."""
    fused: dict[str, Candidate] = {}
    for source, ranked in ranked_lists.items():
        weight = weights.get(source, 0.0)
        for rank, item_id in enumerate(ranked, start=1):
            candidate = fused.setdefault(item_id, Candidate(item_id, 0.0))
            candidate.score += weight / (k + rank)
            candidate.ranks[source] = rank
    return sorted(fused.values(), key=lambda c: (-c.score, c.item_id))


def ordered_history(events: Iterable) -> list[str]:
    """Item ids in the order given (time order, ties in file order), each at its latest position."""
    latest: dict[str, None] = {}
    for event in events:
        latest.pop(event.item_id, None)
        latest[event.item_id] = None
    return list(latest)
