"""Benchmark: profile N users on the embedded model and print throughput, token speeds, the ratios of
constrained decode speed (the draft's finite schema as profiles decode it, and llama.cpp's grammar) to
llama.cpp's raw unconstrained decode of the same model, and what
aspect mining costs (item aspects once per ingest; each user's own phrases on every profile). The last
line is the machine-readable figures as JSON.

    .venv/bin/python eval/bench_profile.py --data ../shared/data/ml-latest-small --first 10
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasteprint.ingest.aspects import ASPECT_ATTRIBUTE, forget_mined, item_aspects, mine
from tasteprint.ingest.loader import ingest
from tasteprint.llm import LLMContext
from tasteprint.llm.llamacpp import LlamaCppBackend
from tasteprint.profile.draft import build_profile, draft_schema, profile_messages
from tasteprint.profile.facts import FactBook
from tasteprint.storage.embeddings import Embedder
from tasteprint.storage.sqlite import Database


def decode_speed(backend: LlamaCppBackend, messages, schema, max_tokens: int) -> tuple[float, int]:
    """(completion tokens, decode seconds) for one request whose prompt is evaluated beforehand, so the
    timed call re-evaluates only its last token (llama-cpp-python reuses the common prefix)."""
    backend.complete(messages, max_tokens=1)
    # Temperature 0, as profiles are built (Settings.temperature): greedy, the fast grammar path.
    full = backend.complete(messages, json_schema=schema, max_tokens=max_tokens, temperature=0.0)
    return full.completion_tokens, full.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ml-latest-small")
    parser.add_argument("--first", type=int, default=10)
    parser.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2-135M)")
    args = parser.parse_args()

    store = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    db = Database(store)
    ingest(db, Path(args.data))
    started = time.perf_counter()
    texts = db.review_texts()
    aspects, generic = item_aspects(texts, Embedder()) if texts else ({}, set())
    db.set_item_aspects(aspects, generic, ASPECT_ATTRIBUTE)
    item_mining_s = time.perf_counter() - started
    book = FactBook(db)
    backend = LlamaCppBackend(args.model)
    users = db.user_ids()[: args.first]

    forget_mined()  # a `profile` command mines its user's texts afresh, not from what ingest mined
    start = time.perf_counter()
    profiles = [build_profile(book.facts(u), LLMContext(backend), vocabulary=set(book.global_shares)) for u in users]
    wall = time.perf_counter() - start
    # What mining adds to each profile: the user's own texts through the same `mine` that facts call.
    forget_mined()
    started = time.perf_counter()
    for user_id in users:
        for event in db.user_events(user_id):
            if event.text and event.kind == "review":
                mine(event.text)
    user_mining_s = (time.perf_counter() - started) / len(users)
    mining_share = user_mining_s / (wall / len(users))

    prompt_tokens = sum(p.prompt_tokens for p in profiles)
    completion_tokens = sum(p.completion_tokens for p in profiles)
    claims = sum(p.verification.claims_proposed for p in profiles)
    dropped = sum(p.verification.claims_dropped for p in profiles)
    evidence = sum(p.verification.evidence_proposed for p in profiles)
    evidence_dropped = sum(p.verification.evidence_dropped for p in profiles)
    summaries_replaced = sum(p.verification.summary_replaced for p in profiles)
    aspects_proposed = sum(p.verification.aspects_proposed for p in profiles)
    aspects_kept = sum(p.verification.aspects_kept for p in profiles)

    # Same prompts, same model: the draft decoded as profiles decode it (its schema is finite:
    # llm/choices.py), through llama.cpp's grammar (as summaries and sampled requests are), and raw.
    grammar_backend = LlamaCppBackend(args.model, finite_decoding=False)
    finite, constrained, raw = [0, 0.0], [0, 0.0], [0, 0.0]
    for user_id in users[:3]:
        facts = book.facts(user_id)
        messages = profile_messages(facts)
        backend.llama.reset()
        probe = backend.complete(messages, max_tokens=1)
        prompt_tps = probe.prompt_tokens / max(probe.seconds, 1e-6)
        for totals, way, schema in (
            (finite, backend, draft_schema(facts)),
            (constrained, grammar_backend, draft_schema(facts)),
            (raw, backend, None),
        ):
            tokens, seconds = decode_speed(way, messages, schema, 200)
            totals[0] += tokens
            totals[1] += seconds
    finite_tps, constrained_tps, raw_tps = (t[0] / t[1] for t in (finite, constrained, raw))

    table = Table(title=f"bench_profile: {len(users)} users of {args.data} on {backend.model_name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("machine", f"{platform.machine()}, {backend.n_threads} threads"),
        ("wall time (s)", f"{wall:.1f}"),
        ("users/minute", f"{len(users) / wall * 60:.2f}"),
        ("seconds/user", f"{wall / len(users):.1f}"),
        ("prompt tokens/user", f"{prompt_tokens / len(users):.0f}"),
        ("completion tokens/user", f"{completion_tokens / len(users):.0f}"),
        ("prompt eval tokens/s", f"{prompt_tps:.1f}"),
        ("draft decode as profiles run it, finite schema (tokens/s)", f"{finite_tps:.1f}"),
        ("draft decode through the grammar (tokens/s)", f"{constrained_tps:.1f}"),
        ("raw unconstrained decode tokens/s", f"{raw_tps:.1f}"),
        ("finite / raw decode ratio", f"{finite_tps / raw_tps:.2f}"),
        ("grammar / raw decode ratio", f"{constrained_tps / raw_tps:.2f}"),
        ("claims dropped by verification", f"{dropped}/{claims} ({dropped / max(claims, 1):.1%})"),
        ("evidence ids dropped", f"{evidence_dropped}/{evidence} ({evidence_dropped / max(evidence, 1):.1%})"),
        ("summaries replaced", f"{summaries_replaced}/{len(users)}"),
        ("item aspect mining at ingest (s)", f"{item_mining_s:.1f} for {len(texts)} reviewed items"),
        ("user aspect mining (s/user)", f"{user_mining_s:.3f} ({mining_share:.1%} of profile time)"),
        ("aspect claims kept / proposed", f"{aspects_kept}/{aspects_proposed}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
    figures = {
        "users": len(users),
        "users_per_min": round(len(users) / wall * 60, 2),
        "seconds_per_user": round(wall / len(users), 2),
        "constrained_raw_ratio": round(constrained_tps / raw_tps, 3),
        "finite_raw_ratio": round(finite_tps / raw_tps, 3),
        "item_aspect_mining_s": round(item_mining_s, 2),
        "user_aspect_mining_s_per_user": round(user_mining_s, 4),
        "user_aspect_mining_share": round(mining_share, 4),
        "aspects_proposed": aspects_proposed,
        "aspects_kept": aspects_kept,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
