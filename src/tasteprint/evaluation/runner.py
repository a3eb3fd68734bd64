"""`tasteprint eval`: run the evaluation protocols, summarise each method's metrics and LLM stages,
and write results.json (the plots and report.md come from `evaluation.report`)."""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import numpy as np
from rich.console import Console

from tasteprint.api import Tasteprint
from tasteprint.config import Settings
from tasteprint.errors import TasteprintError
from tasteprint.llm import CachedBackend, LLMBackend
from tasteprint.models import Event, Item
from tasteprint.profile.facts import label_shares
from tasteprint.progress import LoggedProgress
from tasteprint.recommend.metrics import catalogue_coverage, mean_ci95, popularity_bias, rate
from tasteprint.storage.embeddings import item_text

from .methods import (
    ASPECT_ABLATION,
    CLASSICAL,
    LLM_METHODS,
    PROTOCOLS,
    READ_NO_VECTORS,
    EvalContext,
    Task,
    UserOutcome,
    build_tasks,
    run_method,
)
from .report import render_report, write_plots
from .split import Split, leave_last_out, random_split

TUNING_USERS = 10  # validation users the LLM blend is tuned on


@dataclass
class EvalConfig:
    """What `tasteprint eval` runs; `seed` and `n_candidates` default to the settings' `seed` and
    `candidates`."""

    path: Path
    out: Path
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    methods: list[str] = field(default_factory=lambda: ["random", "pop", "itemknn", "ease", "hybrid", "tasteprint"])
    sample: int = 50  # users drawn at random (with `seed`) for the LLM methods
    seed: int | None = None
    k: int = 10
    n_candidates: int | None = None
    fmt: str | None = None


@dataclass
class EvalData:
    """The ingested data set every protocol splits: its events (time order, ties in file order), items
    and, when a method reads them, item vectors."""

    tp: Tasteprint
    fmt: str
    events: list[Event]
    items: dict[str, Item]
    vectors: dict[str, np.ndarray] | None

    @property
    def catalogue(self) -> list[str]:
        return sorted(self.items)


def run_eval(config: EvalConfig, settings: Settings, console: Console, backend: LLMBackend | None = None) -> dict:
    """Run `config`'s methods on its protocols over a fresh store in `settings.store`, write
    results.json, the plots and report.md into `config.out`, and return the results document.

    Args:
        backend: the language model for the LLM methods (default: the one `settings` name).

    Raises:
        TasteprintError: an unknown method, or data that cannot be read.
    """
    unknown = set(config.methods) - set(CLASSICAL) - set(LLM_METHODS)
    if unknown:
        raise TasteprintError(
            f"unknown method(s): {', '.join(sorted(unknown))}", hint="one of " + ", ".join(CLASSICAL + LLM_METHODS)
        )
    config = replace(
        config,
        seed=settings.seed if config.seed is None else config.seed,
        n_candidates=settings.candidates if config.n_candidates is None else config.n_candidates,
    )
    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    data = _load(config, settings, backend)
    loo = leave_last_out(data.events)
    wants_llm = bool(set(config.methods) & set(LLM_METHODS))
    context = _context(data, loo, config, settings, wants_llm)
    evaluated = loo.evaluated_users()
    sample = sorted(random.Random(config.seed).sample(evaluated, min(config.sample, len(evaluated))))
    with LoggedProgress(console=console) as progress:
        tasks, without_aspects = _fit(data, config, context, wants_llm and settings.rerank_blend is None, progress)
        results, per_user = _run_methods(tasks, without_aspects, data, config, context, sample, progress)
    document = _document(data, loo, tasks, config, settings, sample, wants_llm)
    document |= {
        "benchmarks": benchmark_figures(per_user, time.perf_counter() - started),
        "results": results,
        "llm_stages": [stage_metrics(m, p, o) for (m, p), o in per_user.items() if m in LLM_METHODS],
        "llm_contribution": paired_gain(per_user, config.k, "tasteprint", "hybrid"),
        "aspect_contribution": paired_gain(per_user, config.k, "hybrid", ASPECT_ABLATION),
    }
    (config.out / "results.json").write_text(json.dumps(document, indent=1, default=float))
    plots = write_plots(config.out, results, per_user, config.k)
    (config.out / "report.md").write_text(render_report(document, plots, config.k))
    return document


def _load(config: EvalConfig, settings: Settings, backend: LLMBackend | None) -> EvalData:
    """Ingest the data set, mine aspects from the reviews no protocol holds out (so no test review
    describes its item), and embed the catalogue when a method reads item vectors."""
    tp = Tasteprint(settings=settings, llm=backend)
    report = tp.ingest(config.path, config.fmt)
    events = [e for e in tp.db.iter_events() if e.kind != "search"]
    splits = (leave_last_out(events), random_split(events, seed=config.seed))
    held_out = {(u, i) for split in splits for u, test in split.test.items() for i in test}
    tp.mine_aspects([e for e in events if (e.user_id, e.item_id) not in held_out])
    items = tp.db.items()
    vectors = None
    if settings.fit_embeddings and not set(config.methods) <= set(READ_NO_VECTORS):
        tp.index()
        vectors = tp.vectors.item_vectors(sorted(items))
    return EvalData(tp, report.format, events, items, vectors)


def _context(data: EvalData, loo: Split, config: EvalConfig, settings: Settings, wants_llm: bool) -> EvalContext:
    """What the methods share: label shares of the training part, and the store's LLM stages, evidence
    and profile vectors, as serving uses them."""
    services = data.tp.services
    train_events = [e for es in loo.train.values() for e in es]
    return EvalContext(
        data.items,
        label_shares(train_events, data.items),
        data.tp.embed,
        services.workspace.evidence,
        services.recommending.profile_vector,
        services.workspace.stages() if wants_llm else None,
        n_candidates=config.n_candidates,
        blend=settings.rerank_blend,
        generic_aspects=data.tp.db.generic_aspects(),
    )


def _fit(
    data: EvalData, config: EvalConfig, context: EvalContext, tune_blend: bool, progress: LoggedProgress
) -> tuple[list[Task], dict[str, Task]]:
    """Each protocol's task with its fitted recommender, and (for `hybrid-noaspects`) the same tasks
    fitted on the catalogue before aspect mining."""
    fitting = progress.add_task("fitting", total=None)
    tasks = build_tasks(
        data.events,
        data.catalogue,
        data.vectors,
        {i: item.labels() for i, item in data.items.items()},
        config.protocols,
        config.seed,
        judge=data.tp.services.fitting.judge if tune_blend else None,
        rerank_users=TUNING_USERS if tune_blend else 0,
        progress=lambda message: progress.update(fitting, description=message),
    )
    without_aspects = {task.protocol: task for task in tasks}  # what serves when mining changed no item
    plain_items = context.items_without_aspects if ASPECT_ABLATION in config.methods else data.items
    if any(plain_items[i] is not data.items[i] for i in data.items):
        vectors = data.vectors and vectors_without_aspects(data.vectors, data.items, plain_items, data.tp.embed)
        without_aspects = {
            task.protocol: task
            for task in build_tasks(
                data.events,
                data.catalogue,
                vectors,
                {i: item.labels() for i, item in plain_items.items()},
                config.protocols,
                config.seed,
                progress=lambda message: progress.update(fitting, description=f"without aspects: {message}"),
            )
        }
    progress.remove_task(fitting)
    return tasks, without_aspects


def _run_methods(
    tasks: list[Task],
    without_aspects: dict[str, Task],
    data: EvalData,
    config: EvalConfig,
    context: EvalContext,
    sample: list[str],
    progress: LoggedProgress,
) -> tuple[list[dict], dict[tuple[str, str], list[UserOutcome]]]:
    """Every method on every task: the summary rows, and each (method, protocol)'s per-user outcomes."""
    profiles: dict = {}
    results: list[dict] = []
    per_user: dict[tuple[str, str], list[UserOutcome]] = {}
    catalogue = data.catalogue
    for task in tasks:
        users = task.split.evaluated_users()
        popularity = task.popularity(catalogue)
        for method in config.methods:
            if method == "llm" and not task.protocol.startswith("cand20"):
                continue  # the LLM alone can only order a short candidate list
            chosen = users if method in CLASSICAL else [u for u in sample if u in task.split.test]
            runs_on = without_aspects[task.protocol] if method == ASPECT_ABLATION else task
            outcomes = run_method(method, runs_on, chosen, config.k, config.seed, context, profiles, progress)
            per_user[(method, task.protocol)] = outcomes
            scopes = [("all" if method in CLASSICAL else "sample", outcomes)]
            if method in CLASSICAL and method != "random":
                scopes.append(("sample", [o for o in outcomes if o.user_id in set(sample)]))
            for scope, scoped in scopes:
                results += summarise(
                    method, task.protocol, scoped, config.k, scope, len(catalogue), popularity, catalogue
                )
    return results, per_user


def _document(
    data: EvalData, loo: Split, tasks: list[Task], config: EvalConfig, settings: Settings, sample: list, llm: bool
) -> dict:
    """The results document's description of the run: configuration, data, model, versions, machine, fits."""
    backend = data.tp.backend if llm else None
    cached = isinstance(backend, CachedBackend)
    return {
        "config": {
            "path": str(config.path),
            "protocols": config.protocols,
            "methods": config.methods,
            "sample": config.sample,
            "seed": config.seed,
            "k": config.k,
            "n_candidates": config.n_candidates,
            "rerank_passes": settings.rerank_passes,
            "format": data.fmt,
        },
        "data": {
            "events": len(data.events),
            "items": len(data.items),
            "users": len(loo.train),
            "evaluated_users": len(loo.evaluated_users()),
            "sample": sample,
        },
        "model": backend.model_name if backend else None,
        "versions": {
            name: _version(name)
            for name in ("tasteprint", "llama-cpp-python", "chromadb", "sentence-transformers", "torch", "numpy")
        },
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "fits": {task.protocol: task.recommender.report.model_dump() for task in tasks},
        # A rerun after a crash replays finished LLM calls from the store's cache: hits say how many.
        "llm_cache": {"hits": backend.hits, "misses": backend.misses} if cached else None,
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


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


def vectors_without_aspects(
    vectors: dict[str, np.ndarray], items: dict[str, Item], plain_items: dict[str, Item], embed
) -> dict[str, np.ndarray]:
    """Item vectors as they would be without aspect mining: items it changed are embedded again from
    their text before it; the others keep their vectors."""
    changed = sorted(i for i in items if plain_items[i] is not items[i])
    fresh = dict(zip(changed, embed([item_text(plain_items[i]) for i in changed]))) if changed else {}
    return {i: fresh.get(i, vector) for i, vector in vectors.items()}


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
