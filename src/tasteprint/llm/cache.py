"""LLM responses cached by a hash of (model, request) in the store's SQLite file.

A batch killed mid-way and run again replays the calls it already paid for instead of recomputing
them. Each entry is tagged with the user it was made for (`on_behalf_of`), so forgetting a user
deletes their cached responses too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict

from .base import Completion, LLMBackend, Message

_owner: ContextVar[str | None] = ContextVar("llm_cache_owner", default=None)


@contextmanager
def on_behalf_of(user_id: str) -> Iterator[None]:
    """Tag every response cached inside the block with `user_id`."""
    token = _owner.set(user_id)
    try:
        yield
    finally:
        _owner.reset(token)


def request_key(model: str, messages: list[Message], json_schema: dict | None, max_tokens: int, temperature: float):
    request = {"model": model, "messages": messages, "schema": json_schema, "max": max_tokens, "t": temperature}
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class CachedBackend:
    """Wraps any backend; a request seen before returns the stored completion (marked `cached`).

    `store` is anything with `cached_completion(key)` and `cache_completion(key, model, owner, json)`:
    the store's `Database.responses`.
    """

    def __init__(self, backend: LLMBackend, store):
        self.inner = backend
        self.store = store
        self.model_name = backend.model_name
        self.enforces_schema = backend.enforces_schema
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str):
        # count_tokens, n_ctx, raw_decode and the like belong to the wrapped backend.
        return getattr(self.inner, name)

    def complete(self, messages, *, json_schema=None, max_tokens=512, temperature=0.1) -> Completion:
        key = request_key(self.model_name, messages, json_schema, max_tokens, temperature)
        if (stored := self.store.cached_completion(key)) is not None:
            self.hits += 1
            return Completion(**{**json.loads(stored), "cached": True})
        completion = self.inner.complete(
            messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
        )
        self.misses += 1
        self.store.cache_completion(key, self.model_name, _owner.get(), json.dumps(asdict(completion)))
        return completion
