"""Batch profiling, on Ray Data or in this process: the same facts, prompts, model calls and
verification as `Tasteprint.profile` (the profile stage of `LLMStages`), for many users at once.

The driver computes each user's facts from the store (`FactBook`, as `profile` does: milliseconds per
user). The expensive stage, prompts -> model -> verification, runs in `ProfileStage`: on Ray Data as a
pool of actors (`--engine ray`, any Ray cluster), or in this process (`--engine local`). Each finished
profile is appended to `OUT/profiles.jsonl` (one profile object per line) and saved into the store as
it arrives, so a run that dies resumes where it stopped; `OUT/profiles.parquet` is written at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, TypedDict, Unpack

from pydantic import BaseModel, Field

from tasteprint.config import Settings
from tasteprint.errors import ConfigError, TasteprintError
from tasteprint.explain.chain import LLMStages
from tasteprint.llm import make_backend
from tasteprint.models import UserFacts, UserProfile
from tasteprint.progress import LoggedProgress

from .profiles import ProfileService

Engine = Literal["ray", "local"]


class BatchReport(BaseModel):
    """What a batch run did, and where it wrote."""

    engine: str
    built: int = 0
    skipped: list[str] = Field(default_factory=list, description="users already in profiles.jsonl (resumed)")
    failures: dict[str, str] = Field(default_factory=dict)
    jsonl: Path
    parquet: Path


class ProfileStage:
    """Facts in, profiles out: one batch of rows {user_id, facts (JSON)} -> {user_id, profile, error}.

    A Ray Data actor (created once per worker, so each holds one model client) and the in-process
    engine both run this class. No store is opened here: workers need only the facts and the model.
    """

    def __init__(self, settings: dict, vocabulary: list[str]):
        settings = Settings.model_validate(settings)
        self.stages = LLMStages.from_settings(settings, make_backend(settings), set(vocabulary))

    def __call__(self, batch: dict) -> dict:
        out: dict[str, list] = {"user_id": [], "profile": [], "error": []}
        for user_id, facts_json in zip(batch["user_id"], batch["facts"]):
            out["user_id"].append(str(user_id))
            try:
                profile = self.stages.profile(UserFacts.model_validate_json(str(facts_json)))
            except TasteprintError as exc:
                out["profile"].append("")
                out["error"].append(str(exc))
            else:
                out["profile"].append(profile.model_dump_json())
                out["error"].append("")
        return out


def finished_users(jsonl: Path) -> set[str]:
    """Users whose profile a previous run already wrote to `jsonl` (one profile object per line)."""
    if not jsonl.exists():
        return set()
    return {json.loads(line)["user_id"] for line in jsonl.read_text().splitlines() if line.strip()}


def run_stage(
    rows: list[dict], settings: dict, vocabulary: list[str], engine: Engine, actors: int, ray_address: str | None
) -> Iterator[dict]:
    """Yield the stage's output rows as they finish, from `actors` Ray Data actors or from this process."""
    if not rows:
        return  # everything resumed: no cluster to start
    if engine == "local":
        stage = ProfileStage(settings, vocabulary)
        for row in rows:
            result = stage({"user_id": [row["user_id"]], "facts": [row["facts"]]})
            yield {key: values[0] for key, values in result.items()}
        return
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--engine ray needs Ray Data", hint="pip install 'tasteprint[ray]'") from exc
    if not ray.is_initialized():
        # Without an address: a local cluster on this machine's cores; with one, that cluster.
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    dataset = ray.data.from_items(rows).map_batches(
        ProfileStage,
        fn_constructor_kwargs={"settings": settings, "vocabulary": vocabulary},
        batch_size=1,
        concurrency=actors,
        num_cpus=0.5,  # a hosted call mostly waits; whole CPUs per actor would starve Ray Data's own tasks
    )
    yield from dataset.iter_rows()


def write_parquet(jsonl: Path, parquet: Path) -> None:
    """Every profile in `jsonl` as one Parquet row: id, version, model, summary, labels, the full JSON."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for line in jsonl.read_text().splitlines():
        profile = UserProfile.model_validate_json(line)
        rows.append(
            {
                "user_id": profile.user_id,
                "version": profile.version,
                "model": profile.model,
                "summary": profile.summary,
                "interests": [i.label for i in profile.interests],
                "dislikes": [d.label for d in profile.dislikes],
                "profile": line,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), parquet)


class BatchOptions(TypedDict, total=False):
    """How `batch_profile` runs.

    Attributes:
        engine: "ray" (Ray Data, the default) or "local" (this process).
        actors: Ray actors, each holding one model (default 2).
        ray_address: a running Ray cluster to join (default: start a local one).
        progress: show a progress bar, or a line of progress off a terminal (default True).
    """

    engine: Engine
    actors: int
    ray_address: str | None
    progress: bool


def batch_profile(
    profiles: ProfileService, out: Path, users: Iterable[str] | None = None, **options: Unpack[BatchOptions]
) -> BatchReport:
    """Profile `users` (default: all) of the store `profiles` serves; see the module docstring."""
    engine, actors = options.get("engine", "ray"), options.get("actors", 2)
    ray_address, progress = options.get("ray_address"), options.get("progress", True)
    workspace = profiles.workspace
    out.mkdir(parents=True, exist_ok=True)
    report = BatchReport(engine=engine, jsonl=out / "profiles.jsonl", parquet=out / "profiles.parquet")
    done = finished_users(report.jsonl)
    pending = []
    for user_id in users if users is not None else workspace.db.user_ids():
        if str(user_id) in done:
            report.skipped.append(str(user_id))
        else:
            pending.append(str(user_id))
    watermarks = {u: workspace.db.event_watermark(u) for u in pending}  # read first, as `profile` does
    facts = {u: workspace.factbook.facts(u) for u in pending}
    rows = [{"user_id": u, "facts": f.model_dump_json()} for u, f in facts.items()]
    # The workers need the model settings only; no cache, since the store stays with the driver.
    settings = workspace.settings.model_dump(mode="json", exclude={"store", "chroma_url"}) | {"llm_cache": False}
    vocabulary = sorted(workspace.factbook.global_shares)
    with report.jsonl.open("a") as sink, LoggedProgress(disable=not progress) as bar:
        task = bar.add_task(f"profiling on {engine} ({len(report.skipped)} already done)", total=len(rows))
        for row in run_stage(rows, settings, vocabulary, engine, actors, ray_address):
            user_id = row["user_id"]
            if row["error"]:
                report.failures[user_id] = row["error"]
            else:
                profile = profiles.store(
                    UserProfile.model_validate_json(row["profile"]), facts[user_id], watermarks[user_id]
                )
                sink.write(profile.model_dump_json() + "\n")
                sink.flush()
                report.built += 1
            bar.advance(task)
    if report.jsonl.exists():
        write_parquet(report.jsonl, report.parquet)
    return report
