"""The hosted backend against real HTTP servers on 127.0.0.1: llama.cpp's OpenAI-compatible server
serving the embedded model, and a scripted server that injects rate limits and errors."""

import time

import pytest

from tasteprint.db import Database
from tasteprint.errors import ConfigError, LLMError
from tasteprint.facts import FactBook
from tasteprint.llm.llamacpp import default_model_path
from tasteprint.llm.openai_compat import OpenAICompatBackend
from tasteprint.profile import build_profile

from servers import chat_body, llama_server, scripted_http_server
from test_local_model import assert_verified


@pytest.mark.model
def test_profile_through_real_openai_compatible_server(movielens_store):
    book = FactBook(Database(movielens_store))
    facts = book.facts("1")
    with llama_server(default_model_path()) as base_url:
        backend = OpenAICompatBackend("smollm2", base_url=base_url, json_mode="auto")
        profile = build_profile(facts, backend, vocabulary=set(book.global_shares))
    # llama.cpp's server rejects OpenAI's json_schema format; auto mode must have fallen back.
    assert backend.json_mode == "json_object"
    assert profile.model == "smollm2"
    assert profile.interests
    assert_verified(profile, facts)


def test_retries_429_with_retry_after_and_500_then_succeeds():
    script = [
        (429, {"retry-after": "0.2"}, {"error": {"message": "slow down"}}, 0),
        (500, {}, {"error": {"message": "boom"}}, 0),
        (200, {}, chat_body('{"ok": true}'), 0),
    ]
    with scripted_http_server(script) as (base_url, requests):
        backend = OpenAICompatBackend("m", base_url=base_url, json_mode="json_object", max_retries=3)
        start = time.monotonic()
        reply = backend.complete([{"role": "user", "content": "hi"}], json_schema={"type": "object"})
        elapsed = time.monotonic() - start
    assert reply.text == '{"ok": true}'
    assert len(requests) == 3
    assert elapsed >= 0.2  # the Retry-After header was honoured
    assert requests[0]["response_format"] == {"type": "json_object", "schema": {"type": "object"}}


def test_gives_up_with_a_clear_error_after_bounded_retries():
    script = [(503, {}, {"error": {"message": "down"}}, 0)] * 5
    with scripted_http_server(script) as (base_url, requests):
        backend = OpenAICompatBackend("m", base_url=base_url, max_retries=2)
        with pytest.raises(LLMError, match="hosted model call failed"):
            backend.complete([{"role": "user", "content": "hi"}])
    assert len(requests) == 3


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_KEY"):
        OpenAICompatBackend("gpt-4o-mini", api_key_env="MY_KEY")
