"""The hosted backend against real HTTP servers on 127.0.0.1: llama.cpp's OpenAI-compatible server
serving the embedded model, and a scripted server that injects rate limits and errors."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import pytest
from schema_replies import schema_reply
from servers import chat_body, llama_server, reply_server, request_schema, scripted_http_server, send_json, serve
from test_local_model import assert_verified

from tasteprint import Tasteprint
from tasteprint.chat.intents import INTENTS, ROUTE_TOOL, ToolChoice
from tasteprint.chat.session import ChatSession
from tasteprint.cli.demo import BUILT_IN
from tasteprint.errors import ConfigError, LLMError
from tasteprint.llm import ScriptedBackend
from tasteprint.llm.llamacpp import default_model_path
from tasteprint.llm.openai_compat import OpenAICompatBackend


@pytest.mark.model
def test_concurrent_batch_through_llama_server_profiles_every_user_verified(movielens_store, fresh_copy):
    # Not compared token for token with a sequential run: llama.cpp's server reuses the KV prefix of
    # whichever request came before, and a different order shifts logits enough to flip greedy picks.
    # Equality with a deterministic endpoint is the next test's job.
    users = ["1", "4"]
    store = fresh_copy(movielens_store)
    with llama_server(default_model_path()) as base_url:
        tp = Tasteprint(store=store, llm="openai", model="smollm2", base_url=base_url, llm_cache=False)
        batch = tp.profile_many(users, progress=False, threads=2)
    # llama.cpp's server rejects OpenAI's json_schema format; auto mode must have fallen back.
    assert tp.backend.json_mode == "json_object"
    assert not batch.failures, batch.failures  # in full: pytest would cut the server's error short
    assert list(batch.profiles) == users  # reported in the order asked, whatever order they finished in
    for user in users:
        profile = batch.profiles[user]
        assert profile.model == "smollm2" and profile.interests
        assert_verified(profile, tp.facts(user))
        assert tp.db.profiles.latest(user).version == 1
        # The summary's token budget fits its pattern, so the server's grammar ends it as valid JSON
        # (the written text may still be replaced by the checks).
        assert not [r for r in profile.verification.reasons if "no valid summary" in r], profile.verification.reasons


@pytest.mark.slow
def test_concurrent_batch_keeps_requests_in_flight_builds_what_one_at_a_time_builds_and_resumes(tmp_path):
    def answer(body: dict) -> str:
        return schema_reply(body["messages"], request_schema(body))

    built = {}
    with reply_server(answer, latency_s=0.25) as (base_url, log):
        for concurrency in (1, 4):
            tp = Tasteprint(store=tmp_path / str(concurrency), llm="openai", model="m", base_url=base_url)
            tp.ingest(BUILT_IN)
            users = tp.users()
            overlap_before = log.max_in_flight
            built[concurrency] = tp.profile_many(users, progress=False, threads=concurrency)
        requests = log.requests
        again = tp.profile_many(users, progress=False, threads=4)
    assert overlap_before == 1  # one at a time really was one at a time
    assert log.max_in_flight >= 2  # with 4 workers, requests overlapped
    batch = built[4]
    assert not batch.failures and list(batch.profiles) == users
    for user in users:  # the same requests got the same replies: the same profiles
        assert batch.profiles[user].interests == built[1].profiles[user].interests
        assert batch.profiles[user].summary == built[1].profiles[user].summary
        assert tp.db.profiles.latest(user).version == 1
    assert sorted(again.reused) == sorted(users) and log.requests == requests  # nothing recomputed


@pytest.mark.model
def test_rerank_explain_segments_and_chat_through_llama_server(tmp_path):
    """Every LLM stage, not only profiles, through a real OpenAI-compatible server."""
    from test_recommend_real import assert_grounded

    with llama_server(default_model_path()) as base_url:
        tp = Tasteprint(
            store=tmp_path, llm="openai", model="smollm2", base_url=base_url, llm_cache=False, rerank_blend=0.3
        )
        tp.ingest(BUILT_IN)
        result = tp.recommend("ana", k=5)
        recommendations, stats, reasons = result.recommendations, result.rerank, result.reasons
        explanation = tp.explain("ana", recommendations[0].item_id)
        # A second profile for two segments, written by a script: the batch tests profile through the server.
        Tasteprint(store=tmp_path, llm=ScriptedBackend([schema_reply] * 4)).profile("ben")
        segmentation = tp.segments(k=2)
        session = ChatSession(tp)
        session.turn("switch to user ana")
        why = session.turn(f"why would I like {recommendations[1].title}?")
        # Chat routing by OpenAI tool calling: the server forces the `act` call and confines its
        # arguments by grammar; the session asks the model first and keeps its choice or its failure.
        line = [{"role": "user", "content": "recommend something"}]
        routed = ToolChoice.model_validate(tp.backend.call_tool(line, ROUTE_TOOL))
        by_model = ChatSession(tp, user_id="ana", rerank=False, router="model")
        turn = by_model.turn("recommend something")
    assert routed.intent in INTENTS
    # Behind the session's routing prompt the 135M model repeats itself inside the argument until the
    # token cap (deterministic at temperature 0): the failure is kept with its line, and the examples read it.
    assert turn.understood_by == "embedding" and len(by_model.route_failures) == 1, by_model.route_failures
    assert by_model.route_failures[0].startswith("'recommend something': ") and turn.recommendations
    facts = tp.facts("ana")
    assert stats.valid_passes == 1 and stats.fallback is None  # the rerank ran through the server
    assert stats.out_of_candidates == 0 and stats.missing == 0
    assert_grounded([r.model_dump() for r in recommendations], facts, 5)
    # The prose path ran (a hosted backend): the call succeeded and every reason was either shown or
    # replaced with its cause; what the tiny model writes freely may well fail the check.
    assert reasons.mode == "prose" and reasons.fallback is None and reasons.requested >= 3
    assert reasons.kept + len(reasons.problems) == reasons.requested
    assert [r.explanation_source for r in recommendations].count("llm") == reasons.kept
    assert explanation.grounded and set(explanation.evidence) <= set(facts.history_item_ids)
    assert sorted(m for s in segmentation.segments for m in s.members) == ["ana", "ben"]
    assert any(s.by_llm and s.verified for s in segmentation.segments), [
        (s.description, s.fallback) for s in segmentation.segments
    ]
    assert why.intent == "why" and recommendations[1].title in why.reply


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


def test_auto_json_mode_falls_back_in_every_thread_when_one_switched_it_first():
    # The llama.cpp server rejects json_schema with HTTP 500 at once. The server below answers the
    # second rejection only after the first thread's json_object retry has arrived, so that thread has
    # switched the shared mode before the second thread sees its own rejection (seen in CI under load).
    both_sent = threading.Barrier(2, timeout=10)
    first_switched = threading.Event()
    rejections = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if body["response_format"]["type"] == "json_schema":
                both_sent.wait()
                with lock:
                    rejections.append(body)
                    second = len(rejections) == 2
                if second:
                    first_switched.wait(timeout=10)
                message = "literal_error: Input should be 'text' or 'json_object'"  # llama.cpp's wording
                status, payload = 500, {"error": {"message": message, "type": "internal_server_error"}}
            else:
                first_switched.set()
                status, payload = 200, chat_body('{"ok": true}')
            send_json(self, status, payload)

        def log_message(self, *args):
            pass

    lock = threading.Lock()
    with serve(Handler) as base_url:
        backend = OpenAICompatBackend("m", base_url=base_url, json_mode="auto", max_retries=0)
        with ThreadPoolExecutor(2) as pool:
            calls = [
                pool.submit(backend.complete, [{"role": "user", "content": str(i)}], json_schema={"type": "object"})
                for i in range(2)
            ]
            replies = [call.result().text for call in calls]
    assert len(rejections) == 2 and first_switched.is_set()
    assert replies == ['{"ok": true}'] * 2
    assert backend.json_mode == "json_object"


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
