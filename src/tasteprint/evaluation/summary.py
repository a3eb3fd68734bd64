"""The evaluation's summaries: each method's metrics with confidence intervals, the LLM stages'
error modes, paired gains between methods, and the run's speed figures."""

from __future__ import annotations

from collections import defaultdict

from tasteprint.recommend.metrics import catalogue_coverage, mean_ci95, popularity_bias, rate

from .methods import LLM_METHODS, UserOutcome


def summarise(method, protocol, outcomes, k, population, catalogue_size, popularity, catalogue) -> list[dict]:
    """Mean and 95% CI per metric, plus coverage and popularity bias, as self-describing rows."""
    if not outcomes:
        return []
    columns = defaultdict(list)
    for outcome in outcomes:
        for name, value in outcome.metrics(k, protocol.split("-")[0]).items():
            columns[name].append(value)
    rows = []
    base = {"method": method, "protocol": protocol, "population": population, "n_users": len(outcomes)}
    for name, values in columns.items():
        mean, ci = mean_ci95(values)
        rows.append(base | {"metric": name, "value": round(mean, 5), "ci95": round(ci, 5)})
    lists = [o.ranked[:k] for o in outcomes]
    counts = {item: int(popularity[n]) for n, item in enumerate(catalogue)}
    rows.append(
        base | {"metric": f"coverage@{k}", "value": round(catalogue_coverage(lists, catalogue_size, k), 5), "ci95": 0.0}
    )
    rows.append(base | {"metric": "popularity_bias", "value": round(popularity_bias(lists, counts, k), 5), "ci95": 0.0})
    return rows


def stage_metrics(method: str, protocol: str, outcomes: list[UserOutcome]) -> dict:
    """Error modes of the LLM stages: validity, out-of-candidate, duplicates, consumed, grounding, drops, cost."""
    reranks = [o.rerank for o in outcomes if o.rerank is not None]
    stats = [r.stats for r in reranks]
    profiles = [o.profile for o in outcomes if o.profile is not None]
    audits = [audit for o in outcomes for audit in o.explanation_audit]
    cited_audits = [a for cited, a in audits if cited]
    reasons = [o.reasons for o in outcomes if o.reasons is not None]
    claims = sum(p.verification.claims_proposed for p in profiles)
    return {
        "method": method,
        "protocol": protocol,
        "users": len(outcomes),
        "json_validity_rate": measured(sum(s.valid_passes for s in stats), sum(s.passes for s in stats)),
        "out_of_candidate_rate": measured(sum(s.out_of_candidates for s in stats), sum(s.judgements for s in stats)),
        "duplicate_rate": rate(sum(o.duplicates for o in outcomes), sum(min(len(o.ranked), 10) for o in outcomes)),
        "consumed_item_rate": rate(
            sum(o.consumed_overlap for o in outcomes), sum(min(len(o.ranked), 10) for o in outcomes)
        ),
        # A pick with a citation passes when its text names the user's item and nothing outside; a pick
        # nothing in the history explains keeps the sentence saying what the data shows, which passes
        # when it names no title at all. Those are counted apart from the grounding of cited picks.
        "explanation_pass_rate": measured(
            sum(a.grounded if cited else not (a.names_history or a.names_other) for cited, a in audits), len(audits)
        ),
        "explanation_grounding_rate": measured(sum(a.grounded for cited, a in audits if cited), len(cited_audits)),
        "uncited_rate": measured(len(audits) - len(cited_audits), len(audits)),
        "explanation_faithfulness_rate": measured(sum(a.faithful for _, a in audits), len(audits)),
        "reasons": {
            "requested": sum(r.requested for r in reasons),
            "kept": sum(r.kept for r in reasons),
            "replaced": sum(r.replaced for r in reasons),
            "calls_failed": sum(1 for r in reasons if r.fallback),
        },
        "fallback_rate": measured(sum(1 for s in stats if s.fallback), len(stats)),
        "profile_claim_drop_rate": measured(sum(p.verification.claims_dropped for p in profiles), claims),
        "summary_replaced_rate": measured(sum(p.verification.summary_replaced for p in profiles), len(profiles)),
        "aspect_claims": {
            "proposed": sum(p.verification.aspects_proposed for p in profiles),
            "kept": sum(p.verification.aspects_kept for p in profiles),
        },
        "omissions_repaired": sum(p.verification.omissions_repaired for p in profiles),
        "fidelity": {
            name: mean_defined([o.fidelity.get(name) for o in outcomes])
            for name in ("dominant_recall", "top3_recall", "next_label_hit", "next_label_hit_data_only")
        },
        "tokens_per_user": rate(
            sum(s.prompt_tokens + s.completion_tokens for s in stats)
            + sum(p.prompt_tokens + p.completion_tokens for p in profiles),
            len(outcomes),
        ),
        "seconds_per_user": {
            stage: rate(sum(o.seconds.get(stage, 0.0) for o in outcomes), len(outcomes))
            for stage in ("profile", "retrieve", "rerank", "reasons", "total")
        },
    }


def paired_gain(per_user: dict, k: int, method: str, baseline: str) -> list[dict]:
    """`method` minus `baseline` per protocol, NDCG@k paired on the users both ranked, with the 95% CI
    of the mean: what the LLM adds (tasteprint minus hybrid, the same recommender without the rerank)
    and what aspects add (hybrid minus hybrid-noaspects)."""
    rows = []
    for (name, protocol), outcomes in per_user.items():
        if name != method or (baseline, protocol) not in per_user:
            continue
        alone = {o.user_id: o for o in per_user[(baseline, protocol)]}
        pairs = [(o, alone[o.user_id]) for o in outcomes if o.user_id in alone]
        key = f"ndcg@{k}"
        gains = [a.metrics(k, protocol)[key] - b.metrics(k, protocol)[key] for a, b in pairs]
        mean, half_width = mean_ci95(gains)
        rows.append(
            {"protocol": protocol, "users": len(pairs), "ndcg_gain": round(mean, 5), "ci95": round(half_width, 5)}
        )
    return rows


def mean_defined(values: list[float | None]) -> float | None:
    """Mean of the values that are defined, or None when none is."""
    defined = [v for v in values if v is not None]
    return round(sum(defined) / len(defined), 4) if defined else None


def measured(count: int, total: int) -> float | None:
    """A rate, or None when the stage never ran for this method (shown as "-", not as a false 0)."""
    return rate(count, total) if total else None


def benchmark_figures(per_user: dict, wall_s: float) -> dict:
    reranks = [o.rerank.stats for os_ in per_user.values() for o in os_ if o.rerank]
    tokens = sum(s.completion_tokens for s in reranks)
    seconds = sum(s.seconds for s in reranks)
    llm_users = {o.user_id for (m, _), os_ in per_user.items() if m in LLM_METHODS for o in os_}
    return {
        "wall_seconds": round(wall_s, 1),
        "rerank_completion_tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "llm_users_per_minute": round(len(llm_users) / wall_s * 60, 2) if llm_users else None,
    }
