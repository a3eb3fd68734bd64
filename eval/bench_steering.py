"""Benchmark: do recommendations obey what people state? Each sampled user's last item (in the store's
order: timestamp, then file order) is held out, the recommender is fitted with default settings, and
each edit is applied alone to the user's profile through the public API, compared with the unedited
`recommend(user, k=10, rerank=False)` and undone:

- not interested in the label most frequent in today's top 10 (its share before and after);
- more of the label with the most unconsumed items among those on at most one of today's picks;
- never today's first pick.

Then all three are applied together, the profile is rebuilt by the model (`profile --refresh`), and
they must all still hold. NDCG@10 of each edited list on the held-out item, where the edit does not
rule that item out, is compared with the unedited list's. The last line is JSON.

    .venv/bin/python eval/bench_steering.py ../shared/data/ml-latest-small --sample 100
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasteprint import Tasteprint
from tasteprint.progress import LoggedProgress
from tasteprint.recommend.metrics import ndcg_at_k
from tasteprint.recommend.wanted import more_floor

K = 10


def hold_out_last(tp: Tasteprint, users: list[str]) -> dict[str, str]:
    """Each user's last consumed item, removed from the store (their other events stay)."""
    held = {}
    for user_id in users:
        events = [e for e in tp.db.user_events(user_id) if e.kind != "search"]
        held[user_id] = events[-1].item_id
        tp.forget_item(user_id, held[user_id])
    return held


def served(tp: Tasteprint, user_id: str) -> list[str]:
    return [r.item_id for r in tp.recommend(user_id, k=K, rerank=False).recommendations]


class Bench:
    """One store's catalogue labels, and each user's edits measured against their unedited list."""

    def __init__(self, tp: Tasteprint):
        self.tp = tp
        self.carriers = tp.services.workspace.label_items()
        self.labels_of: dict[str, set[str]] = {}
        for label, items in self.carriers.items():
            for item_id in items:
                self.labels_of.setdefault(item_id, set()).add(label)

    def share(self, items: list[str], label: str) -> float:
        return sum(label in self.labels_of.get(i, ()) for i in items) / len(items)

    def user(self, user_id: str, held_out: str) -> dict:
        tp = self.tp
        today = served(tp, user_id)
        consumed = {e.item_id for e in tp.db.user_events(user_id)}
        counts = Counter(label for i in today for label in self.labels_of.get(i, ()))
        unwanted = max(sorted(counts), key=lambda label: counts[label])
        rare = [label for label in sorted(self.carriers) if counts[label] <= 1]
        wanted = max(rare, key=lambda label: len(self.carriers[label] - consumed))
        row = {"user": user_id, "unedited_ndcg": ndcg_at_k({held_out}, today)}
        edits = {
            "not_interested": ({"not_interested": [unwanted]}, unwanted),
            "more": ({"more": [wanted]}, wanted),
            "never": ({"never": [today[0]]}, today[0]),
        }
        for kind, (edit, target) in edits.items():
            tp.edit_profile(user_id, **edit)
            after = served(tp, user_id)
            tp.edit_profile(user_id, undo=[target])
            row[kind] = self.followed(kind, target, after, consumed)
            ruled_out = held_out == target or (kind == "not_interested" and target in self.labels_of.get(held_out, ()))
            row[f"{kind}_ndcg"] = None if ruled_out else ndcg_at_k({held_out}, after)
        row["label_share"] = {"not_interested": [self.share(today, unwanted), row["not_interested"]["share"]]}
        row["more_label"], row["more_share_after"] = wanted, row["more"]["share"]
        tp.edit_profile(user_id, not_interested=[unwanted], more=[wanted], never=[today[0]])
        rebuilt = tp.profile(user_id, refresh=True)
        after = served(tp, user_id)
        row["kept_after_rebuild"] = len(rebuilt.edits) == 3 and all(
            self.followed(kind, target, after, consumed)["held"] for kind, (_, target) in edits.items()
        )
        return row

    def followed(self, kind: str, target: str, after: list[str], consumed: set[str]) -> dict:
        if kind == "never":
            return {"held": target not in after}
        share = self.share(after, target)
        if kind == "not_interested":
            return {"held": share == 0.0, "share": share}
        servable = len(self.carriers[target] - consumed)
        return {"held": share * K >= min(more_floor(K), servable), "share": share}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="anything `tasteprint ingest` reads")
    parser.add_argument("--sample", type=int, default=100, help="users drawn at random with --seed")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    console = Console(stderr=True)
    started = time.perf_counter()
    tp = Tasteprint(store=Path(tempfile.mkdtemp(prefix="bench-steering-")))
    tp.ingest(args.data)
    eligible = [u for u in tp.users() if len({e.item_id for e in tp.db.user_events(u)}) >= 5]
    users = sorted(random.Random(args.seed).sample(eligible, min(args.sample, len(eligible))))
    held = hold_out_last(tp, users)
    tp.fit(progress=False)
    bench = Bench(tp)
    rows = []
    with LoggedProgress() as bar:
        task = bar.add_task("steering", total=len(users))
        for user_id in users:
            rows.append(bench.user(user_id, held[user_id]))
            bar.advance(task)
    figures = summarise(rows, args, time.perf_counter() - started)
    show(figures, console)
    print(json.dumps(figures))


def summarise(rows: list[dict], args: argparse.Namespace, seconds: float) -> dict:
    def rate(kind: str) -> float:
        return round(statistics.fmean(r[kind]["held"] for r in rows), 4)

    kept = [(r[f"{k}_ndcg"], r["unedited_ndcg"]) for r in rows for k in ("not_interested", "more", "never")]
    kept = [(edited, plain) for edited, plain in kept if edited is not None]
    plain = statistics.fmean(p for _, p in kept) if kept else 0.0
    return {
        "data": str(args.data),
        "users": len(rows),
        "seed": args.seed,
        "not_interested_followed": rate("not_interested"),
        "more_followed": rate("more"),
        "never_followed": rate("never"),
        "kept_after_rebuild": round(statistics.fmean(r["kept_after_rebuild"] for r in rows), 4),
        "ndcg_kept": round(statistics.fmean(e for e, _ in kept) / plain, 4) if plain else None,
        "ndcg_unedited": round(plain, 4),
        "unwanted_share_before": round(statistics.fmean(r["label_share"]["not_interested"][0] for r in rows), 4),
        "unwanted_share_after": round(statistics.fmean(r["label_share"]["not_interested"][1] for r in rows), 4),
        "more_share_after": round(statistics.fmean(r["more_share_after"] for r in rows), 4),
        "seconds": round(seconds, 1),
    }


def show(figures: dict, console: Console) -> None:
    table = Table(title=f"steering on {figures['users']} users of {figures['data']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if key not in ("data", "users"):
            table.add_row(key, str(value))
    console.print(table)


if __name__ == "__main__":
    main()
