"""Structured generation: schema -> generate -> validate -> re-ask with the error -> one exception."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tasteprint.errors import StructuredOutputError

from .base import LLMBackend, Message

T = TypeVar("T", bound=BaseModel)


@dataclass
class Structured(Generic[T]):
    value: T
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    raw: str


def generate(
    backend: LLMBackend,
    messages: list[Message],
    output: type[T],
    *,
    schema: dict | None = None,
    max_attempts: int = 3,
    max_tokens: int = 400,
    temperature: float = 0.1,
) -> Structured[T]:
    """Ask for JSON matching `schema` (default: the pydantic model's schema) and validate it as `output`.

    A reply that is not JSON or fails validation is shown back to the model with the error, up to
    `max_attempts` calls in all. A re-ask answered with the very reply it rejected ends the attempts
    early: the next request would be the one just sent, which a seeded backend or the LLM cache
    answers the same way again.

    Raises:
        StructuredOutputError: no attempt validated; carries the attempt count and the last reply.
    """
    schema = schema or output.model_json_schema()
    conversation = list(messages)
    prompt_tokens = completion_tokens = 0
    seconds = 0.0
    reply = ""
    error = ""
    for attempt in range(1, max_attempts + 1):
        completion = backend.complete(conversation, json_schema=schema, max_tokens=max_tokens, temperature=temperature)
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        seconds += completion.seconds
        reply = completion.text
        try:
            value = output.model_validate(json.loads(reply, strict=False))
            return Structured(value, attempt, prompt_tokens, completion_tokens, seconds, reply)
        except json.JSONDecodeError as exc:
            error = f"the reply is not valid JSON ({exc.msg} at character {exc.pos})"
        except ValidationError as exc:
            error = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'root'}: {e['msg']}" for e in exc.errors()[:5])
        asked = conversation
        conversation = [
            *messages,
            {"role": "assistant", "content": reply[:2000]},
            {
                "role": "user",
                "content": f"That reply was invalid: {error}. Reply again with only JSON that matches the schema.",
            },
        ]
        if conversation == asked:
            break
    raise StructuredOutputError(
        f"no valid {output.__name__} after {attempt} attempts: {error}", attempts=attempt, last_reply=reply
    )
