"""A deterministic backend that replays queued replies: for unit tests, yours and ours."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable

from tasteprint.errors import LLMError

from .base import Completion, Message

Reply = str | dict | Callable[[list[Message], dict | None], str]


class ScriptedBackend:
    """Replays `replies` in order. A reply is text, a dict (sent as JSON) or a function of the request.

    Every request is kept in `history` so tests can assert on what the pipeline sent.
    """

    model_name = "scripted"
    enforces_schema = False

    def __init__(self, replies: Iterable[Reply] = ()):
        self.replies: deque[Reply] = deque(replies)
        self.history: list[tuple[list[Message], dict | None]] = []

    def enqueue(self, *replies: Reply) -> ScriptedBackend:
        self.replies.extend(replies)
        return self

    def complete(self, messages, *, json_schema=None, max_tokens=512, temperature=0.1) -> Completion:
        self.history.append((messages, json_schema))
        if not self.replies:
            raise LLMError(
                "scripted backend has no reply left",
                hint="--llm scripted is no model: it replays replies queued through the Python API "
                "(ScriptedBackend([...])), so from the command line every LLM stage fails or falls back",
            )
        reply = self.replies.popleft()
        if callable(reply):
            reply = reply(messages, json_schema)
        text = json.dumps(reply) if isinstance(reply, dict) else reply
        return Completion(
            text=text, prompt_tokens=sum(len(m["content"]) // 4 for m in messages), completion_tokens=len(text) // 4
        )
