"""`tasteprint demo`: a slice of MovieLens (or the built-in sample), three profiles, explained picks."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tasteprint.api import Tasteprint
from tasteprint.config import Settings

BUILT_IN = Path(__file__).parents[1] / "demo_data"
SLICE_USERS = 120


def find_movielens(explicit: Path | None) -> Path | None:
    """The MovieLens folder to use: the one given, else ../shared/data/ml-latest-small near the cwd or repo."""
    if explicit is not None:
        return explicit
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = base.parent / "shared" / "data" / "ml-latest-small"
        if (candidate / "ratings.csv").exists():
            return candidate
    return None


def movielens_slice(source: Path, target: Path, max_user: int = SLICE_USERS) -> Path:
    """Write the ratings and tags of users 1..max_user, and the movies they touched, to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    touched: set[str] = set()
    for name in ("ratings.csv", "tags.csv"):
        if not (source / name).exists():
            continue
        with (
            (source / name).open(newline="", encoding="utf-8") as src,
            (target / name).open("w", newline="", encoding="utf-8") as dst,
        ):
            reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
            writer.writerow(next(reader))
            for row in reader:
                if row and row[0].isdigit() and int(row[0]) <= max_user:
                    writer.writerow(row)
                    touched.add(row[1])
    with (
        (source / "movies.csv").open(newline="", encoding="utf-8") as src,
        (target / "movies.csv").open("w", newline="", encoding="utf-8") as dst,
    ):
        reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
        writer.writerow(next(reader))
        writer.writerows(row for row in reader if row and row[0] in touched)
    return target


def run_demo(console: Console, *, data: Path | None, user_ids: list[str], k: int, store=None, **llm_options) -> None:
    start = time.perf_counter()
    settings = Settings.load(store=store, **llm_options)
    demo_store = Path(settings.store) / "demo"
    tp = Tasteprint(settings=settings.model_copy(update={"store": demo_store}))
    movielens = find_movielens(data)
    if movielens is not None:
        source = movielens_slice(movielens, demo_store / "slice")
        label = f"MovieLens slice (users 1-{SLICE_USERS}) from {movielens}"
    else:
        source, label = BUILT_IN, "built-in sample (12 readers, 36 books)"
    report = tp.ingest(source)
    if movielens is None:  # the default ids are MovieLens users; the sample's readers have names
        user_ids = [u for u in user_ids if tp.db.has_user(u)] or ["ana", "ben", "chloe"]
    console.print(
        Panel(
            f"{label}\n{report.accepted} new events ({report.duplicates} already stored), "
            f"{report.rejected} rejected; store {demo_store}",
            title="tasteprint demo",
        )
    )
    with console.status("indexing items (first run only)"):
        tp.index(progress=False)
    for user_id in user_ids:
        profile = tp.profile(user_id)
        facts = tp.facts(user_id)
        result = tp.recommend(user_id, k=k)
        interests = ", ".join(f"{i.label} ({i.weight:.2f})" for i in profile.interests) or "none verified"
        dislikes = ", ".join(d.label for d in profile.dislikes) or "none"
        table = Table(show_header=True, expand=True)
        for column in ("#", "recommended", "why (citing the user's history)"):
            table.add_column(column)
        for n, r in enumerate(result.recommendations, start=1):
            table.add_row(str(n), r.title, r.explanation)
        stats = result.rerank
        note = f"rerank: {stats.fallback or f'{stats.passes} LLM passes, {stats.seconds:.1f}s'}"
        console.print(
            Panel.fit(
                f"[bold]{profile.summary}[/]\ninterests: {interests}\ndislikes: {dislikes}\n"
                f"history: {facts.n_items} items; verification dropped {profile.verification.claims_dropped} of "
                f"{profile.verification.claims_proposed} claims\n[dim]{note}[/]",
                title=f"user {user_id}",
            )
        )
        console.print(table)
    console.print(f"[dim]demo finished in {time.perf_counter() - start:.0f}s on {tp.backend.model_name}[/]")
