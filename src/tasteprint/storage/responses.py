"""The LLM response cache in the store's SQLite database: completions keyed by a hash of the request,
each tagged with the user it was made for. `Database.responses` is one; `CachedBackend` reads and
writes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sqlite import Database


class ResponseCache:
    """Cached completions, over the `Database` connection of the calling thread."""

    def __init__(self, db: Database):
        self.db = db  # its `conn` is this thread's connection

    def cache_completion(self, key: str, model: str, user_id: str | None, completion: str) -> None:
        """Store `completion` (JSON) under `key`, tagged with the model and the user it was made for."""
        with self.db.conn:
            self.db.conn.execute(
                "INSERT OR REPLACE INTO llm_cache(request_key, model, user_id, completion) VALUES (?,?,?,?)",
                (key, model, user_id, completion),
            )

    def cached_completion(self, key: str) -> str | None:
        """The completion stored under `key`, or None."""
        row = self.db.conn.execute("SELECT completion FROM llm_cache WHERE request_key=?", (key,)).fetchone()
        return row[0] if row else None
