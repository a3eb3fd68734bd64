"""The profile page at /: a person signs in with their token and sees their profile and picks, and
corrects them with controls that re-render the picks in place (htmx, shipped in the package's static
files; no JavaScript build, no CDN). Server-rendered with Jinja2; every control has a `data-testid`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tasteprint.api import Tasteprint
from tasteprint.errors import TasteprintError, UnknownUserError

from .access import PAGE_COOKIE, ApiError, Caller, bearer, identify
from .background import Background

HERE = Path(__file__).parent
PICKS = 10
LABELS_PER_PICK = 4
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def register_page(app: FastAPI, tp: Tasteprint, background: Background) -> None:
    """Add the page, its sign-in and its controls to `app`."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    def signed_in(request: Request, user: str | None) -> tuple[Caller, str]:
        """The caller and the user whose page it is (the admin names one with ?user=)."""
        caller = identify(tp, bearer(request))
        user_id = caller.user_id or user
        if user_id is None:
            raise ApiError(400, "no_user", "the admin token opens a person's page with ?user=ID")
        caller.require(user_id)
        return caller, user_id

    def picks_context(user_id: str, message: str = "") -> dict:
        picks = tp.recommend(user_id, PICKS, rerank=False, reasons=False).recommendations
        facts = tp.facts(user_id) if tp.db.has_user(user_id) else None
        titles = facts.item_titles if facts else {}
        showable = tp.services.workspace.label_items()
        items = tp.db.items([p.item_id for p in picks])
        labels = {
            p.item_id: sorted(label for label in items[p.item_id].labels() if label in showable)[:LABELS_PER_PICK]
            for p in picks
            if p.item_id in items
        }
        edits = tp.db.profiles.edits(user_id)
        return {
            "user_id": user_id,
            "picks": picks,
            "titles": titles,
            "labels": labels,
            "edits": edits,
            "message": message,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request, user: str | None = None):
        try:
            _, user_id = signed_in(request, user)
        except ApiError as exc:
            return render("signin.html", status=200 if exc.status == 401 else exc.status, problem=exc.detail)
        profile = tp.db.profiles.latest(user_id)
        if tp.db.has_user(user_id) and (profile is None or tp.db.profiles.is_stale(user_id)):
            background.build_profile(user_id)
        try:
            context = picks_context(user_id)
        except UnknownUserError:
            context = {"user_id": user_id, "picks": [], "titles": {}, "labels": {}, "edits": [], "message": ""}
        return render("page.html", profile=profile, **context)

    @app.post("/signin", include_in_schema=False)
    def signin(token: Annotated[str, Form()]):
        try:
            caller = identify(tp, token.strip())
        except ApiError as exc:
            return render("signin.html", status=401, problem=exc.detail)
        target = "/" if caller.user_id else "/?user="
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(PAGE_COOKIE, token.strip(), httponly=True, samesite="strict")
        return response

    @app.post("/signout", include_in_schema=False)
    def signout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(PAGE_COOKIE)
        return response

    def control(request: Request, user: str | None, **edit) -> HTMLResponse:
        """Apply one edit and answer the re-rendered picks (and the edits list, out of band)."""
        _, user_id = signed_in(request, user)
        message = ""
        try:
            tp.edit_profile(user_id, **edit)
            background.forget(user_id)
        except TasteprintError as exc:
            message = str(exc)
        return render("picks.html", **picks_context(user_id, message))

    @app.post("/page/not-interested", include_in_schema=False)
    def not_interested(request: Request, label: Annotated[str, Form()], user: str | None = None):
        return control(request, user, not_interested=[label])

    @app.post("/page/more", include_in_schema=False)
    def more(request: Request, label: Annotated[str, Form()], user: str | None = None):
        return control(request, user, more=[label])

    @app.post("/page/never", include_in_schema=False)
    def never(request: Request, item_id: Annotated[str, Form()], user: str | None = None):
        return control(request, user, never=[item_id])

    @app.post("/page/undo", include_in_schema=False)
    def undo(request: Request, target: Annotated[str, Form()], user: str | None = None):
        return control(request, user, undo=[target])

    @app.post("/page/says", include_in_schema=False)
    def says(request: Request, text: Annotated[str, Form(max_length=2000)], user: str | None = None):
        return control(request, user, says=text)
