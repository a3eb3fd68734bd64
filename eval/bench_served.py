"""Benchmark: what `recommend` serves with default settings, against single classical retrievers on
the same split, in one run, as ratios.

For each split, a store is ingested from DATA, the split's held-out events are removed through the
public API (`forget_item`), the recommender is fitted with default settings (`fit`), and each test
user's `recommend(user, k=10, rerank=False)` is scored by NDCG@10 on their held-out items. Beside it,
each baseline retriever of the same fitted store (`Recommender.single`: pop, itemknn, ease, als) ranks
from the same history.

- `next`: each user's last item held out (leave-last-out in the store's order: timestamp, then file
  order; users with fewer than 3 items keep them all);
- `random`: a seeded random quarter of each user's items (the split `eval --protocol msr` makes).

The last line is JSON: per split, each method's NDCG@10 and the served list's ratio to EASE and to
the best baseline.

    .venv/bin/python eval/bench_served.py ../shared/data/ml-latest-small
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasteprint import Tasteprint
from tasteprint.evaluation.split import leave_last_out, random_split
from tasteprint.progress import LoggedProgress
from tasteprint.recommend.metrics import ndcg_at_k

BASELINES = ("pop", "itemknn", "ease", "als")
K = 10


def held_out(tp: Tasteprint, split: str, seed: int) -> dict[str, set[str]]:
    """Each test user's held-out items. With `next`, only leave_last_out's test item is removed: its
    validation item stays in the store as known history."""
    events = list(tp.db.iter_events())
    return (leave_last_out(events) if split == "next" else random_split(events, seed=seed)).test


def measure(data: str, split: str, sample: int | None, seed: int, console: Console) -> dict:
    tp = Tasteprint(store=Path(tempfile.mkdtemp(prefix=f"bench-served-{split}-")))
    tp.ingest(data)
    test = held_out(tp, split, seed)
    users = sorted(test)
    if sample and sample < len(users):
        users = sorted(random.Random(seed).sample(users, sample))
    with LoggedProgress() as bar:
        task = bar.add_task(f"{split}: holding out", total=len(test))
        for user_id, items in test.items():
            for item_id in items:
                tp.forget_item(user_id, item_id)
            bar.advance(task)
    report = tp.fit(progress=False)
    recommender = tp.recommender()
    scores: dict[str, list[float]] = {m: [] for m in ("served", *BASELINES)}
    with LoggedProgress() as bar:
        task = bar.add_task(f"{split}: ranking", total=len(users))
        for user_id in users:
            served = [r.item_id for r in tp.recommend(user_id, k=K, rerank=False).recommendations]
            scores["served"].append(ndcg_at_k(test[user_id], served))
            history = [e.item_id for e in tp.db.user_events(user_id) if e.kind != "search"]
            for method in BASELINES:
                scores[method].append(ndcg_at_k(test[user_id], recommender.single(method, history, n=K)))
            bar.advance(task)
    means = {m: round(statistics.fmean(v), 5) for m, v in scores.items()}
    best = max(BASELINES, key=lambda m: means[m])
    return {
        "users": len(users),
        "ndcg": means,
        "served_vs_ease": round(means["served"] / means["ease"], 4) if means["ease"] else None,
        "best_baseline": best,
        "served_vs_best": round(means["served"] / means[best], 4) if means[best] else None,
        "fit": {"half_life": report.half_life, "plain_mix": report.plain_mix, "ranker": report.ranker},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="anything `tasteprint ingest` reads")
    parser.add_argument("--splits", default="next,random")
    parser.add_argument("--sample", type=int, default=None, help="test users drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    console = Console(stderr=True)
    started = time.perf_counter()
    figures = {"data": args.data, "seed": args.seed}
    for split in args.splits.split(","):
        figures[split] = measure(args.data, split, args.sample, args.seed, console)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    table = Table(title=f"served vs single retrievers, NDCG@{K}: {args.data}")
    for column in ("split", "users", "served", *BASELINES, "served / ease", "served / best"):
        table.add_column(column)
    for split in args.splits.split(","):
        row = figures[split]
        table.add_row(
            split,
            str(row["users"]),
            *(f"{row['ndcg'][m]:.4f}" for m in ("served", *BASELINES)),
            str(row["served_vs_ease"]),
            f"{row['served_vs_best']} ({row['best_baseline']})",
        )
    console.print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
