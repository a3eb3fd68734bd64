"""Commands of the HTTP service: `serve`, and `token create` for a person's access token."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated

import typer

from .common import Where, app, command, err_console

token_app = typer.Typer(no_args_is_help=True, help="Access tokens for the HTTP service.")
app.add_typer(token_app, name="token")


@command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port to listen on")] = 8000,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="worker processes (a request's work holds Python's lock: one per core)"),
    ] = 1,
    *,
    where: Where,
):
    """Serve the store over HTTP: JSON routes under /v1 (docs at /docs), /healthz, /metrics, and the page
    at / where a person sees and corrects their profile. Tokens: the admin's from TASTEPRINT_ADMIN_TOKEN,
    a person's from `tasteprint token create USER`."""
    import uvicorn

    from tasteprint.service.listeners import own_listeners_supported, serve_with_own_listeners
    from tasteprint.service.metrics import SHARED_FOLDER

    tp = where.open(refit_stale=False)
    tp.recommender(progress=True)  # fitted before the first request when the store has none, never during one
    store = tp.settings.store
    tp.close()
    # Each worker opens the store from the environment (the app factory), as this process would.
    chosen = where.options(store=str(store))
    os.environ.update({f"TASTEPRINT_{name.upper()}": str(value) for name, value in chosen.items() if value})
    err_console.print(f"serving {store} on http://{host}:{port} with {workers} worker(s) (docs at /docs)")
    options = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": "warning",
        "access_log": False,  # a line per request costs more than some requests; /metrics counts them
        "timeout_graceful_shutdown": 5,
    }
    factory = "tasteprint.service.app:from_environment"
    with tempfile.TemporaryDirectory(prefix="tasteprint-metrics-") as shared:
        if workers > 1:  # /metrics adds up every worker's values (`service.metrics`); a folder set already is kept
            os.environ.setdefault(SHARED_FOLDER, shared)
        if own_listeners_supported(workers):
            serve_with_own_listeners(uvicorn.Config(factory, **options))
        else:
            uvicorn.run(factory, **options)


@command("create", llm=False, group=token_app)
def create_token(user_id: Annotated[str, typer.Argument(help="the user the token opens")], *, where: Where):
    """Create a token that opens USER's routes and page, printed alone on stdout; the store keeps only
    its hash, so it cannot be shown again."""
    print(where.open().db.tokens.create(user_id))
