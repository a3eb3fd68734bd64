"""Who may call what: the admin token (from the environment variable a setting names) reaches every
route; a per-user token (only its hash is stored) reaches that user's routes alone. Errors the service
returns are JSON objects `{"error", "detail"}`."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from fastapi import Request

from tasteprint.api import Tasteprint

PAGE_COOKIE = "tasteprint_token"  # the page's sign-in keeps the token in an HttpOnly cookie


class ApiError(Exception):
    """An error answered as `{"error", "detail"}` with an HTTP status."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the admin (`user_id` None) or one user."""

    user_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.user_id is None

    def require(self, user_id: str) -> None:
        """Refuse (403) a user token on another user's route."""
        if not self.is_admin and self.user_id != user_id:
            raise ApiError(403, "forbidden", f"this token is for user {self.user_id!r}, not {user_id!r}")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ApiError(403, "forbidden", "this route needs the admin token")


def bearer(request: Request) -> str | None:
    """The token of `Authorization: Bearer TOKEN`, else the page's sign-in cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(PAGE_COOKIE) or None


def identify(tp: Tasteprint, token: str | None) -> Caller:
    """The caller `token` names; 401 without a token or with one the store does not know."""
    if not token:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer TOKEN")
    admin = os.environ.get(tp.settings.admin_token_env, "")
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Caller(None)
    user_id = tp.db.tokens.user_of(token)
    if user_id is None:
        raise ApiError(401, "unauthorized", "unknown token")
    return Caller(user_id)
