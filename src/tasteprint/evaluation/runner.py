"""`tasteprint eval`: run the evaluation protocols, summarise each method's metrics and LLM stages,
and write results.json (the plots and report.md come from `evaluation.report`)."""

from __future__ import annotations

import json
import os
import platform
import random
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import numpy as np
from rich.console import Console

from tasteprint.api import Tasteprint
from tasteprint.config import Settings
from tasteprint.errors import TasteprintError
from tasteprint.llm import CachedBackend, LLMBackend
from tasteprint.models import Event, FitConfig, Item
from tasteprint.profile.facts import label_shares
from tasteprint.progress import LoggedProgress
from tasteprint.recommend.recommender import Recommender
from tasteprint.storage.embeddings import item_text

from .methods import (
    ASPECT_ABLATION,
    CLASSICAL,
    LLM_METHODS,
    READ_NO_VECTORS,
    EvalContext,
    UserOutcome,
    run_method,
)
from .report import render_report, write_plots
from .split import Split, leave_last_out, random_split
from .stated import stated_outcomes, stated_ratios
from .summary import benchmark_figures, paired_gain, stage_metrics, summarise
from .tasks import PROTOCOLS, Task, build_tasks, histories

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
    stated = "stated" in config.protocols  # reads each statement with the model
    context = _context(data, loo, config, settings, wants_llm or stated)
    evaluated = loo.evaluated_users()
    sample = sorted(random.Random(config.seed).sample(evaluated, min(config.sample, len(evaluated))))
    with LoggedProgress(console=console) as progress:
        tasks, without_aspects = _fit(data, config, context, wants_llm and settings.rerank_blend is None, progress)
        results, per_user = _run_methods(tasks, without_aspects, data, config, context, sample, progress)
        if stated:
            per_user |= _run_stated(data, loo, tasks, config, context, sample, results)
    document = _document(data, loo, tasks, config, settings, sample, wants_llm or stated)
    if stated:
        document["stated"] = stated_ratios(per_user, config.k)
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


def _run_stated(
    data: EvalData, loo: Split, tasks: list[Task], config: EvalConfig, context: EvalContext, sample, results
) -> dict[tuple[str, str], list[UserOutcome]]:
    """The `stated` protocol on the sample, ranked by the `loo` fit (fitted here when `loo` is not run);
    its summary rows are added to `results`."""
    fitted = next((t.recommender for t in tasks if t.protocol == "loo"), None)
    if fitted is None:
        fitted = Recommender(FitConfig(target="next", seed=config.seed))
        labels = {i: item.labels() for i, item in data.items.items()}
        known = {u: loo.history_for_test(u) for u in loo.train}
        fitted.fit(histories(known), data.vectors, labels)
    workspace = data.tp.services.workspace
    users = [u for u in sample if u in loo.test]
    outcomes = stated_outcomes(
        loo, users, fitted, data.items, workspace.label_items(), context.global_shares, context.stages.llm, config.k
    )
    counts = dict(zip(fitted.interactions.items, fitted.interactions.popularity))
    popularity = np.array([counts.get(i, 0) for i in data.catalogue], dtype=np.float32)
    for method, outs in outcomes.items():
        results += summarise(
            method, "stated", outs, config.k, "sample", len(data.catalogue), popularity, data.catalogue
        )
    return {(method, "stated"): outs for method, outs in outcomes.items()}


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


def vectors_without_aspects(
    vectors: dict[str, np.ndarray], items: dict[str, Item], plain_items: dict[str, Item], embed
) -> dict[str, np.ndarray]:
    """Item vectors as they would be without aspect mining: items it changed are embedded again from
    their text before it; the others keep their vectors."""
    changed = sorted(i for i in items if plain_items[i] is not items[i])
    fresh = dict(zip(changed, embed([item_text(plain_items[i]) for i in changed]))) if changed else {}
    return {i: fresh.get(i, vector) for i, vector in vectors.items()}
