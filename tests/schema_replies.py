"""A scripted reply that follows whatever JSON schema it is sent: the first admissible choice everywhere.

It lets unit tests run whole pipelines (profile, rerank, explain) deterministically without a model.
"""

from __future__ import annotations

import json


def fill(schema: dict, hint: str = "") -> object:
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return fill(schema["anyOf"][0], hint)
    kind = schema.get("type")
    if kind == "object":
        return {name: fill(sub, name) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = max(schema.get("minItems", 0), 1 if schema.get("maxItems", 1) else 0)
        choices = schema.get("items", {}).get("anyOf")
        if choices:
            return [fill(c) for c in choices[:count]]
        return [fill(schema.get("items", {})) for _ in range(count)]
    if kind == "string":
        return "Enjoys stories told well." if hint == "summary" else f"a {hint}"
    if kind == "integer":
        return schema.get("minimum", 1)
    return None


def schema_reply(messages, schema) -> str:
    return json.dumps(fill(schema or {"type": "object"}))
