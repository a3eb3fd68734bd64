"""The profile side of the store's SQLite database: profile versions, which profiles are stale, and
the LLM response cache. A part of `Database`, which provides the per-thread connection `conn`."""

from __future__ import annotations

from .models import UserProfile


class ProfileTables:
    """Profile versions, staleness and cached LLM responses, over `Database.conn`."""

    def save_profile(self, profile: UserProfile) -> UserProfile:
        """Store a profile as the user's next version, atomically, and return it with that version."""
        with self.conn:
            (latest,) = self.conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM profiles WHERE user_id=?", (profile.user_id,)
            ).fetchone()
            stored = profile.model_copy(update={"version": latest + 1})
            self.conn.execute(
                "INSERT INTO profiles VALUES (?,?,?,?)",
                (stored.user_id, stored.version, stored.created_at.isoformat(), stored.model_dump_json()),
            )
            # Events that arrived while the profile was being built keep it stale.
            self.conn.execute(
                "DELETE FROM stale_profiles WHERE user_id=? AND NOT EXISTS "
                "(SELECT 1 FROM events WHERE user_id=? AND rowid > ?)",
                (stored.user_id, stored.user_id, stored.event_watermark),
            )
        return stored

    def latest_profile(self, user_id: str) -> UserProfile | None:
        row = self.conn.execute(
            "SELECT body FROM profiles WHERE user_id=? ORDER BY version DESC LIMIT 1", (user_id,)
        ).fetchone()
        return UserProfile.model_validate_json(row[0]) if row else None

    def profile_versions(self, user_id: str) -> list[UserProfile]:
        rows = self.conn.execute("SELECT body FROM profiles WHERE user_id=? ORDER BY version", (user_id,)).fetchall()
        return [UserProfile.model_validate_json(r[0]) for r in rows]

    def profiled_users(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT user_id FROM profiles ORDER BY user_id")]

    def is_stale(self, user_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM stale_profiles WHERE user_id=?", (user_id,)).fetchone() is not None

    def cache_completion(self, key: str, model: str, user_id: str | None, completion: str) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO llm_cache(request_key, model, user_id, completion) VALUES (?,?,?,?)",
                (key, model, user_id, completion),
            )

    def cached_completion(self, key: str) -> str | None:
        row = self.conn.execute("SELECT completion FROM llm_cache WHERE request_key=?", (key,)).fetchone()
        return row[0] if row else None
