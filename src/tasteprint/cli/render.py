"""Rich rendering of what the CLI prints: tables for ingest, fit, profiles, versions, diffs and picks."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasteprint.models import (
    Explanation,
    FitReport,
    IngestReport,
    ProfileDiff,
    ProfileEdit,
    Recommendation,
    UserProfile,
)

console = Console()


def print_fit(report: FitReport) -> None:
    table = Table(title="fitted recommender", show_header=False)
    rows = {
        "data": f"{report.users} users, {report.items} items, {report.interactions} interactions",
        "retrievers": ", ".join(report.retrievers),
        "recency": f"half-life {report.half_life} items, plain-history mix {report.plain_mix}",
        "item labels": ", ".join(f"{name} {weight}" for name, weight in report.label_weights.items()) or "none",
        "ranker": report.ranker + ("" if report.ranker == "lambdamart" else f" {report.fusion_weights}"),
        f"validation NDCG@10 ({report.validation_users} users, {report.target})": ", ".join(
            f"{name} {value:.4f}" for name, value in report.validation.items()
        ),
        "more of a label": f"rises by {report.more_boost:g} beyond the floor (3 of 10)",
        "LLM blend": "not tuned" if report.rerank_blend is None else f"{report.rerank_blend} {report.rerank_gain}",
        "cost": f"{report.seconds} s, peak RSS {report.peak_rss_mb} MB",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def print_ingest(report: IngestReport) -> None:
    table = Table(title=f"ingest ({report.format})", show_header=False)
    for key in ("accepted", "duplicates", "rejected", "items"):
        table.add_row(key, str(getattr(report, key)))
    console.print(table)
    if report.errors:
        errors = Table(title="rejected records (first 20)")
        for column in ("file", "line", "reason"):
            errors.add_column(column)
        for error in report.errors[:20]:
            errors.add_row(Path(error.file).name, str(error.line), error.reason)
        console.print(errors)
        reasons = ", ".join(f"{reason}: {n}" for reason, n in report.rejected_by_reason().items())
        console.print(f"rejected by reason: {reasons}")


def print_history(versions: list[UserProfile], as_json: bool) -> None:
    rows = [
        {
            "version": p.version,
            "created_at": p.created_at.isoformat(timespec="seconds"),
            "prompt": p.prompt,
            "based_on": p.based_on,
            "events": p.n_events,
            "interests": [i.label for i in p.interests],
            "model": p.model,
        }
        for p in versions
    ]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="profile versions")
    for column in ("version", "created", "prompt", "from", "events", "interests", "model"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["version"]),
            r["created_at"],
            r["prompt"],
            str(r["based_on"] or "-"),
            str(r["events"]),
            ", ".join(r["interests"]),
            r["model"],
        )
    console.print(table)


def print_diff(change: ProfileDiff, as_json: bool) -> None:
    if as_json:
        print(change.model_dump_json())
        return
    console.print(
        f"[bold]User {change.user_id}[/]: v{change.old_version} -> v{change.new_version}, "
        f"{change.new_events} new events"
    )
    table = Table(show_header=True)
    table.add_column("change")
    table.add_column("label")
    table.add_column("weight")
    for label in change.added:
        table.add_row("[green]+ interest[/]", label, "")
    for label in change.dropped:
        table.add_row("[red]- interest[/]", label, "")
    for label, (old, new) in change.reweighted.items():
        table.add_row("~ re-weighted", label, f"{old:.2f} -> {new:.2f}")
    for label in change.dislikes_added:
        table.add_row("[green]+ dislike[/]", label, "")
    for label in change.dislikes_dropped:
        table.add_row("[red]- dislike[/]", label, "")
    for edit in change.edits_added:
        table.add_row("[green]+ edit[/]", edit, "")
    for edit in change.edits_removed:
        table.add_row("[red]- edit[/]", edit, "")
    console.print(table if change.changed else "no interest, dislike or edit changed")
    console.print(f"summary {'changed' if change.summary_changed else 'unchanged'}")


def print_profile(result: UserProfile, titles: dict[str, str]) -> None:
    origin = f" (update of v{result.based_on})" if result.based_on else ""
    console.print(f"[bold]User {result.user_id}[/] - profile v{result.version}{origin} by {result.model}")
    console.print(result.summary)
    table = Table(title="interests")
    for column in ("label", "weight", "evidence", "platforms"):
        table.add_column(column)
    for interest in result.interests:
        evidence = "; ".join(f"{titles.get(i, i)} [{i}]" for i in interest.evidence)
        table.add_row(interest.label, f"{interest.weight:.2f}", evidence, ", ".join(interest.platforms))
    console.print(table)
    if result.dislikes:
        dislikes = Table(title="dislikes")
        dislikes.add_column("label")
        dislikes.add_column("evidence")
        for dislike in result.dislikes:
            dislikes.add_row(dislike.label, "; ".join(f"{titles.get(i, i)} [{i}]" for i in dislike.evidence))
        console.print(dislikes)
    if result.edits:
        print_edits(result.edits, titles)
    for key, value in result.context.items():
        console.print(f"[dim]{key}:[/] {value}")
    v = result.verification
    console.print(
        f"[dim]verification: {v.interests_kept}/{v.interests_proposed} interests, {v.dislikes_kept}/"
        f"{v.dislikes_proposed} dislikes kept, {v.evidence_dropped}/{v.evidence_proposed} evidence ids dropped, "
        f"summary {'replaced' if v.summary_replaced else 'kept'}[/]"
    )


def print_edits(edits: list[ProfileEdit], titles: dict[str, str]) -> None:
    table = Table(title="your edits (kept through every rebuild)")
    for column in ("kind", "names", "at"):
        table.add_column(column)
    for edit in edits:
        names = f"{titles.get(edit.item_id, edit.item_id)} [{edit.item_id}]" if edit.item_id else edit.target
        table.add_row(edit.kind.replace("_", " "), names, edit.at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


def print_recommendations(user_id: str, recommendations: list[Recommendation], titles: dict[str, str]) -> None:
    table = Table(title=f"recommendations for user {user_id}")
    for column in ("#", "item", "score", "why", "evidence"):
        table.add_column(column)
    for n, r in enumerate(recommendations, start=1):
        evidence = "; ".join(f"{titles.get(i, i)} [{i}]" for i in r.evidence)
        table.add_row(str(n), f"{r.title} [{r.item_id}]", f"{r.score:.3f}", r.explanation, evidence)
    console.print(table)


def print_batch(ids: list[str], batch) -> None:
    """One row per user of a `profile_many` batch: version, and built, reused or why it failed."""
    table = Table(title=f"profiled {len(ids)} users")
    for column in ("user", "version", "status"):
        table.add_column(column)
    for user_id in ids:
        done = batch.profiles.get(user_id)
        status = "reused" if user_id in batch.reused else "built" if done else batch.failures[user_id]
        table.add_row(user_id, str(done.version) if done else "-", status)
    console.print(table)


def print_explanation(user_id: str, explanation: Explanation, titles: dict[str, str]) -> None:
    console.print(f"[bold]{explanation.title}[/] for user {user_id}")
    console.print(explanation.sentence)
    console.print("evidence: " + "; ".join(f"{titles.get(i, i)} [{i}]" for i in explanation.evidence))
    if explanation.shared_labels:
        console.print("shared labels: " + ", ".join(explanation.shared_labels))
    console.print(f"[dim]grounded: {explanation.grounded}; written by the LLM: {explanation.by_llm}[/]")


def print_segments(result) -> None:
    silhouette = f"{result.silhouette:.3f}" if result.silhouette is not None else "-"
    table = Table(title=f"{result.k} segments (silhouette {silhouette})")
    for column in ("#", "size", "description", "top interests (share of members)", "by"):
        table.add_column(column)
    for s in result.segments:
        interests = ", ".join(f"{i.label} {i.share:.0%}" for i in s.top_interests)
        table.add_row(str(s.segment_id), str(s.size), s.description, interests, "LLM" if s.by_llm else "data")
    console.print(table)


def print_eval(document: dict, report: Path) -> None:
    """The NDCG@10 rows of an evaluation, with their confidence intervals."""
    table = Table(title=f"NDCG@10 ({report})")
    for column in ("protocol", "method", "population", "users", "NDCG@10", "95% CI"):
        table.add_column(column)
    for r in document["results"]:
        if r["metric"] == "ndcg@10":
            figures = (str(r["n_users"]), f"{r['value']:.4f}", f"± {r['ci95']:.4f}")
            table.add_row(r["protocol"], r["method"], r["population"], *figures)
    console.print(table)
