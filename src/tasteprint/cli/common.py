"""What every command shares: the Typer app, the store, LLM and output options, and the one place
that turns a TasteprintError into a message and an exit code."""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tasteprint.api import Tasteprint
from tasteprint.config import LLMName
from tasteprint.errors import TasteprintError
from tasteprint.ingest.formats import Format

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLM user profiles and explained recommendations.")
err_console = Console(stderr=True)

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="store directory [env TASTEPRINT_STORE; default ./.tasteprint]")
]
LlmOpt = Annotated[
    LLMName | None,
    typer.Option(
        "--llm",
        help="the embedded model, a hosted OpenAI-compatible one, or scripted (no model, for tests: LLM stages "
        "fall back or fail) [env TASTEPRINT_LLM]",
    ),
]
KOpt = Annotated[int, typer.Option("-k", "--k", min=1, help="how many items each list shows")]
CandidatesOpt = Annotated[
    int | None,
    typer.Option("--candidates", min=2, help="candidates the LLM reranks [env TASTEPRINT_CANDIDATES; default 20]"),
]
FormatOpt = Annotated[Format | None, typer.Option("--format", help="the data's format [default: detected]")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="random seed [env TASTEPRINT_SEED; default 42]")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="GGUF path (local) or model name (openai) [env TASTEPRINT_MODEL]")
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint [env TASTEPRINT_BASE_URL]")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print exactly the pydantic JSON")]
ChromaUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url", help="a Chroma server (http://host:port) instead of the store's own [env TASTEPRINT_CHROMA_URL]"
    ),
]


@dataclass
class Where:
    """The store and model a command works on, from the options every command shares."""

    store: Path | None = None
    chroma_url: str | None = None
    llm: str | None = None
    model: str | None = None
    base_url: str | None = None

    def options(self, **more: object) -> dict:
        """These choices (and `more`) as `Settings` overrides; None means the default or environment."""
        return {**asdict(self), **more}

    def open(self, **more: object) -> Tasteprint:
        return Tasteprint(**self.options(**more))


SHARED = {"store": StoreOpt, "chroma_url": ChromaUrlOpt, "llm": LlmOpt, "model": ModelOpt, "base_url": BaseUrlOpt}


def command(name: str | None = None, *, llm: bool = True, store: bool = True, group: typer.Typer | None = None):
    """Register a command (on `app`, or on a sub-command `group`) whose function takes `where: Where`
    (keyword-only): the shared options --store (unless the command declares its own), --chroma-url and,
    with `llm`, --llm, --model and --base-url are added to its own, and library errors become one line
    on stderr and an exit code."""
    shared = [n for n in SHARED if (llm or n not in ("llm", "model", "base_url")) and (store or n != "store")]

    def register(function):
        hints = typing.get_type_hints(function, include_extras=True)
        own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(function).parameters.values()]
        own = [p for p in own if p.name != "where"]
        keyword = inspect.Parameter.KEYWORD_ONLY
        added = [inspect.Parameter(n, keyword, default=None, annotation=SHARED[n]) for n in shared]

        @functools.wraps(function)
        def run(**arguments):
            where = Where(**{n: arguments.pop(n) for n in shared})
            try:
                return function(where=where, **arguments)
            except TasteprintError as exc:
                err_console.print(f"[bold red]error:[/] {exc.message}")
                if exc.hint:
                    err_console.print(f"[yellow]hint:[/] {exc.hint}")
                raise typer.Exit(exc.exit_code) from None

        run.__signature__ = inspect.Signature(own + added)  # what typer reads to build the options
        run.__annotations__ = {p.name: p.annotation for p in own + added}
        return (group or app).command(name)(run)

    return register
