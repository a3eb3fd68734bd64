"""Command line: parses arguments, calls the library, prints rich tables or exact JSON.

This is the one place that turns a TasteprintError into a message and an exit code.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .api import Tasteprint
from .batch import batch_profile
from .config import Settings
from .errors import ConfigError, IngestError, TasteprintError, UnknownUserError
from .render import (
    console,
    print_batch,
    print_diff,
    print_eval,
    print_explanation,
    print_fit,
    print_history,
    print_ingest,
    print_profile,
    print_recommendations,
    print_segments,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLM user profiles and explained recommendations.")
err_console = Console(stderr=True)

StoreOpt = Annotated[
    Optional[Path], typer.Option("--store", help="store directory [env TASTEPRINT_HOME; default ./.tasteprint]")
]
LlmOpt = Annotated[Optional[str], typer.Option("--llm", help="local | openai [env TASTEPRINT_LLM]")]
ModelOpt = Annotated[
    Optional[str], typer.Option("--model", help="GGUF path (local) or model name (openai) [env TASTEPRINT_MODEL]")
]
BaseUrlOpt = Annotated[
    Optional[str], typer.Option("--base-url", help="OpenAI-compatible endpoint [env TASTEPRINT_BASE_URL]")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print exactly the pydantic JSON")]
ChromaUrlOpt = Annotated[
    Optional[str],
    typer.Option(
        "--chroma-url", help="a Chroma server (http://host:port) instead of the store's own [env TASTEPRINT_CHROMA_URL]"
    ),
]


def friendly_errors(command):
    """Turn library errors into one line on stderr (and its hint) and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TasteprintError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}")
            if exc.hint:
                err_console.print(f"[yellow]hint:[/] {exc.hint}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def open_tasteprint(store, llm, model, base_url, chroma_url) -> Tasteprint:
    return Tasteprint(store=store, llm=llm, model=model, base_url=base_url, chroma_url=chroma_url)


@app.command()
@friendly_errors
def ingest(
    path: Annotated[Path, typer.Argument(help="data file or folder")],
    format: Annotated[Optional[str], typer.Option("--format", help="movielens | ml100k | amazon | events")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="platform name for these events")] = None,
    identity_map: Annotated[
        Optional[Path],
        typer.Option("--identity-map", help="CSV platform,platform_user_id,person_id linking accounts to people"),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="exit non-zero if any record is rejected")] = False,
    no_fit: Annotated[bool, typer.Option("--no-fit", help="load only; the recommender is fitted on first use")] = False,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Load a data set into the store, reporting every rejected record by file, line and reason, then
    fit the recommender on everything stored (unless --no-fit)."""
    tp = Tasteprint(store=store, chroma_url=chroma_url)
    report = tp.ingest(path, format, platform, identity_map)
    if as_json:
        print(report.model_dump_json(include={"accepted", "rejected", "duplicates", "items", "errors", "format"}))
    else:
        print_ingest(report)
    if not no_fit and report.accepted:
        fitted = tp.fit(progress=not as_json)
        if not as_json:
            print_fit(fitted)
    if strict and report.rejected:
        raise IngestError(f"{report.rejected} record(s) rejected under --strict")


@app.command()
@friendly_errors
def fit(
    target: Annotated[
        Optional[str], typer.Option("--target", help="validate on each user's next item (next) or a random fifth")
    ] = None,
    rerank_users: Annotated[
        int, typer.Option("--rerank-users", min=0, help="validation users to tune the LLM rerank blend on")
    ] = 0,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Fit the recommender on the store's interactions and save it: retrievers, recency, ranker and
    (with --rerank-users) the LLM blend, each chosen on held-out validation users."""
    tp = Tasteprint(store=store, llm=llm, model=model, base_url=base_url, fit_target=target, chroma_url=chroma_url)
    report = tp.fit(progress=not as_json, rerank_users=rerank_users)
    if as_json:
        print(report.model_dump_json())
    else:
        print_fit(report)


@app.command()
@friendly_errors
def profile(
    user_ids: Annotated[Optional[list[str]], typer.Argument(help="user id(s), as in the source data")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="every user in the store")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="rebuild from all facts as a new version")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="what changed between the last two versions")] = False,
    history: Annotated[bool, typer.Option("--history", help="list the stored versions")] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, help="users in flight at once in a batch; speeds up hosted backends")
    ] = 1,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Show a user's profile: built with the LLM if none is stored yet, updated if new events arrived.

    With several ids or --all it runs a batch: each finished profile is stored at once, so a killed
    batch run again skips what was done (and replays cached LLM calls of the user it was on).
    """
    tp = open_tasteprint(store, llm, model, base_url, chroma_url)
    ids = tp.users() if all_users else list(user_ids or [])
    if not ids:
        raise TasteprintError("no user given", hint="tasteprint profile USER_ID [USER_ID ...] or --all")
    if diff or history:
        if len(ids) != 1:
            raise TasteprintError("--diff and --history take exactly one user id")
        if not tp.db.has_user(ids[0]):
            raise UnknownUserError(ids[0])
        if history:
            print_history(tp.profile_history(ids[0]), as_json)
        if diff:
            print_diff(tp.diff(ids[0]), as_json)
        return
    if len(ids) == 1 and not all_users:
        result = tp.profile(ids[0], refresh=refresh)
        if as_json:
            print(result.model_dump_json())
        else:
            print_profile(result, tp.facts(result.user_id).item_titles)
        return
    if concurrency > 1 and tp.settings.llm == "local":
        err_console.print("note: the embedded model decodes one request at a time; --concurrency helps hosted backends")
    batch = tp.profile_many(ids, refresh=refresh, concurrency=concurrency)
    summary = {
        "built": len(batch.profiles) - len(batch.reused),
        "reused": len(batch.reused),
        "failed": batch.failures,
        "versions": {u: p.version for u, p in batch.profiles.items()},
    }
    if as_json:
        print(json.dumps(summary))
    else:
        print_batch(ids, batch)
    if batch.failures:
        raise typer.Exit(1)


@app.command("batch-profile")
@friendly_errors
def batch_profile_command(
    events: Annotated[Path, typer.Argument(help="events to profile: a JSON lines or Parquet file, or any data set")],
    out: Annotated[Path, typer.Option("--out", help="folder for profiles.jsonl and profiles.parquet")],
    engine: Annotated[str, typer.Option("--engine", help="ray (Ray Data, any cluster) | local (this process)")] = "ray",
    concurrency: Annotated[int, typer.Option(min=1, help="Ray actors, each with one model client")] = 2,
    ray_address: Annotated[
        Optional[str], typer.Option("--ray-address", help="a running Ray cluster; default: start one here")
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--users", min=1, help="only the first N users")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="movielens | ml100k | amazon | events")] = None,
    store: Annotated[
        Optional[Path], typer.Option("--store", help="store to load the events into [default: OUT/store]")
    ] = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Profile every user in EVENTS with the same facts, prompts and verification as `profile`, the
    model calls spread over Ray Data workers. A rerun skips users already in OUT/profiles.jsonl."""
    if engine not in ("ray", "local"):
        raise TasteprintError(f"unknown engine {engine!r}", hint="--engine ray or --engine local")
    tp = open_tasteprint(store or out / "store", llm, model, base_url, chroma_url)
    tp.ingest(events, format)
    users = tp.users()[:limit] if limit else None
    report = batch_profile(tp, out, users, engine=engine, concurrency=concurrency, ray_address=ray_address)
    if as_json:
        print(report.model_dump_json())
    else:
        console.print(
            f"built {report.built}, skipped {len(report.skipped)} already done, failed {len(report.failures)}; "
            f"wrote {report.jsonl} and {report.parquet}"
        )
        for user_id, reason in report.failures.items():
            err_console.print(f"user {user_id}: {reason}")
    if report.failures:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def recommend(
    user_id: Annotated[str, typer.Argument(help="user id")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="how many items")] = 10,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="retrieval order, no LLM")] = False,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="candidates the LLM reranks")] = 20,
    explanations: Annotated[
        Optional[str],
        typer.Option(
            "--explanations",
            help="auto | prose | slots: free reasons checked against the data, or reasons confined to the "
            "pick's facts by a grammar (auto: slots for the embedded model, prose for hosted ones)",
        ),
    ] = None,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Recommend unconsumed items, each with an explanation citing the user's own history."""
    tp = Tasteprint(
        store=store, llm=llm, model=model, base_url=base_url, chroma_url=chroma_url, explanations=explanations
    )
    recommendations = tp.recommend(user_id, k=k, rerank=not no_rerank, n_candidates=candidates)
    if as_json:
        print(json.dumps([r.model_dump() for r in recommendations]))
        return
    print_recommendations(user_id, recommendations, tp.facts(user_id).item_titles)
    if tp.last_rerank and tp.last_rerank.stats.fallback:
        err_console.print(f"[yellow]rerank fell back to retrieval order:[/] {tp.last_rerank.stats.fallback}")
    if reasons := tp.last_reasons:
        err_console.print(
            f"reasons ({reasons.mode}): {reasons.kept} by the model, {reasons.replaced} replaced by the template"
            + "".join(f"\n  {i}: {problem}" for i, problem in reasons.problems.items())
            + (f"\n  the call failed: {reasons.fallback}" if reasons.fallback else "")
        )


@app.command()
@friendly_errors
def explain(
    user_id: Annotated[str, typer.Argument(help="user id")],
    item_id: Annotated[str, typer.Argument(help="item id, recommended or not")],
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Explain how an item relates to a user's history."""
    tp = open_tasteprint(store, llm, model, base_url, chroma_url)
    explanation = tp.explain(user_id, item_id)
    if as_json:
        print(explanation.model_dump_json())
        return
    print_explanation(user_id, explanation, tp.facts(user_id).item_titles)


@app.command()
@friendly_errors
def chat(
    user: Annotated[Optional[str], typer.Option("--user", help="start as this user")] = None,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="recommend without the LLM rerank")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per input line")] = False,
    router: Annotated[
        str,
        typer.Option(
            "--router",
            help="auto | rules | model: who reads each line; auto asks a tool-calling (hosted) model only "
            "for what the rules cannot read, model asks it first",
        ),
    ] = "auto",
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
):
    """Talk about recommendations in plain language: why, more like, exclusions, newer/older, feedback,
    your profile, forget. Reads one line per message when stdin is not a terminal."""
    from .chat import HELP, ChatSession

    if router not in ("auto", "rules", "model"):
        raise ConfigError(f"--router must be auto, rules or model, not {router!r}")
    tp = open_tasteprint(store, llm, model, base_url, chroma_url)
    session = ChatSession(tp, rerank=not no_rerank, router=router)  # type: ignore[arg-type]
    interactive = sys.stdin.isatty() and not as_json
    if user is not None:
        greeting = session.switch(user)
        if not as_json:
            console.print(greeting)
    if interactive:
        console.print(HELP)
    while True:
        try:
            line = console.input("[bold]> [/]") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive:
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if not as_json:
                console.print(f"> {line}")
        turn = session.turn(line)
        if as_json:
            print(turn.model_dump_json(), flush=True)
        else:
            console.print(turn.reply, markup=False, highlight=False)
        if turn.intent == "quit":
            break


@app.command()
@friendly_errors
def forget(
    user_id: Annotated[str, typer.Argument(help="user id")],
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
):
    """Delete a user's events, profiles, cached LLM responses and embeddings; afterwards the user is unknown."""
    removed = Tasteprint(store=store, chroma_url=chroma_url).forget(user_id)
    console.print(
        f"forgot user {user_id}: {removed} events, all profile versions, cached LLM responses and the profile embedding"
    )


@app.command()
@friendly_errors
def segments(
    k: Annotated[str, typer.Option("--k", help="number of segments, or auto (best silhouette for k in 2..8)")] = "auto",
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Cluster profiled users into segments (k-means), each described by the LLM and verified."""
    if k != "auto" and not k.isdigit():
        raise TasteprintError(f"--k must be a number or auto, not {k!r}")
    tp = open_tasteprint(store, llm, model, base_url, chroma_url)
    result = tp.segments(k=k if k == "auto" else int(k))
    if as_json:
        print(result.model_dump_json(exclude={"segments": {"__all__": {"centroid"}}}))
        return
    print_segments(result)


@app.command()
@friendly_errors
def link(
    identity_map: Annotated[Path, typer.Argument(help="CSV platform,platform_user_id,person_id")],
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
):
    """Link accounts on several platforms to one person; their stored events move to the person id."""
    report = Tasteprint(store=store, chroma_url=chroma_url).link_identities(identity_map)
    if as_json:
        print(report.model_dump_json())
        return
    console.print(f"{report.links} account links, {report.events_moved} stored events moved to their person")
    for error in report.errors:
        err_console.print(f"{Path(error.file).name}:{error.line}: {error.reason}")


@app.command()
@friendly_errors
def index(store: StoreOpt = None, chroma_url: ChromaUrlOpt = None):
    """Embed every catalogue item into the vector store (done on demand by recommend too)."""
    tp = Tasteprint(store=store, chroma_url=chroma_url)
    console.print(f"indexed {tp.index()} new items")


@app.command()
@friendly_errors
def demo(
    data: Annotated[
        Optional[Path], typer.Option("--data", help="MovieLens folder (default: ../shared data if present)")
    ] = None,
    users: Annotated[str, typer.Option("--users", help="comma-separated user ids to show")] = "1,2,3",
    k: Annotated[int, typer.Option("-k", min=1)] = 5,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
):
    """Ingest a slice of MovieLens (or the built-in sample), profile a few users, recommend with reasons."""
    from .demo import run_demo

    run_demo(
        console,
        data=data,
        user_ids=[u.strip() for u in users.split(",") if u.strip()],
        k=k,
        store=store,
        llm=llm,
        model=model,
        base_url=base_url,
        chroma_url=chroma_url,
    )


@app.command("eval")
@friendly_errors
def eval_command(
    path: Annotated[Path, typer.Argument(help="data file or folder, any format ingest reads")],
    protocol: Annotated[str, typer.Option("--protocol", help="loo | cand20 | msr | all")] = "all",
    methods: Annotated[
        str, typer.Option("--methods", help="comma-separated methods")
    ] = "random,pop,itemknn,ease,hybrid,tasteprint",
    users: Annotated[int, typer.Option("--users", min=1, help="users sampled for LLM methods")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    out: Annotated[Path, typer.Option("--out", help="report folder")] = Path("eval-report"),
    format: Annotated[Optional[str], typer.Option("--format")] = None,
    candidates: Annotated[int, typer.Option("--candidates", min=2, help="candidates the LLM reranks")] = 20,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
):
    """Evaluate methods on real data: report.md, results.json and PNG plots in --out."""
    from .evaluate import PROTOCOLS
    from .report import EvalConfig, run_eval

    protocols = list(PROTOCOLS) if protocol == "all" else [p.strip() for p in protocol.split(",")]
    if set(protocols) - set(PROTOCOLS):
        raise TasteprintError(f"unknown protocol in {protocol!r}", hint="use loo, cand20, msr or all")
    settings = Settings.load(
        store=store or out / "store", llm=llm, model=model, base_url=base_url, chroma_url=chroma_url
    )
    config = EvalConfig(
        path=path,
        out=out,
        protocols=protocols,
        methods=[m.strip() for m in methods.split(",")],
        users=users,
        seed=seed,
        n_candidates=candidates,
        fmt=format,
    )
    document = run_eval(config, settings, console)
    print_eval(document, out / "report.md")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
