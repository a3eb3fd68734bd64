"""The FastAPI application over one store: JSON routes under /v1 (errors as `{"error", "detail"}`),
/healthz, Prometheus /metrics, OpenAPI docs at /docs, and the profile page (`page`)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from tasteprint.api import Tasteprint
from tasteprint.chat.session import ChatSession
from tasteprint.chat.turns import SessionState
from tasteprint.errors import (
    ConfigError,
    StoreDamagedError,
    TasteprintError,
    UnknownItemError,
    UnknownUserError,
)
from tasteprint.models import Recommendation
from tasteprint.profile.facts import FACTS_CACHED

from .access import ApiError, Caller, bearer, identify
from .background import Background
from .batching import Batches
from .limits import BodyLimit
from .metrics import Measured, ServiceMetrics
from .page import register_page

Explanations = Literal["template", "auto", "prose", "slots"]
log = logging.getLogger("tasteprint")


class ProfileEdits(BaseModel):
    """A PATCH of the profile: what the person states (see `Tasteprint.edit_profile`)."""

    not_interested: list[str] = Field(default_factory=list, description="labels no pick may carry")
    more: list[str] = Field(default_factory=list, description="labels at least 3 of 10 picks carry")
    never: list[str] = Field(default_factory=list, description="items (ids or exact titles) never served again")
    liked: list[str] = Field(default_factory=list, description="items they enjoyed")
    undo: list[str] = Field(default_factory=list, description="labels or items whose earlier edit is removed")


class Picks(BaseModel):
    user_id: str
    recommendations: list[Recommendation]


class Statement(BaseModel):
    text: str = Field(min_length=1, max_length=2000, description="what they want, in their words")


class ChatLine(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    session_id: str | None = None


async def caller(request: Request) -> Caller:
    """Who sent the request (see `access.identify`); the route's dependency. On the event loop: one
    indexed lookup costs less than the hand-off to a worker thread would."""
    return identify(request.app.state.tp, bearer(request))


Authorized = Annotated[Caller, Depends(caller)]


def status_of(exc: TasteprintError) -> tuple[int, str]:
    if isinstance(exc, UnknownUserError | UnknownItemError):
        return 404, "not_found"
    if isinstance(exc, StoreDamagedError):
        return 503, "store_damaged"
    return 400, type(exc).__name__


def create_app(tp: Tasteprint) -> FastAPI:
    """The service over `tp`'s store, opened with `refit_stale` off: it serves the last fit while events
    arrive (new events count in the next request for that user), and `POST /v1/fit` refits in the
    background. A request never waits for a fit."""
    if tp.settings.refit_stale:
        raise ConfigError(
            "the service needs a store opened with refit_stale=False", hint="Tasteprint(..., refit_stale=False)"
        )
    background = Background(tp)
    app = FastAPI(title="tasteprint", summary="User profiles and explained recommendations over one store")
    app.add_middleware(BodyLimit, limit=tp.settings.max_body_bytes)
    app.state.tp = tp
    metrics = ServiceMetrics()
    # One batch of recommendations computed at a time: the work holds the GIL most of the time, and
    # threads that took turns at it slowed 16 concurrent clients to 64 requests/s from 84 one at a time.
    compute = threading.Lock()

    def picks(user_id: str, k: int) -> list[Recommendation]:
        """The fitted recommender's top `k` with template explanations: no model on the request path."""
        with compute:
            return tp.recommend(user_id, k, rerank=False, reasons=False).recommendations

    def picks_of_many(user_ids: list[str], k: int) -> list[list[Recommendation] | Exception]:
        """`picks` for each user, computed together, or the error to answer a user with."""
        with compute:
            results = tp.recommend_many(user_ids, k, rerank=False, reasons=False)
        return [r if isinstance(r, Exception) else r.recommendations for r in results]

    batches = Batches(picks_of_many, metrics.batch_sizes.observe)

    app.add_middleware(Measured, metrics=metrics)

    def error(status: int, name: str, detail: str) -> JSONResponse:
        return JSONResponse({"error": name, "detail": detail}, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return error(exc.status, exc.error, exc.detail)

    @app.exception_handler(TasteprintError)
    async def tasteprint_error(_: Request, exc: TasteprintError):
        return error(*status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return error(422, "invalid_request", "; ".join(problems))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        # A fault of ours, still answered in the one error shape; the traceback goes to the log.
        log.exception("unexpected error", exc_info=exc)
        return error(500, "internal", f"{type(exc).__name__}: the service failed on this request")

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict:
        fitted = tp.services.fitting.latest()
        return {
            "status": "ok",
            "fitted": fitted is not None,
            "refitting": background.pending("fit"),
            "worker": os.getpid(),  # which worker process answered
        }

    @app.get("/metrics", tags=["service"])
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/v1/users/{user_id}/recommendations", tags=["users"])
    async def recommendations(
        user_id: str,
        who: Authorized,
        k: Annotated[int, Query(ge=1, le=100)] = 10,
        explanations: Explanations = "template",
    ) -> dict:
        """Top-k picks from the fitted recommender, each as `recommend --json` prints it. `template`
        calls no model; the others serve the template until the model's wording is ready.

        Computed on the event loop, not handed to a thread: a few milliseconds of work that holds the
        GIL and the compute lock either way, so a thread only adds the hand-off and lock convoys under
        load. The requests that arrive meanwhile are answered together next (`Batches`)."""
        who.require(user_id)
        served = await batches.picks(user_id, k)
        if explanations != "template":
            served = background.with_reasons(user_id, explanations, served)
        # Serialised by pydantic in one call: FastAPI's generic encoder walks a dict of picks 3x slower.
        body = Picks(user_id=user_id, recommendations=served).model_dump_json()
        return Response(body, media_type="application/json")

    @app.get("/v1/users/{user_id}/profile", tags=["users"])
    def profile(user_id: str, who: Authorized):
        """The stored profile as `profile --json` prints it; when there is none yet, or events arrived
        since, a build is queued (202 while there is nothing to show)."""
        who.require(user_id)
        stored = background.stored_profile(user_id)
        if stored is None and not tp.db.has_user(user_id):
            raise UnknownUserError(user_id)
        if stored is None:
            return JSONResponse({"user_id": user_id, "status": "building"}, status_code=202)
        return stored.model_dump(mode="json")

    @app.patch("/v1/users/{user_id}/profile", tags=["users"])
    def edit(user_id: str, who: Authorized, edits: ProfileEdits) -> dict:
        """Record edits (the CLI's `edit`); an unknown label or item changes nothing (400, nearest named)."""
        who.require(user_id)
        result = tp.edit_profile(user_id, **edits.model_dump())
        background.forget(user_id)
        return {"user_id": user_id, "edits": [e.model_dump(mode="json") for e in result.edits]}

    @app.post("/v1/users/{user_id}/statement", tags=["users"])
    def statement(user_id: str, who: Authorized, said: Statement) -> dict:
        """What a person says they like and dislike, read into edits (the CLI's `edit --says`)."""
        who.require(user_id)
        result = tp.edit_profile(user_id, says=said.text)
        background.forget(user_id)
        return {"user_id": user_id, "edits": [e.model_dump(mode="json") for e in result.edits]}

    @app.get("/v1/users/{user_id}/events", tags=["users"])
    def events(
        user_id: str,
        who: Authorized,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        """The user's events, oldest first."""
        who.require(user_id)
        stored = tp.db.user_events(user_id)
        if not stored and not tp.db.profiles.has_edits(user_id):
            raise UnknownUserError(user_id)
        page = stored[offset : offset + limit]
        return {"total": len(stored), "events": [e.model_dump(exclude_none=True) for e in page]}

    @app.get("/v1/users/{user_id}/items/{item_id}/explanation", tags=["users"])
    def explanation(user_id: str, item_id: str, who: Authorized, explanations: Explanations = "template") -> dict:
        """Why an item fits the user; `template` builds the sentence from the evidence, no model."""
        who.require(user_id)
        return tp.explain(user_id, item_id, model=explanations != "template").model_dump()

    @app.post("/v1/users/{user_id}/chat", tags=["users"])
    def chat(user_id: str, who: Authorized, line: ChatLine) -> dict:
        """One chat turn as `chat --json` prints it, plus the `session_id` to send with the next line
        (sessions are kept in the store: they carry on across worker processes and restarts)."""
        who.require(user_id)
        if line.session_id is None:
            session_id, session = uuid.uuid4().hex, ChatSession(tp, rerank=False)
            session.switch(user_id)
        else:
            session_id, stored = line.session_id, tp.db.sessions.load(line.session_id)
            if stored is None:
                raise ApiError(404, "not_found", f"no chat session {session_id!r}; start one without session_id")
            if stored[0] != user_id:
                raise ApiError(403, "forbidden", "this session belongs to another user")
            session = ChatSession.resume(tp, SessionState.model_validate_json(stored[1]), rerank=False)
        turn = session.turn(line.text)
        tp.db.sessions.save(session_id, user_id, session.state().model_dump_json())
        background.forget(user_id)
        return turn.model_dump(mode="json") | {"session_id": session_id}

    @app.post("/v1/events", tags=["data"])
    def post_events(
        who: Authorized,
        body: Annotated[bytes, Body(media_type="application/x-ndjson", description="JSON lines, or a JSON array")],
    ):
        """Store events (ingest's generic format): every good record is kept, every bad one reported by
        line; an exact duplicate of a stored event is counted, not stored twice."""
        if not who.is_admin:
            raise ApiError(403, "forbidden", "posting events needs the admin token")
        report = ingest_body(tp, body)
        payload = report.model_dump(mode="json")
        for rejected in payload["errors"]:
            rejected["file"] = "request body"
        if report.rejected and not report.accepted and not report.duplicates:
            detail = "; ".join(f"line {e['line']}: {e['reason']}" for e in payload["errors"][:5])
            return JSONResponse({"error": "invalid_events", "detail": detail, "report": payload}, status_code=422)
        return payload

    @app.delete("/v1/users/{user_id}", tags=["users"])
    def forget(user_id: str, who: Authorized) -> dict:
        """Remove everything stored about the user (their tokens included)."""
        who.require(user_id)
        removed = tp.forget(user_id)
        background.forget(user_id)
        return {"user_id": user_id, "events_removed": removed}

    @app.post("/v1/fit", status_code=202, tags=["data"])
    def fit(who: Authorized) -> dict:
        """Refit on every stored event in the background; the new fit replaces the old when saved."""
        who.require_admin()
        return {"queued": background.refit(), "refitting": True}

    register_page(app, tp, background, picks)
    app.router.on_shutdown.append(background.close)
    return app


ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def from_environment() -> FastAPI:
    """The app over the store and model the TASTEPRINT_* environment names: what `tasteprint serve` runs
    in each worker process. One thread per numerical library: requests, not matrix products, share the
    cores. A request's small products gain little from a second thread, whose spinning doubled the CPU
    each request took (8.8 ms a request on one thread, 16.3 on two; ml-latest-small, 2 cores)."""
    from threadpoolctl import threadpool_limits

    for variable in ONE_THREAD:  # for the libraries loaded from here on (they read it when loaded)
        os.environ.setdefault(variable, "1")
    threadpool_limits(1)  # for those loaded already
    tp = Tasteprint(refit_stale=False)
    app = create_app(tp)
    warm(tp)
    return app


WARM_SECONDS = 60.0


def warm(tp: Tasteprint, budget_s: float = WARM_SECONDS) -> int:
    """Answer the most recently active users once (as many as the facts cache keeps, for at most
    `budget_s`) before accepting requests; how many were answered. Each worker process has its own
    caches: the first request answered loaded the fit, catalogue and indexes (4.6 s, ml-latest-small)
    while the worker's other connections waited behind it, and a user met cold under load costs a
    facts build and vector reads (5-50 ms) on top of the picks."""
    started = time.perf_counter()
    users = tp.db.recent_users(FACTS_CACHED)
    answered = 0
    for user_id in users:
        try:
            tp.recommend(user_id, 10, rerank=False, reasons=False)
            answered += 1
        except TasteprintError:  # answered with its error when asked; no reason to refuse to start
            pass
        if time.perf_counter() - started > budget_s:
            break
    if users:
        seconds = time.perf_counter() - started
        log.warning("worker %d warmed %d of %d users in %.1f s", os.getpid(), answered, len(users), seconds)
    return answered


def ingest_body(tp: Tasteprint, body: bytes):
    """Ingest a request body of JSON lines (or one JSON array of event objects) as the generic format;
    aspects are mined at the next refit, not per request."""
    text = body.lstrip()
    if text.startswith(b"["):
        try:
            rows = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"the body starts a JSON array but is not one: {exc}") from exc
        body = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    with tempfile.TemporaryDirectory(prefix="tasteprint-events-") as folder:
        path = Path(folder) / "events.jsonl"
        path.write_bytes(body)
        return tp.ingest(path, fmt="events", mine_aspects=False)
