"""Benchmark: hosted profiling one user at a time against N users in flight (`profile_many(...,
threads=N)`), through a local OpenAI-compatible server that replays recorded real replies after a
fixed latency, as a remote GPU server would answer. The replies are the embedded model's, recorded once
through llama.cpp's OpenAI-compatible server (so the requests are exactly what the hosted path sends)
and kept in `--recordings` for later runs. The last line is the machine-readable figures as JSON.

    .venv/bin/python eval/bench_hosted.py --first 16 --threads 8 --latency 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from http_servers import llama_server, reply_server, request_schema
from rich.console import Console
from rich.table import Table

from tasteprint import Tasteprint
from tasteprint.llm.cache import request_key
from tasteprint.llm.llamacpp import default_model_path
from tasteprint.storage.sqlite import Database

MODEL_ALIAS = "smollm2"


def hosted(store: Path, base_url: str, **settings: object) -> Tasteprint:
    # Redaction off: replies are looked up by the exact request, and the recording was not redacted.
    return Tasteprint(store=store, llm="openai", model=MODEL_ALIAS, base_url=base_url, redact_hosted=False, **settings)


def record(base: Path, recordings: Path, users: list[str]) -> None:
    """Profile `users` through llama.cpp's server into a copy of `base`; its LLM cache keeps every reply."""
    if not recordings.exists():
        shutil.copytree(base, recordings)
    with llama_server(default_model_path()) as url:
        batch = hosted(recordings, url).profile_many(users)
    if batch.failures:
        raise SystemExit(f"recording failed for {batch.failures}")


def replay(recordings: Path):
    """A reply function for `reply_server`: the recorded completion of the same request, else None."""
    db = Database(recordings)

    def answer(body: dict) -> str | None:
        key = request_key(MODEL_ALIAS, body["messages"], request_schema(body), body["max_tokens"], body["temperature"])
        stored = db.cached_completion(key)
        return json.loads(stored)["text"] if stored else None

    return answer


def signature(profile) -> tuple:
    return profile.summary, tuple((i.label, i.weight) for i in profile.interests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ml-latest-small")
    parser.add_argument("--first", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the replay server waits per request")
    parser.add_argument("--recordings", type=Path, default=None, help="store holding recorded replies (reused)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-hosted-"))
    base = work / "base"
    ingesting = Tasteprint(store=base)
    ingesting.ingest(args.data)
    users = ingesting.users()[: args.first]
    ingesting.close()
    recordings = args.recordings or Path(tempfile.gettempdir()) / f"tasteprint-replay-{Path(args.data).name}"
    record(base, recordings, users)

    seconds: dict[int, float] = {}
    results = {}
    with reply_server(replay(recordings), latency_s=args.latency) as (url, log):
        for concurrency in (1, args.threads):
            store = work / f"run-{concurrency}"
            shutil.copytree(base, store)
            tp = hosted(store, url, llm_cache=False)
            start = time.perf_counter()
            results[concurrency] = tp.profile_many(users, progress=False, threads=concurrency)
            seconds[concurrency] = time.perf_counter() - start
            tp.close()

    sequential, parallel = results[1], results[args.threads]
    lost = len(users) - len(parallel.profiles)
    identical = all(
        u in sequential.profiles and signature(p) == signature(sequential.profiles[u])
        for u, p in parallel.profiles.items()
    )
    figures = {
        "users": len(users),
        "latency_s": args.latency,
        "concurrency": args.threads,
        "requests": log.requests,
        "unanswered": log.unanswered,
        "max_in_flight": log.max_in_flight,
        "sequential_s": round(seconds[1], 2),
        "concurrent_s": round(seconds[args.threads], 2),
        "speedup": round(seconds[1] / seconds[args.threads], 2),
        "lost": lost,
        "lost_sequential": len(users) - len(sequential.profiles),
        "identical_profiles": identical,
    }
    table = Table(title=f"hosted profiling of {len(users)} users, {args.latency} s per request")
    table.add_column("mode")
    table.add_column("seconds", justify="right")
    table.add_column("users/min", justify="right")
    table.add_column("lost", justify="right")
    for concurrency, result in results.items():
        mode = "sequential" if concurrency == 1 else f"{concurrency} in flight"
        table.add_row(
            mode,
            f"{seconds[concurrency]:.1f}",
            f"{60 * len(result.profiles) / seconds[concurrency]:.1f}",
            str(len(users) - len(result.profiles)),
        )
    Console().print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
