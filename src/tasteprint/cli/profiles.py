"""Commands that build profiles: one user or all (`profile`), a Ray batch (`batch-profile`), segments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tasteprint.errors import BatchFailed, TasteprintError, UnknownUserError
from tasteprint.services.batch import Engine

from .common import FormatOpt, JsonOpt, Where, command, err_console
from .render import (
    console,
    print_batch,
    print_diff,
    print_edits,
    print_history,
    print_profile,
    print_segments,
)


@command()
def profile(
    user_ids: Annotated[list[str] | None, typer.Argument(help="user id(s), as in the source data")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="every user in the store")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="rebuild from all facts as a new version")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="what changed between the last two versions")] = False,
    history: Annotated[bool, typer.Option("--history", help="list the stored versions")] = False,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="users in flight at once in a batch; speeds up hosted backends")
    ] = 1,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Show a user's profile: built with the LLM if none is stored yet, updated if new events arrived.

    With several ids or --all it runs a batch: each finished profile is stored at once, so a killed
    batch run again skips what was done (and replays cached LLM calls of the user it was on).
    """
    tp = where.open()
    ids = tp.users() if all_users else list(user_ids or [])
    if not ids:
        raise TasteprintError("no user given", hint="tasteprint profile USER_ID [USER_ID ...] or --all")
    if diff or history:
        if len(ids) != 1:
            raise TasteprintError("--diff and --history take exactly one user id")
        if not tp.db.has_user(ids[0]) and not tp.db.profiles.has_edits(ids[0]):
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
            cited = [i for claim in result.interests + result.dislikes for i in claim.evidence]
            cited += [e.item_id for e in result.edits if e.item_id]
            print_profile(result, {i: item.title for i, item in tp.db.items(cited).items()})
        return
    if threads > 1 and tp.settings.llm == "local":
        err_console.print("note: the embedded model decodes one request at a time; --threads helps hosted backends")
    batch = tp.profile_many(ids, refresh=refresh, threads=threads)
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
        raise BatchFailed(len(batch.failures), len(ids))


@command("batch-profile", store=False)
def batch_profile_command(
    events: Annotated[Path, typer.Argument(help="events to profile: a JSON lines or Parquet file, or any data set")],
    out: Annotated[Path, typer.Option("--out", help="folder for profiles.jsonl and profiles.parquet")],
    engine: Annotated[Engine, typer.Option("--engine", help="Ray Data (any cluster) or this process")] = "ray",
    actors: Annotated[int, typer.Option("--actors", min=1, help="Ray actors, each with one model client")] = 2,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="a running Ray cluster; default: start one here")
    ] = None,
    first: Annotated[int | None, typer.Option("--first", min=1, help="only the first N users, by id")] = None,
    format: FormatOpt = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="store to load the events into [default: OUT/store]")
    ] = None,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Profile every user in EVENTS with the same facts, prompts and verification as `profile`, the
    model calls spread over Ray Data workers. A rerun skips users already in OUT/profiles.jsonl."""
    tp = where.open(store=store or out / "store")
    tp.ingest(events, format)
    users = tp.users()[:first] if first else None
    report = tp.batch_profile(out, users, engine=engine, actors=actors, ray_address=ray_address)
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
        raise BatchFailed(len(report.failures), report.built + len(report.failures))


@command()
def segments(
    count: Annotated[
        str, typer.Option("--segments", help="number of segments, or auto (best silhouette for 2..8)")
    ] = "auto",
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Cluster profiled users into segments (k-means), each described by the LLM and verified."""
    if count != "auto" and not count.isdigit():
        raise TasteprintError(f"--segments must be a number or auto, not {count!r}")
    tp = where.open()
    result = tp.segments(k=count if count == "auto" else int(count))
    if as_json:
        print(result.model_dump_json(exclude={"segments": {"__all__": {"centroid"}}}))
        return
    print_segments(result)


@command()
def edit(
    user_id: Annotated[str, typer.Argument(help="user id; a new one starts a profile from what is stated")],
    not_interested: Annotated[
        list[str] | None, typer.Option("--not-interested", help="a label no pick may carry (repeatable)")
    ] = None,
    more: Annotated[
        list[str] | None, typer.Option("--more", help="a label at least 3 of 10 picks carry (repeatable)")
    ] = None,
    never: Annotated[
        list[str] | None, typer.Option("--never", help="an item id or exact title never to serve (repeatable)")
    ] = None,
    undo: Annotated[
        list[str] | None, typer.Option("--undo", help="a label or item whose earlier edit is removed (repeatable)")
    ] = None,
    says: Annotated[
        str | None, typer.Option("--says", help="what they like, in their words: kept as a note, read into edits")
    ] = None,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Correct a profile: what a person is not interested in, wants more of, never wants again, or says.

    Edits outlive every rebuild and update of the profile and steer every recommendation until undone.
    An unknown label or item changes nothing and names the nearest ones.
    """
    if not (not_interested or more or never or undo or says):
        raise TasteprintError("nothing to edit", hint="give --not-interested, --more, --never, --undo or --says")
    tp = where.open()
    result = tp.edit_profile(
        user_id, not_interested=not_interested or (), more=more or (), never=never or (), undo=undo or (), says=says
    )
    if as_json:
        print(json.dumps([e.model_dump(mode="json") for e in result.edits]))
        return
    titles = {i: item.title for i, item in tp.db.items([e.item_id for e in result.edits if e.item_id]).items()}
    print_edits(result.edits, titles)
    if result.reading is not None:
        for reason in result.reading.reasons:
            console.print(f"[dim]{reason}[/]")
    if result.profile is None:
        console.print("[dim]no profile yet: the first `tasteprint profile` build carries these edits[/]")
    else:
        console.print(f"[dim]profile v{result.profile.version} shows them[/]")
