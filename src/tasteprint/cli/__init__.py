"""Command line: parses arguments, calls the library, prints rich tables or exact JSON. Each module
registers its commands on the one Typer `app` (`common`)."""

# Importing a module registers its commands; `--help` lists them in this order, the pipeline's.
from . import data, jobs, profiles, recommending, serving  # noqa: F401
from .common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    app()
