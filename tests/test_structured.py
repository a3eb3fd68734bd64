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
    backend = ScriptedBackend(["{", "{", "{", "never used"])
    with pytest.raises(StructuredOutputError) as info:
        generate(backend, [{"role": "user", "content": "go"}], Pick, max_attempts=3)
    assert info.value.attempts == 3
    assert info.value.last_reply == "{"
    assert len(backend.replies) == 1


def test_raw_control_characters_inside_strings_are_tolerated():
    backend = ScriptedBackend(['{"label": "a\tb", "score": 1}'])
    assert generate(backend, [{"role": "user", "content": "go"}], Pick).value.label == "a\tb"


def test_only_an_object_of_required_string_enums_is_a_finite_reply():
    from tasteprint.llm.choices import enum_parts

    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "enum": ["x", 'say "hi"', "x"]}, "b": {"type": "string", "enum": ["é"]}},
        "required": ["a", "b"],
    }
    assert enum_parts(schema) == [['{"a":'], [' "x"', ' "say \\"hi\\""'], [', "b":'], [' "é"'], ["}"]]
    assert enum_parts({**schema, "required": ["a"]}) is None
    assert enum_parts({**schema, "properties": {"a": {"type": "string", "pattern": "x"}}, "required": ["a"]}) is None
    numbers = {"type": "object", "properties": {"a": {"type": "integer", "enum": [1]}}, "required": ["a"]}
    assert enum_parts(numbers) is None
    assert enum_parts(None) is None
