"""The one interface every language-model backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Message = dict[str, str]


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False


@runtime_checkable
class LLMBackend(Protocol):
    """A chat model. `complete` returns the reply text; with `json_schema` the reply must be JSON.

    `enforces_schema` says whether the backend constrains decoding to the schema (a grammar) or only
    asks for it; either way the caller validates what comes back.
    """

    model_name: str
    enforces_schema: bool

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict | None = None,
        max_tokens: int = 512,
        temperature: float = 0.1,
    ) -> Completion: ...
