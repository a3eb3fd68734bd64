"""Candidate retrieval without the LLM: EASE, item-item co-occurrence, embeddings and popularity, fused
by weighted reciprocal rank. Consumed items are never candidates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import sparse

RRF_K = 60
LIST_DEPTH = 200
COLD_START_MAX = 5
DEFAULT_WEIGHTS = {"ease": 1.0, "itemknn": 0.7, "embed": 0.4, "pop": 0.2}
COLD_WEIGHTS = {"ease": 0.5, "itemknn": 0.5, "embed": 1.0, "pop": 0.6, "segment": 0.8}


@dataclass
class Interactions:
    """A binary user x item matrix over the items users interacted with."""

    users: list[str]
    items: list[str]
    matrix: sparse.csr_matrix
    user_index: dict[str, int] = field(init=False)
    item_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.user_index = {u: i for i, u in enumerate(self.users)}
        self.item_index = {it: i for i, it in enumerate(self.items)}

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Interactions:
        pairs = list(dict.fromkeys(pairs))
        users = sorted({u for u, _ in pairs})
        items = sorted({i for _, i in pairs})
        u_index = {u: n for n, u in enumerate(users)}
        i_index = {it: n for n, it in enumerate(items)}
        rows = [u_index[u] for u, _ in pairs]
        cols = [i_index[i] for _, i in pairs]
        matrix = sparse.csr_matrix(
            (np.ones(len(pairs), dtype=np.float32), (rows, cols)), shape=(len(users), len(items))
        )
        return cls(users, items, matrix)

    @cached_property
    def popularity(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0)).ravel()

    @cached_property
    def columns(self) -> tuple[sparse.csc_matrix, np.ndarray]:
        """The matrix by columns and each column's L2 norm, for item-item cosine."""
        by_column = self.matrix.tocsc()
        return by_column, np.sqrt(np.asarray(by_column.multiply(by_column).sum(axis=0)).ravel()) + 1e-9

    def vector(self, history: Iterable[str]) -> np.ndarray:
        row = np.zeros(len(self.items), dtype=np.float32)
        for item_id in history:
            if (index := self.item_index.get(item_id)) is not None:
                row[index] = 1.0
        return row


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form: B = I - P / diag(P), P = (X'X + λI)^-1.

    Fitted on items with at least `min_count` interactions, which bounds the cubic cost of the inverse.
    """

    def __init__(self, lam: float = 250.0, min_count: int = 2):
        self.lam = lam
        self.min_count = min_count
        self.columns: np.ndarray = np.zeros(0, dtype=int)
        self.weights: np.ndarray = np.zeros((0, 0), dtype=np.float32)

    def fit(self, interactions: Interactions) -> EASE:
        self.columns = np.flatnonzero(interactions.popularity >= self.min_count)
        x = interactions.matrix[:, self.columns]
        gram = (x.T @ x).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += self.lam
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)
        return self

    def scores(self, user_vector: np.ndarray) -> np.ndarray:
        full = np.zeros_like(user_vector)
        full[self.columns] = user_vector[self.columns] @ self.weights
        return full


class ItemKNN:
    """Item-based k-nearest neighbours (Sarwar et al. 2001): each item keeps its `k` most cosine-similar
    items, and a candidate scores the sum of its similarities to the user's items among them. Keeping
    only the neighbours (k=100) is what lifts it to the reference figures (loo NDCG@10 0.035 on
    ml-latest-small, against 0.027 for the untruncated sum)."""

    def __init__(self, k: int = 100, block: int = 1024):
        self.k = k
        self.block = block
        self.similarity = sparse.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, interactions: Interactions) -> ItemKNN:
        x, norms = interactions.columns
        n = x.shape[1]
        blocks = []
        # Column blocks bound the dense working set to n x block floats.
        for start in range(0, n, self.block):
            stop = min(start + self.block, n)
            sims = (x.T @ x[:, start:stop]).toarray().astype(np.float32)
            sims /= norms[:, None] * norms[None, start:stop]
            sims[np.arange(start, stop), np.arange(stop - start)] = 0.0
            if n > self.k:
                weakest = np.argpartition(-sims, self.k, axis=0)[self.k :]
                np.put_along_axis(sims, weakest, 0.0, axis=0)
            blocks.append(sparse.csc_matrix(sims))
        self.similarity = sparse.hstack(blocks).tocsr() if blocks else self.similarity
        return self

    def scores(self, user_vector: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity.T @ user_vector, dtype=np.float32).ravel()


@dataclass
class Candidate:
    item_id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def top_ids(items: list[str], scores: np.ndarray, exclude: set[str], depth: int = LIST_DEPTH) -> list[str]:
    order = np.argsort(-scores, kind="stable")
    ranked = []
    for index in order:
        if scores[index] <= 0 and ranked:
            break
        if items[index] not in exclude:
            ranked.append(items[index])
        if len(ranked) == depth:
            break
    return ranked


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


class Retriever:
    """Hybrid retrieval over one interaction matrix, plus optional embedding neighbours."""

    def __init__(
        self,
        interactions: Interactions,
        ease: EASE | None = None,
        weights: dict[str, float] | None = None,
        cold_weights: dict[str, float] | None = None,
        knn: ItemKNN | None = None,
    ):
        self.interactions = interactions
        self.ease = ease or EASE().fit(interactions)
        self.knn = knn or ItemKNN().fit(interactions)
        self.weights = weights or DEFAULT_WEIGHTS
        self.cold_weights = cold_weights or COLD_WEIGHTS
        self._popular = top_ids(interactions.items, interactions.popularity.astype(np.float32), set(), 10 * LIST_DEPTH)

    def ranked_lists(
        self, history: list[str], embedding_neighbours: list[str] | None = None, prior: list[str] | None = None
    ) -> dict[str, list[str]]:
        """Each retriever's own ranking of unconsumed items, best first; `prior` is a ranking from outside
        (the nearest segment's interests for a user with little history)."""
        consumed = set(history)
        vector = self.interactions.vector(history)
        lists = {"pop": [i for i in self._popular if i not in consumed][:LIST_DEPTH]}
        if vector.any():
            items = self.interactions.items
            lists["ease"] = top_ids(items, self.ease.scores(vector), consumed)
            lists["itemknn"] = top_ids(items, self.knn.scores(vector), consumed)
        if embedding_neighbours:
            lists["embed"] = [i for i in embedding_neighbours if i not in consumed][:LIST_DEPTH]
        if prior:
            lists["segment"] = [i for i in prior if i not in consumed][:LIST_DEPTH]
        return lists

    def popular(self) -> list[str]:
        return list(self._popular)

    def candidates(
        self,
        history: list[str],
        embedding_neighbours: list[str] | None = None,
        n: int = 50,
        prior: list[str] | None = None,
    ) -> list[Candidate]:
        """Fused candidates; a user with little history leans on popularity, text similarity and the prior."""
        weights = self.cold_weights if len(set(history)) <= COLD_START_MAX else self.weights
        return fuse(self.ranked_lists(history, embedding_neighbours, prior), weights)[:n]
