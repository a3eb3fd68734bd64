import pytest
from pydantic import BaseModel

from tasteprint.errors import StructuredOutputError
from tasteprint.llm import ScriptedBackend, generate


class Pick(BaseModel):
    label: str
    score: int


def test_reasks_with_the_validation_error_then_succeeds():
    backend = ScriptedBackend(["not json at all", {"label": "x"}, {"label": "x", "score": 3}])
    result = generate(backend, [{"role": "user", "content": "go"}], Pick)
    assert result.value == Pick(label="x", score=3)
    assert result.attempts == 3
    second_request = backend.history[1][0]
    assert "not valid JSON" in second_request[-1]["content"]
    third_request = backend.history[2][0]
    assert "score" in third_request[-1]["content"] and "Field required" in third_request[-1]["content"]
    assert backend.history[0][1]["properties"]["score"]["type"] == "integer"


def test_one_clear_exception_after_bounded_attempts():
    backend = ScriptedBackend(["{", "[", "{", "never used"])
    with pytest.raises(StructuredOutputError) as info:
        generate(backend, [{"role": "user", "content": "go"}], Pick, max_attempts=3)
    assert info.value.attempts == 3
    assert info.value.last_reply == "{"
    assert len(backend.replies) == 1


def test_a_reask_answered_with_the_rejected_reply_is_not_sent_again():
    # A seeded server or the LLM cache answers a repeated request with the same reply: a third call
    # would have been the second one again.
    backend = ScriptedBackend(["{", "{", "never used"])
    with pytest.raises(StructuredOutputError) as info:
        generate(backend, [{"role": "user", "content": "go"}], Pick, max_attempts=3)
    assert info.value.attempts == 2 and "after 2 attempts" in info.value.message
    assert len(backend.history) == 2
    assert list(backend.replies) == ["never used"]


def test_raw_control_characters_inside_strings_are_tolerated():
    backend = ScriptedBackend(['{"label": "a\tb", "score": 1}'])
    assert generate(backend, [{"role": "user", "content": "go"}], Pick).value.label == "a\tb"


def test_a_finite_schema_compiles_and_anything_else_is_left_to_the_grammar():
    from tasteprint.llm.choices import Choice, Fields, Items, Tagged, compile_schema, longest_reply

    reasons = {
        "type": "object",
        "properties": {"a": {"type": "string", "enum": ["x", 'say "hi"', "x"]}, "b": {"type": "string", "enum": ["é"]}},
        "required": ["a", "b"],
    }
    assert compile_schema(reasons) == Fields((("a", Choice(('"x"', '"say \\"hi\\""'))), ("b", Choice(('"é"',)))))
    claim = {
        "type": "object",
        "properties": {
            "label": {"const": "Drama"},
            "evidence": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"enum": ["1", "12"]}},
        },
        "required": ["label", "evidence"],
    }
    other = {**claim, "properties": {**claim["properties"], "label": {"const": "War"}}}
    draft = {
        "type": "object",
        "properties": {"interests": {"type": "array", "maxItems": 5, "items": {"anyOf": [claim, other]}}},
        "required": ["interests"],
    }
    evidence = Items(Choice(('"1"', '"12"')), 1, 3)
    assert compile_schema(draft) == Fields(
        (
            (
                "interests",
                Items(
                    Tagged(
                        "label",
                        (('"Drama"', Fields((("evidence", evidence),))), ('"War"', Fields((("evidence", evidence),)))),
                    ),
                    0,
                    5,
                ),
            ),
        )
    )
    assert longest_reply(compile_schema(draft)) >= len(
        '{"interests": [' + ", ".join(['{"label": "Drama", "evidence": ["12", "12", "12"]}'] * 5) + "]}"
    )
    for unsupported in [
        {**reasons, "required": ["a"]},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x+$"}}, "required": ["a"]},
        {"type": "object", "properties": {"a": {"type": "integer", "enum": [1, 10]}}, "required": ["a"]},
        {"type": "array", "items": {"enum": ["a"]}},  # unbounded
        {"anyOf": [claim, claim]},  # the tag does not tell them apart
        None,
    ]:
        assert compile_schema(unsupported) is None, unsupported


def test_a_pattern_with_finitely_many_matches_becomes_steps_of_prefix_free_choices():
    """Each step ends at a part that cannot be empty; optional parts join what follows them (so
    skipping one is a choice too), the closing quote ends the last step, and JSON escapes apply."""
    import re

    from tasteprint.llm.choices import Steps, compile_schema
    from tasteprint.llm.patterns import string_steps

    pattern = (
        '^(Likes|Loves) (Drama, (such as|for example) (Heat \\(1995\\)|"Up")|Crime, such as (Fargo))'
        "(, and (Drama|Crime))?[.]( Rates (Horror|Gore) low[.])?( A (generous rater)[.])?$"
    )
    steps = string_steps(pattern)
    assert steps[:3] == (('"',), ("Likes", "Loves"), (" ",))
    assert steps[3] == (
        "Drama, such as Heat (1995)",
        'Drama, such as \\"Up\\"',
        "Drama, for example Heat (1995)",
        'Drama, for example \\"Up\\"',
        "Crime, such as Fargo",
    )
    assert steps[4] == (".", ", and Drama.", ", and Crime.")
    assert set(steps[5]) == {
        '"',
        ' A generous rater."',
        ' Rates Horror low."',
        ' Rates Horror low. A generous rater."',
        ' Rates Gore low."',
        ' Rates Gore low. A generous rater."',
    }
    # Every path through the steps is a JSON string whose text the pattern matches.
    import itertools
    import json

    for path in itertools.islice(itertools.product(*steps), 500):
        assert re.fullmatch(pattern, json.loads("".join(path)))
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}, "required": ["s"]}
    assert compile_schema(schema).fields[0][1] == Steps(steps)
    for unsupported in ["^(a|ab)$", "^[^{}]{20,240}$", "^a*$", "^(a|b)+$", "^\\d$", "^.$", "^(a$"]:
        assert string_steps(unsupported) is None, unsupported
