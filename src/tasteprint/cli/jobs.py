"""Whole jobs: the demo on the embedded defaults and the offline evaluation."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tasteprint.config import Settings

from .common import CandidatesOpt, FormatOpt, KOpt, SeedOpt, Where, command
from .render import (
    console,
    print_eval,
)


class Protocol(str, Enum):
    """`--protocol` choices: the evaluation's protocols, all of them, or `stated` (not part of `all`: it
    ranks from a sentence read by the model, on the sample)."""

    loo = "loo"
    cand20 = "cand20"
    msr = "msr"
    all = "all"
    stated = "stated"


@command()
def demo(
    data: Annotated[
        Path | None, typer.Option("--data", help="MovieLens folder (default: ../shared data if present)")
    ] = None,
    users: Annotated[list[str] | None, typer.Option("--users", help="a user id to show (repeat for more)")] = None,
    k: KOpt = 5,
    *,
    where: Where,
):
    """Ingest a slice of MovieLens (or the built-in sample), profile a few users, recommend with reasons."""
    from .demo import run_demo

    run_demo(
        console,
        data=data,
        user_ids=users or ["1", "2", "3"],
        k=k,
        **where.options(),
    )


@command("eval")
def eval_command(
    path: Annotated[Path, typer.Argument(help="data file or folder, any format ingest reads")],
    protocol: Annotated[
        list[Protocol] | None, typer.Option("--protocol", help="a protocol to run (repeat for more) [default: all]")
    ] = None,
    methods: Annotated[
        str, typer.Option("--methods", help="comma-separated methods")
    ] = "random,pop,itemknn,ease,hybrid,tasteprint",
    sample: Annotated[int, typer.Option("--sample", min=1, help="users drawn at random for LLM methods")] = 50,
    seed: SeedOpt = None,
    out: Annotated[Path, typer.Option("--out", help="report folder")] = Path("eval-report"),
    format: FormatOpt = None,
    candidates: CandidatesOpt = None,
    *,
    where: Where,
):
    """Evaluate methods on real data: report.md, results.json and PNG plots in --out."""
    from tasteprint.evaluation.runner import EvalConfig, run_eval
    from tasteprint.evaluation.tasks import PROTOCOLS

    chosen = [p.value for p in protocol or [Protocol.all]]
    named = [p for p in chosen if p != "all"]
    protocols = list(dict.fromkeys([*PROTOCOLS, *named] if "all" in chosen else named))
    settings = Settings.load(**where.options(store=where.store or out / "store", seed=seed, candidates=candidates))
    config = EvalConfig(
        path=path,
        out=out,
        protocols=protocols,
        methods=[m.strip() for m in methods.split(",")],
        sample=sample,
        fmt=format,
    )
    document = run_eval(config, settings, console)
    print_eval(document, out / "report.md")
