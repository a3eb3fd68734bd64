"""The fitted recommender: what `recommend`, `explain`, `chat` and `eval` all rank with.

`Recommender.fit` takes each user's item history in time order (ties in file order) and:
1. holds out validation targets of sampled users from the *training* data (`next`: each of the last
   3 items, predicted from what came before it, while at least 4 items come before; `random`: a
   random fifth of the items; `both`, the default: the two, where a setting must keep long-term
   taste before its next-item gain counts, see `validation.objective`) and fits the retrievers on
   the rest;
2. chooses the leading retriever (EASE with its L2 penalty, ALS, or item-kNN), how strongly item
   labels count as side information (`retrieve.with_labels`) and how strongly recent items count (a
   half-life in items, mixed with the plain history) by that retriever's NDCG@10 on those targets;
3. chooses the ranking stage: reciprocal-rank fusion with weights tuned on one half of the users,
   LightGBM LambdaMART trained on the same half, or the leading retriever alone, whichever scores
   best on the other half;
4. chooses how strongly items of a label a person asks more of rise (`wanted.choose_more_boost`);
5. optionally takes the LLM rerank blend from a tuner given the validation cases (the tuner lives
   above this package: nothing here calls a language model);
6. refits the retrievers on everything and keeps the choices (`persistence` keeps it in a store).

The main retriever is EASE up to `ease_max_items` items with at least 2 interactions, ALS above, so
no dense items x items matrix is built for a large catalogue.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from tasteprint.errors import TasteprintError
from tasteprint.models import FitConfig, FitReport

from .ranking import FUSION_GRID, LEAD_ALONE, Pool, choose_ranker, earns_its_place
from .retrievers import ALS, EASE, Candidate, Embedding, Interactions, ItemKNN, batch_scores, top_indices
from .validation import Case, hold_out, objective, recency_ndcgs, weigh_cases
from .validation import shortlists as validation_shortlists
from .wanted import choose_more_boost

EASE_LAMBDAS = (100.0, 250.0, 500.0, 1000.0)  # EASE's L2 penalty, chosen on validation
# Weights of the item-label rows (`retrieve.with_labels`) tried on validation, per retriever; 0 is always tried.
LABEL_WEIGHTS = {"ease": (1.0, 3.0, 10.0), "itemknn": (0.3, 1.0)}
LABEL_SE = 1.0  # a heavier label weight must gain one standard error on validation (the one-standard-error rule)
# Given the recommender as fitted before the final refit and its held-out check cases, a tuner returns the
# LLM rerank blend and its validation gain (`explain.rerank.blend_tuner`).
RerankTuner = Callable[["Recommender", list[Case]], tuple[float, dict[str, float]]]


@dataclass
class Ask:
    """One `Recommender.recommend` call's arguments: a history (oldest first), how many picks, items
    to leave out, the candidates to order (None: every item), and the profile vector that joins the
    embedding retriever's query."""

    history: Sequence[str]
    n: int = 20
    exclude: Iterable[str] = ()
    candidates: Sequence[str] | None = None
    profile_vector: np.ndarray | None = None


class Recommender:
    """Retrievers plus a ranking stage, fitted on one set of histories. See the module docstring."""

    def __init__(self, config: FitConfig | None = None):
        self.config = config or FitConfig()
        self.interactions: Interactions | None = None
        self.main: EASE | ALS | None = None
        self.ease_lambda = EASE_LAMBDAS[1]
        self.knn: ItemKNN | None = None
        self.lead_is_knn = False  # which of the two collaborative retrievers leads, chosen on validation
        self.embedding: Embedding | None = None
        self.labels: sparse.csr_matrix | None = None  # items x labels, binary
        self.label_weights = {"ease": 0.0, "itemknn": 0.0}
        self.half_life: float | None = 10.0
        self.plain_mix = 0.3
        self.weights: dict[str, float] = dict(FUSION_GRID[0])
        self.model = None  # the LambdaMART ranker when chosen
        self.rerank_blend: float | None = None
        self.more_boost = 0.0  # how strongly items of a label asked more of rise, chosen on validation
        self.report: FitReport | None = None
        self._baselines: dict[str, EASE | ALS | ItemKNN] = {}

    # -- fitting ------------------------------------------------------------------------------

    @property
    def main_name(self) -> str:
        return "ease" if isinstance(self.main, EASE) else "als"

    @property
    def lead(self) -> tuple[str, EASE | ALS | ItemKNN]:
        return ("itemknn", self.knn) if self.lead_is_knn else (self.main_name, self.main)

    @property
    def second(self) -> EASE | ALS | ItemKNN:
        return self.main if self.lead_is_knn else self.knn

    def _fit_retrievers(self, histories, vectors: dict | None, labels: dict | None) -> None:
        self.interactions = Interactions.from_histories(histories)
        items = self.interactions.items
        self.labels = self.interactions.label_matrix(labels) if labels else None
        if (self.interactions.popularity >= EASE().min_count).sum() <= self.config.ease_max_items:
            main = EASE(self.ease_lambda, label_weight=self.label_weights["ease"])
            self.main = main.fit(self.interactions, self.labels)
        else:
            self.main = ALS(self.config.factors, seed=self.config.seed).fit(self.interactions)
        self.knn = ItemKNN(self.config.neighbours, self.label_weights["itemknn"]).fit(self.interactions, self.labels)
        self.embedding = None
        if vectors and all(i in vectors for i in items):
            self.embedding = Embedding(np.stack([vectors[i] for i in items]))
        self._baselines = {}

    def fit(
        self,
        histories: dict[str, Sequence[str]],
        vectors: dict[str, np.ndarray] | None = None,
        labels: dict[str, Iterable[str]] | None = None,
        tune_rerank: RerankTuner | None = None,
        progress: Callable[[str], None] = lambda _: None,
    ) -> FitReport:
        """Fit on `histories` (user -> item ids, oldest first). `vectors` (item -> embedding) adds the
        embedding retriever; `labels` (item -> labels) the label-affinity feature. `tune_rerank`, given
        the recommender as fitted before the final refit and its held-out check cases, returns the LLM
        rerank blend and its validation gain (the LLM is tuned above this module, which calls none)."""
        started = time.perf_counter()
        if not any(histories.values()):
            raise TasteprintError("nothing to fit: no interactions", hint="ingest a data set first")
        histories = {u: list(h) for u, h in histories.items() if h}
        config = self.config
        self.ease_lambda, self.label_weights = EASE_LAMBDAS[1], {"ease": 0.0, "itemknn": 0.0}  # validation chooses
        cases, inner = hold_out(histories, config.target, config.validation_users, config.seed)
        progress(f"fitting retrievers on {len(inner)} users minus {len(cases)} validation cases")
        self._fit_retrievers(inner, vectors, labels)
        index = self.interactions.item_index
        for case in cases:
            case.wanted = {index[i] for i in case.targets if i in index}
        cases = [c for c in cases if c.wanted]
        users = sorted({c.user_id for c in cases})
        tuning = set(users[: len(users) // 2])  # halves split by user: no user informs both
        tune_cases = [c for c in cases if c.user_id in tuning]
        check_cases = [c for c in cases if c.user_id not in tuning]
        progress(f"choosing recency and ranker on {len(cases)} cases of {len(users)} validation users")
        shortlists = validation_shortlists(cases, self.interactions, config.validation_candidates, config.seed)
        validation = {}
        if len({c.kind for c in cases}) > 1:
            reference = recency_ndcgs(self.main, self.interactions, cases, shortlists)
            validation = {f"{self.main_name} (plain, {kind})": v for kind, v in weigh_cases(cases, reference).items()}
        validation |= self._choose_recency(cases, shortlists)
        pools = [self._pool(c.history, shortlists[n] if shortlists else None) for n, c in enumerate(cases)]
        pool_of = {id(c): pool for c, pool in zip(cases, pools)}
        popularity, config = self.interactions.popularity, self.config
        self.model, self.weights, ranked = choose_ranker(
            tune_cases, check_cases, pool_of, popularity, config.ranker, config.seed
        )
        validation |= ranked
        orders = [pool_of[id(c)].ordered(self._ranking_scores(pool_of[id(c)])) for c in cases]
        self.more_boost, more = choose_more_boost(cases, orders, self.labels)
        validation |= more
        gain = None
        if tune_rerank is not None:
            self.rerank_blend, gain = tune_rerank(self, check_cases)
        progress(f"refitting on all {len(histories)} users")
        self._fit_retrievers(histories, vectors, labels)
        self.report = FitReport(
            users=len(histories),
            items=len(self.interactions.items),
            interactions=int(self.interactions.matrix.nnz),
            target=self.config.target,
            retrievers=list(dict.fromkeys([self.lead[0], self.main_name, "itemknn", "pop"]))
            + (["embed"] if self.embedding else []),
            ease_lambda=self.ease_lambda if isinstance(self.main, EASE) else None,
            label_weights=self.label_weights if self.labels is not None and self.labels.nnz else {},
            half_life=self.half_life,
            plain_mix=self.plain_mix,
            ranker="lambdamart" if self.model is not None else "fusion" if self.weights != LEAD_ALONE else "lead alone",
            fusion_weights=self.weights,
            validation={k: round(v, 5) for k, v in validation.items()},
            validation_users=len(users),
            rerank_blend=self.rerank_blend,
            rerank_gain=gain,
            more_boost=self.more_boost,
            seconds=round(time.perf_counter() - started, 2),
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        )
        return self.report

    def _choose_recency(self, cases: list[Case], shortlists: list[np.ndarray]) -> dict[str, float]:
        """The leading retriever and how it reads a history, by that retriever's NDCG@10 on `cases`:
        EASE at each penalty in `EASE_LAMBDAS` (ALS as it is above the EASE limit), then EASE at the best
        penalty and item-kNN with item-label rows of each weight in `LABEL_WEIGHTS`, each at every
        half-life and plain-history mix. A label weight is taken only when its paired gain over the best
        variant so far exceeds one standard error (on small data a lucky weight wins otherwise). The
        best EASE and item-kNN are kept, the others dropped as we go; ties go to EASE, the plain history."""
        # (is_knn, penalty, label weight, half-life, mix) -> NDCG@10 per case; all 0 when there are no cases
        ndcgs = {
            (is_knn, lam, 0.0, None, 0.0): np.zeros(len(cases))
            for is_knn, lam in ((False, self.ease_lambda), (True, 0.0))
        }

        def score(variant: tuple, retriever) -> np.ndarray:
            for setting, values in recency_ndcgs(retriever, self.interactions, cases, shortlists).items():
                ndcgs[(*variant, *setting)] = values
            scored = (v for k, v in ndcgs.items() if k[:3] == variant)
            return max(scored, key=lambda v: objective(v, cases), default=np.zeros(len(cases)))

        best = {False: (False, self.ease_lambda, 0.0), True: (True, 0.0, 0.0)}
        best_ndcgs = {False: score(best[False], self.main), True: score(best[True], self.knn)}

        def consider(variant: tuple) -> None:
            is_knn, lam, weight = variant
            if is_knn:
                retriever = ItemKNN(self.config.neighbours, weight).fit(self.interactions, self.labels)
            else:
                retriever = EASE(lam, label_weight=weight).fit(self.interactions, self.labels)
            values, current = score(variant, retriever), best_ndcgs[is_knn]
            better = objective(values, cases) > objective(current, cases)
            if (earns_its_place(values, current, LABEL_SE) and better) if weight else better:
                best[is_knn], best_ndcgs[is_knn] = variant, values
                self.knn, self.main = (retriever, self.main) if is_knn else (self.knn, retriever)

        ease = isinstance(self.main, EASE)
        for lam in EASE_LAMBDAS if ease else ():
            if lam != self.ease_lambda:
                consider((False, lam, 0.0))
        if self.labels is not None and self.labels.nnz:
            for weight in LABEL_WEIGHTS["ease"] if ease else ():
                consider((False, best[False][1], weight))
            for weight in LABEL_WEIGHTS["itemknn"]:
                consider((True, 0.0, weight))
        self.ease_lambda = best[False][1]
        self.label_weights = {"ease": best[False][2], "itemknn": best[True][2]}
        kept = [k for k in ndcgs if k[:3] in best.values()]
        choice = max(kept, key=lambda k: (objective(ndcgs[k], cases), not k[0], k[3] is None))
        self.lead_is_knn, _, _, self.half_life, self.plain_mix = choice

        named = {
            f"{self.main_name} (plain history)": (False, EASE_LAMBDAS[1], 0.0, None, 0.0),
            "itemknn (plain history)": (True, 0.0, 0.0, None, 0.0),
            f"{self.lead[0]} (chosen)": choice,
        }
        return {name: float(ndcgs[key].mean()) if len(cases) else 0.0 for name, key in named.items()}

    # -- ranking ------------------------------------------------------------------------------

    def _vectors(self, history: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The history's plain and recency-weighted vectors over the fitted items (`Interactions.vector`)."""
        looked_up = self.interactions.lookup(history)
        plain = self.interactions.vector(history, looked_up=looked_up)
        return plain, plain if self.half_life is None else self.interactions.vector(history, self.half_life, looked_up)

    def _scores(self, plain: np.ndarray, recent: np.ndarray, embedded: np.ndarray | None) -> dict[str, np.ndarray]:
        """Each retriever's score of every fitted item for one history, given as its plain and its
        recency-weighted vector, with the embedding retriever's scores (`embedded`) when it has one."""

        def weighted(retriever) -> tuple[np.ndarray, np.ndarray]:
            """(recency-weighted score mixed with the plain one, plain score)."""
            if self.half_life is None:
                scores = retriever.scores(recent)
                return scores, scores
            scores, whole = batch_scores(retriever, np.stack([recent, plain]))  # one pass over the weights
            return scores + self.plain_mix * whole, whole

        main, main_plain = weighted(self.lead[1])
        scores = {"main": main, "second": weighted(self.second)[0], "pop": self.interactions.popularity}
        if self.half_life is not None:  # the whole history as its own list orders what recency cannot tell apart
            scores["main-plain"] = main_plain
        if embedded is not None:
            scores["embed"] = embedded
        return scores

    def _pool(
        self,
        history: Sequence[str],
        candidates: np.ndarray | None = None,
        exclude: Iterable[str] = (),
        vectors: tuple[np.ndarray, np.ndarray] | None = None,
        embedded: np.ndarray | None = None,
    ) -> Pool:
        """The candidates (given, or the union of every retriever's top list) with their features.
        `vectors` (`_vectors`) and `embedded` (the embedding retriever's scores) when the caller has them."""
        index = self.interactions.item_index
        plain, recent = self._vectors(history) if vectors is None else vectors
        if embedded is None and self.embedding is not None:
            embedded = self.embedding.scores(recent)
        seen = plain > 0
        seen[[index[i] for i in exclude if i in index]] = True
        scores = self._scores(plain, recent, embedded)
        if candidates is None:
            candidates = np.unique(np.concatenate([top_indices(s, seen) for s in scores.values()]))
        ranks = {}
        for source, values in scores.items():
            unseen = np.sort(values[~seen])
            ranks[source] = 1 + len(unseen) - np.searchsorted(unseen, values[candidates], side="right")
        affinity = np.zeros(len(candidates), dtype=np.float32)
        if self.labels is not None and seen.any():
            # The label counts of the seen items as one product over every item: selecting their rows
            # first cost time in proportion to the history.
            profile = (self.labels.T @ seen.astype(np.float32)) / seen.sum()
            affinity = np.asarray(self.labels[candidates] @ profile).ravel().astype(np.float32)
        return Pool(candidates, {s: v[candidates] for s, v in scores.items()}, ranks, len(set(history)), affinity)

    def _ranking_scores(self, pool: Pool) -> np.ndarray:
        if self.model is not None:
            return self.model.predict(pool.features(self.interactions.popularity))
        return pool.fused(self.weights)

    def recommend(
        self,
        history: Sequence[str],
        n: int = 20,
        exclude: Iterable[str] = (),
        candidates: Sequence[str] | None = None,
        profile_vector: np.ndarray | None = None,
    ) -> list[Candidate]:
        """The best `n` unconsumed items for a history (oldest first), or `candidates` in ranked order.
        Candidates the fitted data has never seen rank last, in the order given."""
        return self.recommend_many([Ask(history, n, exclude, candidates, profile_vector)])[0]

    def recommend_many(self, asks: Sequence[Ask]) -> list[list[Candidate]]:
        """`recommend` for each of `asks`, with one scan of the item embeddings for all of them
        (`Embedding.scores_many`): what answering several people at once saves."""
        self._require_fit()
        vectors = [self._vectors(ask.history) for ask in asks]
        embedded = [None] * len(asks)
        if self.embedding is not None:
            embedded = self.embedding.scores_many([recent for _, recent in vectors], [a.profile_vector for a in asks])
        return [self._ranked(*asked) for asked in zip(asks, vectors, embedded, strict=True)]

    def _ranked(self, ask: Ask, vectors: tuple[np.ndarray, np.ndarray], embedded: np.ndarray | None) -> list[Candidate]:
        """`ask`'s picks, given its history's vectors (`_vectors`) and embedding scores."""
        index = self.interactions.item_index
        known = None
        if ask.candidates is not None:
            known = np.array([index[c] for c in ask.candidates if c in index], dtype=int)
        pool = self._pool(ask.history, known, ask.exclude, vectors, embedded)
        scores = self._ranking_scores(pool) if len(pool.items) else np.zeros(0)
        position = {int(item): n for n, item in enumerate(pool.items)}
        result = []
        for item in pool.ordered(scores)[: ask.n]:
            at = position[int(item)]
            ranks = {s: int(pool.ranks[s][at]) for s in pool.ranks}
            result.append(Candidate(self.interactions.items[item], float(scores[at]), ranks))
        unknown = [Candidate(c, float("-inf")) for c in ask.candidates or () if c not in index]
        return result + unknown[: max(0, ask.n - len(result))]

    def single(self, method: str, history: Sequence[str], n: int = 20, candidates: Sequence[str] | None = None):
        """Item ids ranked by one classical retriever on the plain history (the baselines eval compares
        against): `ease`, `als`, `itemknn`, `pop` or `embed`. A baseline the fit did not build is fitted
        on the same interactions the first time it is asked for."""
        self._require_fit()
        vector = self.interactions.vector(history)
        if method == "pop":
            scores = self.interactions.popularity
        elif method == "embed":
            if self.embedding is None:
                raise TasteprintError("the recommender was fitted without item embeddings")
            scores = self.embedding.scores(vector)
        else:
            scores = self._baseline(method).scores(vector)
        index = self.interactions.item_index
        if candidates is None:
            return [self.interactions.items[i] for i in top_indices(scores, vector > 0, n)]
        known = sorted((c for c in candidates if c in index), key=lambda c: (-scores[index[c]], index[c]))
        return known + [c for c in candidates if c not in index]

    def _baseline(self, method: str):
        # The baselines are the classical methods at their usual settings (EASE at lambda 250, no
        # label rows), whatever the fit chose for its own retrievers.
        usual_main = isinstance(self.main, ALS) or (self.main.lam == EASE().lam and not self.main.label_weight)
        if (method == "itemknn" and not self.knn.label_weight) or (method == self.main_name and usual_main):
            return self.knn if method == "itemknn" else self.main
        if method not in self._baselines:
            factories = {
                "ease": EASE,
                "als": lambda: ALS(self.config.factors, seed=self.config.seed),
                "itemknn": lambda: ItemKNN(self.config.neighbours),
            }
            if method not in factories:
                raise TasteprintError(f"unknown retriever {method!r}", hint="ease, als, itemknn, pop or embed")
            self._baselines[method] = factories[method]().fit(self.interactions)
        return self._baselines[method]

    def forget_baselines(self) -> None:
        """Drop the baselines fitted on demand by `single` (they are refitted when asked for again)."""
        self._baselines = {}

    def _require_fit(self) -> None:
        if self.interactions is None:
            raise TasteprintError("the recommender is not fitted", hint="run `tasteprint fit`")
