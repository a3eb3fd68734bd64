"""A regular expression with finitely many matches, as a sequence of steps that each choose one string.

The confined sentences this project asks small models for (profile summaries, explanations) are
patterns built from literal text, groups of alternatives and optional groups, e.g.
`^(Likes|Loves) (Drama, such as (Heat \\(1995\\)))(, and (...))?[.]( Rates (Horror) low[.])?$`. Such a
pattern matches finitely many strings, but far too many to list (every verb, claim, title and
optional sentence combined). Cut after each part that can never be empty, it becomes a short
sequence of steps, each a modest list of strings that no other string of the same step begins
(optional parts are merged with what follows them, so "skip it" is the next part's text). Decoding
picks one string per step, left to right (`choices.decode_choices`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import product

MAX_STEP_OPTIONS = 4096  # beyond this a step is left to the grammar path
_SPECIAL = set("()|?*+{}[]^$.\\")


class Unsupported(Exception):
    """The pattern uses something outside literals, groups, `|`, `?` and one-character classes."""


@dataclass(frozen=True)
class _Group:
    branches: tuple[tuple, ...]  # each branch a sequence of parts (str or _Group or _Optional)


@dataclass(frozen=True)
class _Optional:
    part: object


def _parse(pattern: str) -> tuple:
    text = pattern[1:] if pattern.startswith("^") else pattern
    text = text[:-1] if text.endswith("$") and not text.endswith("\\$") else text
    branches, end = _alternatives(text, 0)
    if end != len(text):
        raise Unsupported(f"unbalanced ')' at {end}")
    return (_Group(branches),) if len(branches) > 1 else branches[0]


def _alternatives(text: str, at: int) -> tuple[tuple[tuple, ...], int]:
    branches = []
    while True:
        parts, at = _sequence(text, at)
        branches.append(parts)
        if at < len(text) and text[at] == "|":
            at += 1
            continue
        return tuple(branches), at


def _sequence(text: str, at: int) -> tuple[tuple, int]:
    parts: list = []
    while at < len(text) and text[at] not in "|)":
        char = text[at]
        if char == "(":
            branches, at = _alternatives(text, at + 1)
            if at >= len(text) or text[at] != ")":
                raise Unsupported("unclosed '('")
            part, at = _Group(branches), at + 1
        elif char == "[":
            close = text.find("]", at)
            if close != at + 2 or text[at + 1] in "^\\":
                raise Unsupported("only one-character classes like [.] are supported")
            part, at = text[at + 1], close + 1
        elif char == "\\":
            if at + 1 >= len(text) or text[at + 1].isalnum():
                raise Unsupported("only escaped punctuation is supported")
            part, at = text[at + 1], at + 2
        elif char in _SPECIAL:
            raise Unsupported(f"{char!r} is not supported")
        else:
            part, at = char, at + 1
        if at < len(text) and text[at] == "?":
            part, at = _Optional(part), at + 1
        if at < len(text) and text[at] in "*+{":
            raise Unsupported("repetition is not finite")
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return tuple(parts), at


def _strings(part) -> list[str]:
    """Every string `part` matches."""
    if isinstance(part, str):
        return [part]
    if isinstance(part, _Optional):
        return ["", *_strings(part.part)]
    return list(dict.fromkeys(s for branch in part.branches for s in _joined(branch)))


def _joined(parts: tuple) -> list[str]:
    strings = [""]
    for part in parts:
        strings = ["".join(pair) for pair in product(strings, _strings(part))]
        if len(strings) > MAX_STEP_OPTIONS:
            raise Unsupported("too many strings in one step")
    return list(dict.fromkeys(strings))


def _can_be_empty(part) -> bool:
    # Literal runs are never empty: `_sequence` only ever appends characters to them.
    return not isinstance(part, str) and "" in _strings(part)


def _prefix_free(options: list[str]) -> bool:
    ordered = sorted(options)
    return all(not b.startswith(a) for a, b in zip(ordered, ordered[1:]))


def _escaped(parts: tuple) -> list[str]:
    """The strings `parts` match, as they read inside a JSON string."""
    return [json.dumps(s, ensure_ascii=False)[1:-1] for s in _joined(parts)]


def string_steps(pattern: str) -> tuple[tuple[str, ...], ...] | None:
    """The JSON string matching `pattern` (quotes included) as steps of prefix-free options, or None
    when the pattern is not of the finite kind described above or a step would hold more than
    MAX_STEP_OPTIONS strings."""
    try:
        steps: list[list[str]] = [['"']]
        pending: list = []
        for part in _parse(pattern):
            pending.append(part)
            if not _can_be_empty(part):
                steps.append(_escaped(tuple(pending)))
                pending = []
        steps.append([text + '"' for text in _escaped(tuple(pending))])  # what may be empty ends at the quote
    except Unsupported:
        return None
    if not all(_prefix_free(step) for step in steps):
        return None
    return tuple(tuple(step) for step in steps)
