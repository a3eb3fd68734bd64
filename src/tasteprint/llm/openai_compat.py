"""Hosted backend: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a llama.cpp server)."""

from __future__ import annotations

import json
import os
import time

import openai
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from tasteprint.errors import ConfigError, LLMError

from .base import Completion, Message


class MalformedReply(Exception):
    """A 200 response whose body is not a chat completion (truncated, HTML from a proxy, no choices)."""


RETRYABLE = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    MalformedReply,
)
MAX_RETRY_AFTER_S = 30.0
_backoff = wait_exponential_jitter(max=10)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE) and not _is_json_mode_rejection(exc)


def _is_json_mode_rejection(exc: BaseException) -> bool:
    """llama.cpp's server answers a `json_schema` response_format with HTTP 500 naming `json_object`."""
    return isinstance(exc, openai.APIStatusError) and "json_object" in str(exc)


def _wait(state: RetryCallState) -> float:
    """Honour a server's Retry-After header (bounded); otherwise exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome else None
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(float(header), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    return _backoff(state)


def _format_options(json_schema: dict | None, mode: str) -> dict:
    """The response_format of a request: json_object carries the schema so llama.cpp's grammar applies."""
    if json_schema is None:
        return {}
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": json_schema}}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": json_schema}}}


class OpenAICompatBackend:
    """Chat completions over HTTP with retries on 429, 5xx, timeouts and dropped connections.

    `json_mode`: `json_schema` (OpenAI's structured outputs), `json_object` (llama.cpp server, with the
    schema attached so its grammar applies), or `auto`: try `json_schema`, fall back on rejection.
    """

    enforces_schema = False

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        json_mode: str = "auto",
        timeout_s: float = 60.0,
        max_retries: int = 4,
        seed: int = 42,
    ):
        key = os.environ.get(api_key_env)
        if not key and base_url is None:
            raise ConfigError(
                f"environment variable {api_key_env} is not set",
                hint=f"export {api_key_env}=... or pass --base-url for a server that needs no key",
            )
        self.model_name = model
        self.json_mode = json_mode
        self.seed = seed
        self.client = openai.OpenAI(base_url=base_url, api_key=key or "no-key", timeout=timeout_s, max_retries=0)
        self._create = retry(
            retry=retry_if_exception(_is_retryable),
            wait=_wait,
            stop=stop_after_attempt(max_retries + 1),
            reraise=True,
        )(self._checked_create)

    def _checked_create(self, **request):
        try:
            reply = self.client.chat.completions.create(**request)
        except ValueError as exc:  # the body did not parse as JSON
            raise MalformedReply(f"unreadable response body: {exc}") from exc
        if not getattr(reply, "choices", None):
            raise MalformedReply(f"response has no choices: {str(reply)[:200]}")
        return reply

    def call_tool(
        self, messages: list[Message], tool: dict, *, max_tokens: int = 200, temperature: float = 0.0
    ) -> dict:
        """Make the model call `tool` (OpenAI's tools format; forced, so llama.cpp's server confines the
        arguments to its schema by grammar) and return the arguments, parsed but not yet validated."""
        name = tool["function"]["name"]
        try:
            reply = self._create(
                model=self.model_name,
                messages=messages,
                tools=[tool],
                tool_choice={"type": "function", "function": {"name": name}},
                max_tokens=max_tokens,
                temperature=temperature,
                seed=self.seed,
            )
        except (openai.APIError, MalformedReply) as exc:
            raise LLMError(f"hosted tool call failed: {type(exc).__name__}: {exc}", retryable=True) from exc
        call = next((c for c in reply.choices[0].message.tool_calls or [] if c.function.name == name), None)
        if call is None:
            raise LLMError(f"the model answered without calling {name}")
        try:
            return json.loads(call.function.arguments)
        except ValueError as exc:
            raise LLMError(f"the {name} call's arguments are not JSON: {call.function.arguments[:200]!r}") from exc

    def complete(self, messages: list[Message], *, json_schema=None, max_tokens=512, temperature=0.1) -> Completion:
        start = time.perf_counter()
        request = dict(
            model=self.model_name, messages=messages, max_tokens=max_tokens, temperature=temperature, seed=self.seed
        )
        # The mode this request is sent in: with several threads in flight, another one may switch
        # `json_mode` to json_object while this request's json_schema attempt is being rejected.
        mode = self.json_mode
        try:
            try:
                reply = self._create(**request, **_format_options(json_schema, mode))
            except openai.APIStatusError as exc:
                if json_schema is None or mode != "auto" or not _is_json_mode_rejection(exc):
                    raise
                self.json_mode = "json_object"
                reply = self._create(**request, **_format_options(json_schema, "json_object"))
        except (openai.APIError, MalformedReply) as exc:
            raise LLMError(f"hosted model call failed: {type(exc).__name__}: {exc}", retryable=True) from exc
        usage = reply.usage
        return Completion(
            text=reply.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            seconds=time.perf_counter() - start,
        )
