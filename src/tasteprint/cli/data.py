"""Commands that load and maintain a store: ingest, fit, link accounts, index, forget, check, backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasteprint.errors import IngestError
from tasteprint.models import FitTarget

from .common import FormatOpt, JsonOpt, Where, command, err_console
from .render import (
    console,
    print_fit,
    print_ingest,
)


@command(llm=False)
def ingest(
    path: Annotated[Path, typer.Argument(help="data file or folder")],
    format: FormatOpt = None,
    platform: Annotated[str | None, typer.Option("--platform", help="platform name for these events")] = None,
    identity_map: Annotated[
        Path | None,
        typer.Option("--identity-map", help="CSV platform,platform_user_id,person_id linking accounts to people"),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="exit non-zero if any record is rejected")] = False,
    no_fit: Annotated[bool, typer.Option("--no-fit", help="load only; the recommender is fitted on first use")] = False,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Load a data set into the store, reporting every rejected record by file, line and reason, then
    fit the recommender on everything stored (unless --no-fit)."""
    tp = where.open()
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


@command()
def fit(
    target: Annotated[
        FitTarget | None,
        typer.Option("--target", help="validate on each user's next items, a random fifth, or both (the default)"),
    ] = None,
    rerank_users: Annotated[
        int, typer.Option("--rerank-users", min=0, help="validation users to tune the LLM rerank blend on")
    ] = 0,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Fit the recommender on the store's interactions and save it: retrievers, recency, ranker and
    (with --rerank-users) the LLM blend, each chosen on held-out validation users."""
    tp = where.open(fit_target=target)
    report = tp.fit(progress=not as_json, rerank_users=rerank_users)
    if as_json:
        print(report.model_dump_json())
    else:
        print_fit(report)


@command(llm=False)
def link(
    identity_map: Annotated[Path, typer.Argument(help="CSV platform,platform_user_id,person_id")],
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Link accounts on several platforms to one person; their stored events move to the person id."""
    report = where.open().link_identities(identity_map)
    if as_json:
        print(report.model_dump_json())
        return
    console.print(f"{report.links} account links, {report.events_moved} stored events moved to their person")
    for error in report.errors:
        err_console.print(f"{Path(error.file).name}:{error.line}: {error.reason}")


@command(llm=False)
def index(
    *,
    where: Where,
):
    """Embed every catalogue item into the vector store (done on demand by recommend too)."""
    tp = where.open()
    console.print(f"indexed {tp.index()} new items")


@command(llm=False)
def forget(
    user_id: Annotated[str, typer.Argument(help="user id")],
    *,
    where: Where,
):
    """Delete a user's events, profiles, cached LLM responses and embeddings; afterwards the user is unknown."""
    removed = where.open().forget(user_id)
    console.print(
        f"forgot user {user_id}: {removed} events, all profile versions, cached LLM responses and the profile embedding"
    )


@command(llm=False)
def check(as_json: JsonOpt = False, *, where: Where):
    """Verify a store: SQLite's integrity check, and whether the fit and the item vectors match the
    data (stale ones are rebuilt on use). Exits 1 when the database is damaged."""
    report = where.open().check()
    if as_json:
        print(report.model_dump_json())
    else:
        console.print(f"database: {report.database}")
        if not report.damaged:
            fit = {None: "never fitted", True: "current", False: "stale (refitted on use)"}[report.fit_current]
            console.print(f"data version {report.data_version}; fit: {fit}")
            console.print(f"item vectors: {report.items_embedded} of {report.items} items")
    if report.damaged:
        raise typer.Exit(1)


@command(llm=False)
def backup(
    directory: Annotated[Path, typer.Argument(help="a new folder for the copy")],
    *,
    where: Where,
):
    """Copy a store consistently, even while it is in use (SQLite's online backup)."""
    target = where.open().backup(directory)
    console.print(f"backed up to {target}")
