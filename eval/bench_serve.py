"""Benchmark: the HTTP service's latency and throughput against the library's own, in one run.

With no arguments it ingests ml-latest-small into a store (or reuses `--store`), starts `tasteprint
serve` on 127.0.0.1 and asks for `k=10` picks with template explanations for users drawn uniformly,
in phases that do not overlap (the server runs `--workers` processes, by default one per core):

1. `inproc`: the same requests as in-process `Tasteprint.recommend` calls, no HTTP (the library's p50);
2. `single`: one client for `--single-s` seconds (the idle p50 over HTTP);
3. `concurrent`: `--clients` clients for `--concurrent-s` seconds (p50, p99, requests per second);
4. `events`: 8 clients posting batches of new events for `--events-s` seconds, then counted back.

Before the timed phases each side answers every user once (facts are cached per user), so no phase
pays for another's cold start. `--url URL --token T` measures a server already running instead (the
in-process phase then reads `--store`). The last line is JSON: inproc_p50_ms, single_p50_ms, p50_ms,
p99_ms, rps, errors_5xx, events_sent, events_acknowledged, events_stored.

    .venv/bin/python eval/bench_serve.py                       # ~3 minutes on 2 cores, plus the ingest
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from http_servers import tasteprint_server

from tasteprint import Tasteprint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"
K = 10
EVENT_CLIENTS = 8
EVENTS_PER_POST = 10


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def prepared_store(store: Path | None, data: Path) -> Path:
    """A store holding `data`, ingested and fitted (reused when it holds users already)."""
    store = store or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    tp = Tasteprint(store=store)
    if not tp.users():
        started = time.perf_counter()
        tp.ingest(data)
        tp.fit(progress=False)
        print(f"ingested and fitted {data} in {time.perf_counter() - started:.0f} s", flush=True)
    tp.close()
    return store


def in_process(store: Path, users: list[str], requests: int, seed: int) -> float:
    tp = Tasteprint(store=store, refit_stale=False)
    for user in users:  # warm: every user's facts once
        tp.recommend(user, K, rerank=False, reasons=False)
    rng, times = random.Random(seed), []
    for _ in range(requests):
        user = rng.choice(users)
        started = time.perf_counter()
        tp.recommend(user, K, rerank=False, reasons=False)
        times.append((time.perf_counter() - started) * 1000)
    tp.close()
    return statistics.median(times)


class Client:
    """Requests for random users' picks over one keep-alive connection, timed. The standard library's
    `http.client`: the clients share the server's two cores, so they must cost little."""

    def __init__(self, url: str, token: str, users: list[str], seed: int):
        address = urlsplit(url)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.users, self.rng = users, random.Random(seed)
        self.times: list[float] = []
        self.errors_5xx = 0

    def ask(self, user: str | None = None) -> None:
        user = user or self.rng.choice(self.users)
        path = f"/v1/users/{user}/recommendations?k={K}&explanations=template"
        started = time.perf_counter()
        try:
            self.connection.request("GET", path, headers=self.headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed a connection left idle past its keep-alive timeout: reconnect, as
            # every HTTP client does, and time the request from there.
            self.connection.close()
            started = time.perf_counter()
            self.connection.request("GET", path, headers=self.headers)
            response = self.connection.getresponse()
        response.read()
        self.times.append((time.perf_counter() - started) * 1000)
        self.errors_5xx += response.status >= 500

    def run_for(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.ask()


def map_ask(client: Client, users: list[str]) -> None:
    """Ask once for each of `users` (the warm-up)."""
    for user in users:
        client.ask(user)


def run_together(jobs: list[Callable[[], object]]) -> float:
    """Run each job on its own thread, all at once; the seconds until the last one ended."""
    threads = [threading.Thread(target=job) for job in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


class EventPoster:
    """Posts batches of new events (one new user per client) and counts what came back 2xx."""

    def __init__(self, url: str, token: str, number: int, items: list[str]):
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.user, self.items = f"bench-poster-{number}-{time.time_ns()}", items
        self.sent = self.acknowledged = self.errors_5xx = 0
        self.start = int(time.time()) - 10_000_000  # in the past: ingest refuses future timestamps

    def run_for(self, seconds: float) -> None:
        deadline, n = time.perf_counter() + seconds, 0
        while time.perf_counter() < deadline:
            batch = [
                {
                    "user_id": self.user,
                    "item_id": self.items[(n + j) % len(self.items)],
                    "kind": "rating",
                    "rating": 4,
                    "timestamp": self.start + n + j,
                }
                for j in range(EVENTS_PER_POST)
            ]
            n += EVENTS_PER_POST
            self.sent += len(batch)
            response = self.http.post("/v1/events", content="\n".join(json.dumps(e) for e in batch))
            self.errors_5xx += response.status_code >= 500
            if response.is_success:
                self.acknowledged += response.json()["accepted"]

    def stored(self) -> int:
        return self.http.get(f"/v1/users/{self.user}/events", params={"limit": 1}).json()["total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--store", type=Path, help="a store to reuse (ingested once if empty)")
    parser.add_argument("--url", help="a server already running (with --token)")
    parser.add_argument("--token", default="bench-admin-token")
    parser.add_argument("--inproc-requests", type=int, default=500)
    parser.add_argument("--single-s", type=float, default=20)
    parser.add_argument("--concurrent-s", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="serve's worker processes")
    parser.add_argument("--events-s", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    store = prepared_store(args.store, args.data)
    tp = Tasteprint(store=store)
    users, items = tp.users(), sorted(tp.db.items())[:500]
    tp.close()
    inproc = in_process(store, users, args.inproc_requests, args.seed)
    print(f"in-process: p50 {inproc:.1f} ms over {args.inproc_requests} requests", flush=True)

    with ExitStack() as stack:
        url = args.url or stack.enter_context(tasteprint_server(store, args.token, args.workers))
        warm = [Client(url, args.token, users, args.seed + n) for n in range(4)]
        for _ in range(2):  # warm: every user twice, over four connections (each worker sees most users)
            run_together([partial(map_ask, client, users[n::4]) for n, client in enumerate(warm)])
        single = Client(url, args.token, users, args.seed)
        single.run_for(args.single_s)
        print(f"one client: p50 {statistics.median(single.times):.1f} ms, {len(single.times)} requests", flush=True)
        clients = [Client(url, args.token, users, args.seed + 100 + n) for n in range(args.clients)]
        elapsed = run_together([partial(c.run_for, args.concurrent_s) for c in clients])
        times = [t for c in clients for t in c.times]
        print(f"{args.clients} clients: {len(times)} requests in {elapsed:.0f} s", flush=True)
        posters = [EventPoster(url, args.token, n, items) for n in range(EVENT_CLIENTS)]
        run_together([partial(p.run_for, args.events_s) for p in posters])
        stored = sum(p.stored() for p in posters)
    result = {
        "inproc_p50_ms": round(inproc, 2),
        "single_p50_ms": round(statistics.median(single.times), 2),
        "p50_ms": round(percentile(times, 0.5), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "rps": round(len(times) / elapsed, 1),
        "errors_5xx": sum(c.errors_5xx for c in [single, *clients, *posters]),
        "events_sent": sum(p.sent for p in posters),
        "events_acknowledged": sum(p.acknowledged for p in posters),
        "events_stored": stored,
    }
    targets = {
        "inproc_p50_ms <= 20": result["inproc_p50_ms"] <= 20,
        "single_p50_ms <= 1.3 x inproc + 2": result["single_p50_ms"] <= 1.3 * inproc + 2,
        "rps >= 1.5 x 1000 / inproc": result["rps"] >= 1.5 * 1000 / inproc,
        "p99_ms <= 20 x inproc": result["p99_ms"] <= 20 * inproc,
        "no 5xx, every acknowledged event stored": result["errors_5xx"] == 0
        and result["events_stored"] == result["events_acknowledged"],
    }
    for target, met in targets.items():
        print(f"{'met' if met else 'MISSED'}: {target}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
