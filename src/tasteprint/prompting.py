"""Prompt templates: Jinja2 with StrictUndefined. Defaults ship in the package (`prompts/`, also linked
at the repository top level); a `prompts_dir` setting overrides any template by file name.

Templates receive data, never code: user text is passed as values (and JSON-escaped by the
templates), so `{{ }}` inside a review stays literal text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

PACKAGE_PROMPTS = Path(__file__).parent / "prompts"


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
