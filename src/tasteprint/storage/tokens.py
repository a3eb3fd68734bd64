"""Access tokens in the store's SQLite database: only a SHA-256 hash of each token is kept, with the
user it opens. `Database.tokens` is one; the HTTP service creates and checks them."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sqlite import Database


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenTable:
    """Per-user tokens, over the `Database` connection of the calling thread."""

    def __init__(self, db: Database):
        self.db = db  # its `conn` is this thread's connection

    def create(self, user_id: str) -> str:
        """A new random token for `user_id`; the store keeps its hash only, so this is the one time it is seen."""
        token = secrets.token_urlsafe(32)
        with self.db.conn:
            self.db.conn.execute("INSERT INTO tokens(token_hash, user_id) VALUES (?, ?)", (token_hash(token), user_id))
        return token

    def user_of(self, token: str) -> str | None:
        """The user `token` opens, or None for a token the store does not hold."""
        row = self.db.conn.execute("SELECT user_id FROM tokens WHERE token_hash=?", (token_hash(token),)).fetchone()
        return row[0] if row else None
