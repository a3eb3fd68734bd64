"""Redaction of personal identifiers in user-written text: e-mail addresses, phone numbers, card
numbers, IP addresses and URLs carrying query strings.

Patterns are conservative on purpose: item ids (MovieLens numbers, Amazon ASINs, ISBNs written as ten
bare digits) and dates must survive, so a phone number needs separators between its digit groups.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .base import Completion, LLMBackend, Message

PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "url": re.compile(r"https?://\S+"),
    "card": re.compile(r"(?<![\w-])\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}(?![\w-])"),
    "phone": re.compile(r"(?<![\w-])\+?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]\(?\d{2,5}\)?){2,4}(?![\w-])"),
    "ip": re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"),
}


def _has_enough_digits(match: re.Match[str]) -> bool:
    return sum(ch.isdigit() for ch in match.group()) >= 9


def redact(text: str) -> str:
    """`text` with each identifier replaced by its kind in brackets, e.g. "[email]"."""
    for kind, pattern in PATTERNS.items():
        if kind in ("phone", "card"):
            text = pattern.sub(lambda m, k=kind: f"[{k}]" if _has_enough_digits(m) else m.group(), text)
        else:
            text = pattern.sub(f"[{kind}]", text)
    return text


class RedactingBackend:
    """Redacts every message before it reaches the wrapped backend, and the reply before it comes back:
    on by default for hosted models, so identifiers in reviews never leave the machine nor get stored."""

    def __init__(self, backend: LLMBackend):
        self.inner = backend
        self.model_name = backend.model_name
        self.enforces_schema = backend.enforces_schema

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def call_tool(self, messages: list[Message], tool: dict, **options) -> dict:
        return self.inner.call_tool(_redacted(messages), tool, **options)

    def complete(self, messages: list[Message], *, json_schema=None, max_tokens=512, temperature=0.1) -> Completion:
        reply = self.inner.complete(
            _redacted(messages), json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
        )
        return replace(reply, text=redact(reply.text))


def _redacted(messages: list[Message]) -> list[Message]:
    return [{**m, "content": redact(m["content"])} for m in messages]
