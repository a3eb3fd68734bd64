"""Benchmark: ingest, fit and serve a synthetic catalogue far larger than MovieLens.

Builds an events file with power-law item popularity (item of popularity rank r drawn with weight
1 / (r + 10)) and power-law user activity, each user walking mostly near the items they consumed
last, then ingests it into a fresh store, fits the recommender (above `ease_max_items` it uses ALS,
never a dense items x items matrix; embeddings are off, since encoding 200,000 titles is a separate
cost measured by bench_recommend) and serves `recommend(rerank=False)` for sampled users.

    .venv/bin/python eval/bench_scale.py --items 200000 --events 2000000

Prints a table, then the figures as one JSON line: ingest events/s, fit seconds, peak RSS, and
recommend p50/p95.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tasteprint import Tasteprint


def write_events(path: Path, items: int, events: int, users: int, seed: int) -> int:
    """Write `events` JSON lines; returns how many distinct users they cover."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(items) + 10.0)
    popularity /= popularity.sum()
    activity = rng.pareto(1.5, users) + 1.0
    lengths = np.maximum(5, (activity / activity.sum() * events).astype(int))
    written, covered = 0, 0
    with path.open("w") as handle:
        for user, length in enumerate(lengths):
            if written >= events:
                break
            length = min(int(length), events - written)
            jumps = rng.choice(items, size=length, p=popularity)
            # Half the steps stay near the previous item: sequences carry signal, as real ones do.
            local = rng.random(length) < 0.5
            position = int(jumps[0])
            for step in range(length):
                position = (position + int(rng.integers(1, 5))) % items if local[step] else int(jumps[step])
                handle.write(
                    json.dumps(
                        {
                            "user_id": f"u{user}",
                            "item_id": f"i{position}",
                            "kind": "view",
                            "timestamp": 1_600_000_000 + step,
                        }
                    )
                    + "\n"
                )
            written += length
            covered += 1
    return covered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--synthetic-users", type=int, default=60_000)
    parser.add_argument("--serve", type=int, default=200, help="users to time recommend for")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    console = Console(stderr=True)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    data = work / "data"
    data.mkdir()
    start = time.perf_counter()
    users = write_events(data / "events.jsonl", args.items, args.events, args.synthetic_users, args.seed)
    generate_s = time.perf_counter() - start
    console.print(f"generated {args.events} events for {users} users in {generate_s:.0f} s")

    tp = Tasteprint(store=work / "store", fit_embeddings=False)
    start = time.perf_counter()
    report = tp.ingest(data)
    ingest_s = time.perf_counter() - start
    console.print(f"ingested {report.accepted} events in {ingest_s:.0f} s")
    fit = tp.fit(progress=sys.stderr.isatty())
    console.print(f"fitted in {fit.seconds:.0f} s ({fit.ranker}, {fit.retrievers})")

    served = Tasteprint(store=work / "store", fit_embeddings=False)  # a fresh process's view: loads, no refit
    start = time.perf_counter()
    served.recommender(progress=False)
    load_s = time.perf_counter() - start
    sample = random.Random(args.seed).sample(served.users(), min(args.serve, users))
    latencies = []
    for user_id in sample:
        start = time.perf_counter()
        served.recommend(user_id, k=10, rerank=False)
        latencies.append(time.perf_counter() - start)
    figures = {
        "items": fit.items,
        "events": report.accepted,
        "users": fit.users,
        "ingest_events_per_s": round(report.accepted / ingest_s, 1),
        "fit_s": fit.seconds,
        "retrievers": fit.retrievers,
        "ranker": fit.ranker,
        "load_s": round(load_s, 2),
        "recommend_p50_s": round(statistics.median(latencies), 4),
        "recommend_p95_s": round(percentile(latencies, 95), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    table = Table(title=f"bench_scale: {fit.items} items, {report.accepted} events")
    table.add_column("figure")
    table.add_column("value")
    for key, value in figures.items():
        table.add_row(key, str(value))
    console.print(table)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
