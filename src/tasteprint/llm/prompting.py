"""Prompt templates, and the grammar helpers that confine what a prompt may be answered with.

Templates: Jinja2 with StrictUndefined. Defaults ship in the package (`prompts/`, also linked at the
repository top level); a `prompts_dir` setting overrides any template by file name.

Templates receive data, never code: user text is passed as values (and JSON-escaped by the
templates), so `{{ }}` inside a review stays literal text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

PACKAGE_PROMPTS = Path(__file__).parents[1] / "prompts"


@lru_cache(maxsize=8)
def _environment(override_dir: str | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(PACKAGE_PROMPTS))]
    if override_dir:
        loaders.insert(0, jinja2.FileSystemLoader(override_dir))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, prompts_dir: Path | None = None, **data: object) -> str:
    """Render template `name` (e.g. "profile_user.j2") with `data`; a missing variable is an error."""
    return _environment(str(prompts_dir) if prompts_dir else None).get_template(name).render(**data).strip()


def chat(system: str, user: str, prompts_dir: Path | None = None, **data: object) -> list[dict[str, str]]:
    """A system + user message pair, both rendered from templates; `data` goes to the user template."""
    return [
        {"role": "system", "content": render(system, prompts_dir)},
        {"role": "user", "content": render(user, prompts_dir, **data)},
    ]


def string_schema(field: str, pattern: str) -> dict:
    """A JSON schema for an object with one required string field matching `pattern`."""
    return {"type": "object", "properties": {field: {"type": "string", "pattern": pattern}}, "required": [field]}


_PATTERN_SAFE = re.compile(r"[\w .,:;'!&/()-]+")


def _literal(text: str) -> str:
    return text.replace(".", "[.]").replace("(", "\\(").replace(")", "\\)")


def one_of(options: list[str]) -> str:
    """A regex alternation of literal options, or "" when none is usable.

    llama.cpp's pattern converter mishandles some escapes (it copies "\\." into the grammar, which
    then fails to parse and crashes the process), so options are limited to characters it handles,
    with "." written as "[.]" and parentheses escaped; other options are left out.
    """
    safe = [_literal(o) for o in options if _PATTERN_SAFE.fullmatch(o)]
    return "(" + "|".join(safe) + ")" if safe else ""


def pairs(options: list[str]) -> list[str]:
    """ "A and B" for every two different options, so a grammar never offers the same one twice."""
    return [f"{a} and {b}" for n, a in enumerate(options) for b in options[n + 1 :]]
