"""Whole jobs: the demo on the embedded defaults and the offline evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import Settings
from ..errors import TasteprintError
from ..render import (
    console,
    print_eval,
)
from .common import Where, command


@command()
def demo(
    data: Annotated[
        Path | None, typer.Option("--data", help="MovieLens folder (default: ../shared data if present)")
    ] = None,
    users: Annotated[str, typer.Option("--users", help="comma-separated user ids to show")] = "1,2,3",
    k: Annotated[int, typer.Option("-k", min=1)] = 5,
    *,
    where: Where,
):
    """Ingest a slice of MovieLens (or the built-in sample), profile a few users, recommend with reasons."""
    from ..demo import run_demo

    run_demo(
        console,
        data=data,
        user_ids=[u.strip() for u in users.split(",") if u.strip()],
        k=k,
        **where.options(),
    )


@command("eval")
def eval_command(
    path: Annotated[Path, typer.Argument(help="data file or folder, any format ingest reads")],
    protocol: Annotated[str, typer.Option("--protocol", help="loo | cand20 | msr | all")] = "all",
    methods: Annotated[
        str, typer.Option("--methods", help="comma-separated methods")
    ] = "random,pop,itemknn,ease,hybrid,tasteprint",
    users: Annotated[int, typer.Option("--users", min=1, help="users sampled for LLM methods")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    out: Annotated[Path, typer.Option("--out", help="report folder")] = Path("eval-report"),
    format: Annotated[str | None, typer.Option("--format")] = None,
    candidates: Annotated[int, typer.Option("--candidates", min=2, help="candidates the LLM reranks")] = 20,
    *,
    where: Where,
):
    """Evaluate methods on real data: report.md, results.json and PNG plots in --out."""
    from ..evaluate import PROTOCOLS
    from ..report import EvalConfig, run_eval

    protocols = list(PROTOCOLS) if protocol == "all" else [p.strip() for p in protocol.split(",")]
    if set(protocols) - set(PROTOCOLS):
        raise TasteprintError(f"unknown protocol in {protocol!r}", hint="use loo, cand20, msr or all")
    settings = Settings.load(**where.options(store=where.store or out / "store"))
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
