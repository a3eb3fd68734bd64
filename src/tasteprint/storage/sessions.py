"""Chat sessions of the HTTP service in the store's SQLite database: each session's state as JSON, with
the user it belongs to, so a conversation carries on across requests, worker processes and restarts.
`Database.sessions` is one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sqlite import Database


class SessionTable:
    """Chat session states, over the `Database` connection of the calling thread."""

    def __init__(self, db: Database):
        self.db = db  # its `conn` is this thread's connection

    def save(self, session_id: str, user_id: str, state: str) -> None:
        with self.db.conn:
            self.db.conn.execute(
                "INSERT INTO chat_sessions(session_id, user_id, state) VALUES (?, ?, ?) "
                "ON CONFLICT(session_id) DO UPDATE SET state=excluded.state, updated_at=CURRENT_TIMESTAMP",
                (session_id, user_id, state),
            )

    def load(self, session_id: str) -> tuple[str, str] | None:
        """(the user it belongs to, its state as JSON), or None for a session the store does not hold."""
        row = self.db.conn.execute(
            "SELECT user_id, state FROM chat_sessions WHERE session_id=?", (session_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None
