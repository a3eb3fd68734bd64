"""The profile page at /: a person signs in with their token and sees their profile and picks, and
corrects them with controls that re-render the picks in place (htmx, shipped in the package's static
files; no JavaScript build, no CDN). Server-rendered with Jinja2; every control has a `data-testid`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tasteprint.api import Tasteprint
from tasteprint.errors import TasteprintError, UnknownUserError
from tasteprint.models import Recommendation

from .access import PAGE_COOKIE, ApiError, bearer, identify
from .background import Background

HERE = Path(__file__).parent
PICKS = 10
LABELS_PER_PICK = 4
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


EDITS = {  # the page's controls: which edit each makes, as `Tasteprint.edit_profile`'s arguments
    "not_interested": lambda value: {"not_interested": [value]},
    "more": lambda value: {"more": [value]},
    "never": lambda value: {"never": [value]},
    "undo": lambda value: {"undo": [value]},
    "says": lambda value: {"says": value},
}


def register_page(
    app: FastAPI, tp: Tasteprint, background: Background, picks: Callable[[str, int], list[Recommendation]]
) -> None:
    """Add the page, its sign-in and its controls to `app`; `picks` serves a user's list as the API does."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    def signed_in(request: Request, user: str | None) -> str:
        """The user whose page it is: the token's, or the one the admin names with ?user=."""
        caller = identify(tp, bearer(request))
        user_id = caller.user_id or user
        if not user_id:
            raise ApiError(400, "no_user", "the admin token opens a person's page with ?user=ID")
        caller.require(user_id)
        return user_id

    def picks_context(user_id: str, message: str = "") -> dict:
        """What picks.html shows: the list, the titles its evidence cites, each pick's labels, the edits."""
        try:
            shown = picks(user_id, PICKS)
        except UnknownUserError:  # a person known by nothing yet: the page asks them what they like
            shown = []
        titles = tp.facts(user_id).item_titles if tp.db.has_user(user_id) else {}
        showable = tp.services.workspace.label_items()
        items = tp.db.items([p.item_id for p in shown])
        labels = {
            i: sorted(label for label in item.labels() if label in showable)[:LABELS_PER_PICK]
            for i, item in items.items()
        }
        edits = tp.db.profiles.edits(user_id)
        return {
            "user_id": user_id,
            "picks": shown,
            "titles": titles,
            "labels": labels,
            "edits": edits,
            "message": message,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request, user: str | None = None):
        try:
            user_id = signed_in(request, user)
        except ApiError as exc:
            return render("signin.html", status=200 if exc.status == 401 else exc.status, problem=exc.detail)
        return render("page.html", profile=background.stored_profile(user_id), **picks_context(user_id))

    @app.post("/signin", include_in_schema=False)
    def signin(token: Annotated[str, Form()]):
        try:
            identify(tp, token.strip())
        except ApiError as exc:
            return render("signin.html", status=401, problem=exc.detail)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(PAGE_COOKIE, token.strip(), httponly=True, samesite="strict")
        return response

    @app.post("/signout", include_in_schema=False)
    def signout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(PAGE_COOKIE)
        return response

    @app.post("/page/edit", include_in_schema=False)
    def edit(
        request: Request,
        action: Annotated[Literal["not_interested", "more", "never", "undo", "says"], Form()],
        value: Annotated[str, Form(min_length=1, max_length=2000)],
        user: str | None = None,
    ):
        """Apply one control's edit and answer the re-rendered picks and edits; a name the catalogue does
        not have changes nothing and is said above the picks."""
        user_id = signed_in(request, user)
        message = ""
        try:
            tp.edit_profile(user_id, **EDITS[action](value))
            background.forget(user_id)
        except TasteprintError as exc:
            message = str(exc)
        return render("picks.html", **picks_context(user_id, message))
