"""The evaluation's written report: PNG plots (NDCG by method, by history length, latency by stage)
and report.md, both from the results document `report.run_eval` builds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .methods import LLM_METHODS


def write_plots(out: Path, results: list[dict], per_user: dict, k: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    metric = f"ndcg@{k}"
    rows = [r for r in results if r["metric"] == metric and r["population"] == "sample"]
    protocols = sorted({r["protocol"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if rows:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(protocols)), 4))
        width = 0.8 / max(len(methods), 1)
        for n, method in enumerate(methods):
            values = {r["protocol"]: r for r in rows if r["method"] == method}
            xs = [p + n * width for p in range(len(protocols))]
            ax.bar(
                xs,
                [values[p]["value"] if p in values else 0 for p in protocols],
                width,
                yerr=[values[p]["ci95"] if p in values else 0 for p in protocols],
                label=method,
                capsize=2,
            )
        ax.set_xticks([p + width * (len(methods) - 1) / 2 for p in range(len(protocols))], protocols)
        ax.set_ylabel(f"NDCG@{k} (sample users, 95% CI)")
        ax.legend(fontsize=7)
        save(fig, "ndcg_by_method.png")
    loo = {m: os_ for (m, p), os_ in per_user.items() if p == "loo"}
    if loo:
        fig, ax = plt.subplots(figsize=(6, 4))
        lengths = sorted(o.history_length for os_ in loo.values() for o in os_)
        edges = np.unique(np.quantile(lengths, [0, 0.25, 0.5, 0.75, 1.0]))
        for method, outcomes in loo.items():
            xs, ys = [], []
            for lo, hi in zip(edges[:-1], edges[1:]):
                values = [o.metrics(k, "loo")[metric] for o in outcomes if lo <= o.history_length <= hi]
                if values:
                    xs.append((lo + hi) / 2)
                    ys.append(np.mean(values))
            ax.plot(xs, ys, marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("history length (items, quartile bins)")
        ax.set_ylabel(f"NDCG@{k} (loo)")
        ax.legend(fontsize=7)
        save(fig, "ndcg_by_history_length.png")
    stages = defaultdict(list)
    for (method, _), outcomes in per_user.items():
        if method in LLM_METHODS:
            for stage in ("profile", "retrieve", "rerank", "reasons"):
                stages[(method, stage)] += [o.seconds.get(stage, 0.0) for o in outcomes]
    if stages:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = [f"{m}\n{s}" for m, s in stages]
        ax.bar(labels, [np.mean(v) for v in stages.values()])
        ax.set_ylabel("seconds per user (mean)")
        plt.setp(ax.get_xticklabels(), fontsize=7)
        save(fig, "latency_by_stage.png")
    return written


def render_report(document: dict, plots: list[str], k: int) -> str:
    """report.md: the run's setting, each protocol's table, the LLM stages' table and the plots."""
    lines = _header(document, k) + [
        "",
        "Classical methods are reported on all evaluated users and on the LLM sample; LLM methods "
        "on the sample. Values are means with 95% confidence half-widths.",
        "",
    ]
    lines += _metric_tables(document["results"])
    if document["llm_stages"]:
        lines += _stage_table(document["llm_stages"])
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _header(document: dict, k: int) -> list[str]:
    hw, bench, data = document["hardware"], document["benchmarks"], document["data"]
    lines = [
        f"# tasteprint evaluation: {document['config']['path']}",
        "",
        f"- hardware: {hw['machine']}, {hw['cpus']} CPUs, Python {hw['python']}",
        f"- model: {document['model'] or 'none (classical methods only)'}",
        f"- rerank decode speed: {bench['rerank_completion_tokens_per_s']} tokens/s; LLM users/minute: "
        f"{bench['llm_users_per_minute']}; wall time {bench['wall_seconds']} s",
        f"- LLM response cache: {document['llm_cache'] or 'not used'} (hits are calls replayed from an earlier run)",
        f"- data: {data['events']} events, {data['items']} items, {data['users']} users "
        f"({data['evaluated_users']} evaluated by loo); LLM sample: {len(data['sample'])} users; seed "
        f"{document['config']['seed']}",
    ]
    for protocol, fit in document["fits"].items():
        gain = fit["rerank_gain"]
        lines.append(
            f"- {protocol} fit ({fit['target']} target, {fit['validation_users']} validation users, "
            f"{fit['seconds']} s): ranker {fit['ranker']}, half-life {fit['half_life']}, plain mix "
            f"{fit['plain_mix']}, fusion weights {fit['fusion_weights']}, validation NDCG@10 {fit['validation']}, "
            f"LLM blend {fit['rerank_blend']}" + (f" (gain {gain['ndcg_gain']} ± {gain['ci95']})" if gain else "")
        )
    paired = [
        ("llm_contribution", "LLM", "tasteprint minus hybrid (the same recommender without the rerank)"),
        ("aspect_contribution", "Aspect", "hybrid minus hybrid-noaspects (fitted on the catalogue before mining)"),
    ]
    if stated := document.get("stated"):
        lines.append(
            f"- stated ({stated['users']} users, ranked from a sentence alone): NDCG@{k} {stated['ndcg']['stated']}, "
            f"{stated['vs_pop']}x popularity, {stated['vs_itemknn_seeded']}x item-kNN seeded with the same two titles"
        )
    for key, what, difference in paired:
        for row in document.get(key, []):
            lines.append(
                f"- {what} contribution on {row['protocol']}: {difference}, NDCG@{k} paired on {row['users']} "
                f"users: {row['ndcg_gain']:+.4f} ± {row['ci95']:.4f}"
            )
    return lines


def _metric_tables(results: list[dict]) -> list[str]:
    """One table per protocol: a row per (method, population), a column per metric."""
    by_protocol = defaultdict(list)
    for row in results:
        by_protocol[row["protocol"]].append(row)
    lines = []
    for protocol, rows in by_protocol.items():
        metrics = list(dict.fromkeys(r["metric"] for r in rows))
        lines += [
            f"## {protocol}",
            "",
            "| method | users | population | " + " | ".join(metrics) + " |",
            "|---|---:|---|" + "---:|" * len(metrics),
        ]
        keys = list(dict.fromkeys((r["method"], r["population"]) for r in rows))
        for method, population in keys:
            cells = {r["metric"]: r for r in rows if r["method"] == method and r["population"] == population}
            n = next(iter(cells.values()))["n_users"]
            values = [f"{cells[m]['value']:.4f} ± {cells[m]['ci95']:.4f}" if m in cells else "" for m in metrics]
            lines.append(f"| {method} | {n} | {population} | " + " | ".join(values) + " |")
        lines.append("")
    return lines


_RATE_COLUMNS = (
    "json_validity_rate",
    "out_of_candidate_rate",
    "duplicate_rate",
    "consumed_item_rate",
    "explanation_pass_rate",
    "explanation_grounding_rate",
    "uncited_rate",
    "explanation_faithfulness_rate",
    "fallback_rate",
    "profile_claim_drop_rate",
    "summary_replaced_rate",
)


def _stage_table(stages: list[dict]) -> list[str]:
    lines = [
        "## LLM stages",
        "",
        "| method | protocol | users | JSON valid | out of candidates | duplicates | "
        "consumed | explanations pass | grounded (cited) | uncited | faithful | reasons kept/replaced | "
        "fallback | claims dropped | summaries replaced | tokens/user | s/user |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in stages:
        rates = ["-" if s[name] is None else f"{s[name]:.3f}" for name in _RATE_COLUMNS]
        cells = [
            s["method"],
            s["protocol"],
            str(s["users"]),
            *rates[:8],
            f"{s['reasons']['kept']}/{s['reasons']['replaced']}" if s["reasons"]["requested"] else "-",
            *rates[8:],
            f"{s['tokens_per_user']:.0f}",
            f"{s['seconds_per_user']['total']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
