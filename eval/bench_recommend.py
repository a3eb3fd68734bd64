"""Benchmark: recommend latency with and without the LLM rerank (p50/p95), Chroma query p50, and
embedding throughput next to raw sentence-transformers on the same texts.

    .venv/bin/python eval/bench_recommend.py --data ../shared/data/ml-latest-small --first 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tasteprint import Tasteprint
from tasteprint.storage.embeddings import item_text


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ml-latest-small")
    parser.add_argument("--first", type=int, default=5)
    parser.add_argument("--texts", type=int, default=2000, help="items to embed for the throughput figure")
    args = parser.parse_args()

    tp = Tasteprint(store=Path(tempfile.mkdtemp(prefix="bench-recommend-")))
    tp.ingest(args.data)
    items = list(tp.db.items().values())
    texts = [item_text(i) for i in items[: args.texts]]

    tp.embed(texts[:64])  # load the model before timing
    start = time.perf_counter()
    tp.embed(texts)
    ours = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    tp.embed.model.encode(texts, batch_size=32)  # sentence-transformers defaults
    raw = len(texts) / (time.perf_counter() - start)

    start = time.perf_counter()
    tp.index(progress=False)
    index_s = time.perf_counter() - start

    users = tp.users()[: args.first]
    plain, reranked, chroma = [], [], []
    for user_id in users:
        tp.profile(user_id)  # profiles are built once; latency below is for recommend itself
        start = time.perf_counter()
        tp.recommend(user_id, k=10, rerank=False)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        tp.recommend(user_id, k=10, rerank=True)
        reranked.append(time.perf_counter() - start)
        vector = tp.embed([f"user {user_id}"])[0]
        for _ in range(20):
            start = time.perf_counter()
            tp.vectors.nearest_items(vector, 50)
            chroma.append(time.perf_counter() - start)

    table = Table(title=f"bench_recommend: {len(users)} users of {args.data}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in [
        ("recommend, no rerank: p50 / p95 (s)", f"{statistics.median(plain):.2f} / {percentile(plain, 95):.2f}"),
        (
            "recommend, LLM rerank of 20: p50 / p95 (s)",
            f"{statistics.median(reranked):.2f} / {percentile(reranked, 95):.2f}",
        ),
        ("rerank / no-rerank latency ratio", f"{statistics.median(reranked) / statistics.median(plain):.1f}"),
        ("Chroma query k=50: p50 (ms)", f"{statistics.median(chroma) * 1000:.1f}"),
        (f"embedding items/s, tasteprint (batch 64, {len(texts)} texts)", f"{ours:.0f}"),
        ("embedding items/s, raw sentence-transformers (batch 32)", f"{raw:.0f}"),
        ("tasteprint / raw embedding ratio", f"{ours / raw:.2f}"),
        (f"index {len(items)} items into Chroma (s)", f"{index_s:.1f}"),
    ]:
        table.add_row(name, value)
    Console().print(table)


if __name__ == "__main__":
    main()
