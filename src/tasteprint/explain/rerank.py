"""LLM rerank of retrieved candidates, with an explanation per pick that cites the user's own history.

The model rates every candidate's fit (1-5) and cites one history item for it. The grammar has exactly
one slot per candidate id, and for each candidate only the history items nearest to it, so an
invented item, a duplicate, a skipped candidate or an unrelated citation cannot be generated.
One pass by default; `passes=2` counters position bias by judging again in reversed order and
averaging the two rankings. The final order blends the LLM's rank with the retrieval rank, so the
LLM can help but not wreck the ranking; `tune_blend` chooses its weight on validation users. If the
LLM fails, the retrieval order stands, with deterministic explanations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
from pydantic import BaseModel, Field, RootModel, model_validator

from tasteprint.errors import LLMError
from tasteprint.llm import LLMContext, generate
from tasteprint.llm.prompting import chat
from tasteprint.models import Item, Recommendation, UserFacts, UserProfile
from tasteprint.recommend.metrics import mean_ci95, ndcg_at_k
from tasteprint.recommend.recommender import Recommender, RerankTuner
from tasteprint.recommend.retrievers import LIST_DEPTH, Candidate
from tasteprint.recommend.validation import Case

from .evidence import explanation_text, positive_history

# Untuned, the LLM only explains: each time the blend was tuned on validation (ml-latest-small, the
# embedded model) it chose 0.0, and an untuned weight on a judge no better than chance would only
# blur the fitted order.
DEFAULT_BLEND = 0.0
HISTORY_IN_PROMPT = 12
BLEND_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # blend weights tried on validation (`tune_blend`)
# The judge returns the LLM's rank (0 = best) of each pooled item for one user's history.
Judge = Callable[[str, list[str], list[str]], dict[str, float]]


FIT_SCALE = [1, 2, 3, 4, 5]


class Judgement(BaseModel):
    fit: int = Field(ge=1, le=5)
    because: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _compact(cls, value: object) -> object:
        """Judgements travel compactly, to halve the tokens decoded: `4` (fit only) or "4:553" (fit and
        the cited history item)."""
        if isinstance(value, int):
            return {"fit": value}
        if isinstance(value, str):
            fit, _, because = value.partition(":")
            return {"fit": fit, "because": because or None}
        return value


class RerankDraft(RootModel[dict[str, Judgement]]):
    """Candidate id -> the model's judgement of it."""


@dataclass
class RerankStats:
    """What happened in one rerank: for the evaluation's error-mode metrics."""

    passes: int = 0
    valid_passes: int = 0
    judgements: int = 0
    out_of_candidates: int = 0
    missing: int = 0
    citations_replaced: int = 0
    fallback: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class RerankResult:
    recommendations: list[Recommendation]
    stats: RerankStats = field(default_factory=RerankStats)
    llm_rank: dict[str, float] = field(default_factory=dict)
    citations: dict[str, str] = field(default_factory=dict)


def blend_order(order: list[str], llm_rank: dict[str, float], blend: float) -> list[tuple[float, str]]:
    """Final (score, id) best first: (1 - blend) * retrieval score + blend * LLM score, each 1 - rank / n.
    Items the LLM did not rank keep their retrieval rank on the LLM side."""
    n = len(order)
    weight = blend if llm_rank else 0.0
    scored = [
        ((1 - weight) * (1 - position / n) + weight * (1 - llm_rank.get(c, position) / n), c)
        for position, c in enumerate(order)
    ]
    return sorted(scored, key=lambda s: (-s[0], order.index(s[1])))


def tune_blend(cases: Sequence, ranked: list[list[str]], judge: Judge) -> tuple[float, dict[str, float]]:
    """The blend weight in `BLEND_GRID` with the best NDCG@10 over validation `cases` (each with `user_id`,
    `history`, `targets`), whose fitted rankings are `ranked`, the LLM ordering each one's top 20
    through `judge`; ties go to the smaller weight. That weight is kept only when its mean gain over 0
    has a 95% interval above 0 (else the blend is 0); the gain, its CI and the best weight are returned."""
    per_case: dict[float, list[float]] = {w: [] for w in BLEND_GRID}
    for case, order in zip(cases, ranked):
        pool, rest = order[:20], order[20:]
        llm_rank = judge(case.user_id, case.history, pool)
        for weight in BLEND_GRID:
            blended = [c for _, c in blend_order(pool, llm_rank, weight)] + rest
            per_case[weight].append(ndcg_at_k(case.targets, blended))
    best = max(BLEND_GRID, key=lambda w: (round(float(np.mean(per_case[w] or [0])), 6), -w))
    mean, half_width = mean_ci95([a - b for a, b in zip(per_case[best], per_case[0.0])])
    # Like every tuned stage, the LLM earns its place only when the paired gain's 95% interval lies above 0.
    earned = mean - half_width > 0
    gain = {"users": len(cases), "best": best, "ndcg_gain": round(mean, 5), "ci95": round(half_width, 5)}
    return (best if earned else 0.0), gain


def blend_tuner(judge: Judge, users: int, progress: Callable[[str], None] = lambda _: None) -> RerankTuner:
    """A `Recommender.fit` tuner that chooses the LLM blend (`tune_blend`) on the check cases of the first
    `users` validation users (each user's case with the longest history), ranked by the recommender as
    fitted on the training part."""

    def tune(recommender: Recommender, check_cases: list[Case]) -> tuple[float, dict[str, float]]:
        latest = {c.user_id: c for c in check_cases}
        cases = list(latest.values())[:users]
        progress(f"tuning the LLM blend on {len(cases)} validation users")
        ranked = [[x.item_id for x in recommender.recommend(c.history, n=LIST_DEPTH)] for c in cases]
        return tune_blend(cases, ranked, judge)

    return tune


def _schema(candidate_ids: list[str], evidence: dict[str, list[str]], cite: bool) -> dict:
    """One required slot per candidate: a fit from 1 to 5, or with `cite` "fit:history id" where the id
    is one of that candidate's own nearest history items."""
    judged = [c for c in candidate_ids if evidence.get(c)]

    def judgement(c: str) -> dict:
        if not cite:
            return {"enum": FIT_SCALE}
        return {"enum": [f"{fit}:{h}" for fit in FIT_SCALE for h in evidence[c]]}

    return {"type": "object", "properties": {c: judgement(c) for c in judged}, "required": judged}


def _messages(
    facts: UserFacts,
    profile: UserProfile | None,
    order: list[str],
    items: dict[str, Item],
    prompts_dir=None,
    cite: bool = True,
) -> list[dict[str, str]]:
    liked = sorted(positive_history(facts), key=lambda i: (-facts.item_ratings.get(i, 0), i))[:HISTORY_IN_PROMPT]
    return chat(
        "rerank_system.j2",
        "rerank_user.j2",
        prompts_dir,
        user_id=facts.user_id,
        cite=cite,
        summary=profile.summary if profile else "",
        interests=profile.interests if profile else [],
        history=[
            {"item_id": i, "title": facts.item_titles.get(i, i), "rating": facts.item_ratings.get(i)} for i in liked
        ],
        candidates=[
            {
                "item_id": c,
                "title": items[c].title if c in items else c,
                "labels": sorted(items[c].labels())[:5] if c in items else [],
            }
            for c in order
        ],
    )


def _one_pass(order, facts, profile, items, evidence, llm: LLMContext, stats, cite):
    """One LLM judgement of the candidates in `order`. Returns (ranked ids, citation per id)."""
    stats.passes += 1
    result = generate(
        llm.backend,
        _messages(facts, profile, order, items, llm.prompts_dir, cite),
        RerankDraft,
        schema=_schema(order, evidence, cite),
        max_tokens=(16 if cite else 10) * len(order) + 40,
        temperature=llm.temperature,
    )
    stats.valid_passes += 1
    stats.prompt_tokens += result.prompt_tokens
    stats.completion_tokens += result.completion_tokens
    stats.seconds += result.seconds
    judgements = result.value.root
    cites: dict[str, str] = {}
    fits: dict[str, int] = {}
    for item_id, judgement in judgements.items():
        stats.judgements += 1
        if item_id not in evidence:
            stats.out_of_candidates += 1
            continue
        fits[item_id] = judgement.fit
        if not cite:
            continue
        if judgement.because in evidence[item_id]:
            cites[item_id] = judgement.because
        else:
            stats.citations_replaced += 1
            cites[item_id] = evidence[item_id][0]
    stats.missing += sum(1 for c in order if c not in fits)
    # Best fit first; ties, and candidates the model skipped, keep the retrieval order.
    ranked = sorted(order, key=lambda c: (-fits.get(c, 0), order.index(c)))
    return ranked, cites


class RerankOptions(TypedDict, total=False):
    """`rerank`'s list length (`k`), `blend` and co-like counts (`together`), passed through by callers."""

    k: int
    blend: float
    together: Mapping[str, Mapping[str, int]] | None


def rerank(
    facts: UserFacts,
    profile: UserProfile | None,
    candidates: list[Candidate],
    items: dict[str, Item],
    evidence: dict[str, list[str]],
    llm: LLMContext,
    *,
    k: int = 10,
    blend: float = DEFAULT_BLEND,
    passes: int = 1,
    together: Mapping[str, Mapping[str, int]] | None = None,
) -> RerankResult:
    """Order `candidates` (already in retrieval order, none consumed) and explain the top k.

    Args:
        evidence: candidate id -> the history items allowed as its citation, best first.
        llm: the model and how to ask it; a backend of None keeps the retrieval order (the `--no-rerank`
            path), as does blend 0.
        blend: weight of the LLM rank in the final score (0 = retrieval only, 1 = LLM only).
        passes: 2 judges the candidates again in reversed order and averages the ranks, against the
            model's position bias; it doubles the cost.
        together: candidate id -> history item -> how many other people consumed both, for the
            sentence of a pick cited by co-consumption alone.
    """
    stats = RerankStats()
    order = list(dict.fromkeys(c.item_id for c in candidates))
    llm_rank: dict[str, float] = {}
    cites: dict[str, str] = {}
    # At blend 0 the LLM's ranks would count for nothing, so it is not asked; citations then come from
    # the evidence order.
    if llm.backend is not None and order and blend > 0:
        try:
            ranks: dict[str, list[int]] = {c: [] for c in order}
            # The second pass (reversed order) only re-judges fit; citations come from the first.
            for pass_order, cite in ((order, True), (order[::-1], False))[:passes]:
                ranked, pass_cites = _one_pass(pass_order, facts, profile, items, evidence, llm, stats, cite)
                for c, citation in pass_cites.items():
                    cites.setdefault(c, citation)
                for position, c in enumerate(ranked):
                    ranks[c].append(position)
            llm_rank = {c: sum(r) / len(r) for c, r in ranks.items()}
        except LLMError as exc:
            stats.fallback = f"{type(exc).__name__}: {exc.message}"
            llm_rank, cites = {}, {}
    scored = blend_order(order, llm_rank, blend)
    sources = {c.item_id: c for c in candidates}
    recommendations = []
    for score, c in scored[:k]:
        cited = [cites[c]] if c in cites else evidence.get(c, [])[:2]
        recommendations.append(
            Recommendation(
                item_id=c,
                title=items[c].title if c in items else c,
                score=round(score, 4),
                explanation=explanation_text(facts, items.get(c), cited, (together or {}).get(c)),
                evidence=cited,
                sources={name: float(rank) for name, rank in sources[c].ranks.items()}
                | ({"llm": llm_rank[c]} if c in llm_rank else {}),
            )
        )
    return RerankResult(recommendations, stats, llm_rank, cites)
