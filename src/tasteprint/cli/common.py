"""What every command shares: the Typer app, the store, LLM and output options, and the one place
that turns a TasteprintError into a message and an exit code."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..api import Tasteprint
from ..errors import TasteprintError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLM user profiles and explained recommendations.")
err_console = Console(stderr=True)

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="store directory [env TASTEPRINT_HOME; default ./.tasteprint]")
]
LlmOpt = Annotated[str | None, typer.Option("--llm", help="local | openai [env TASTEPRINT_LLM]")]
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
