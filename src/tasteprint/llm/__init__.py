"""Language-model backends behind one interface, chosen by Settings."""

from __future__ import annotations

from tasteprint.config import Settings
from tasteprint.errors import ConfigError

from .base import Completion, LLMBackend, Message
from .cache import CachedBackend, on_behalf_of
from .context import LLMContext
from .scripted import ScriptedBackend
from .structured import Structured, generate


def make_context(settings: Settings, backend: LLMBackend | None) -> LLMContext:
    """The context every LLM stage receives: `backend` with the settings' prompts and temperature."""
    return LLMContext(backend, settings.prompts_dir, settings.temperature)


def make_backend(settings: Settings) -> LLMBackend:
    """Build the backend the settings name: `local` (default), `openai`, or `scripted` (empty script)."""
    if settings.llm == "local":
        from .llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            settings.model,
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            seed=settings.seed,
            finite_decoding=settings.finite_decoding,
        )
    if settings.llm == "openai":
        from .openai_compat import OpenAICompatBackend

        if not settings.model:
            raise ConfigError("--model is required with --llm openai", hint="e.g. --model gpt-4o-mini")
        hosted = OpenAICompatBackend(
            settings.model,
            base_url=settings.base_url,
            api_key_env=settings.api_key_env,
            json_mode=settings.json_mode,
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            seed=settings.seed,
        )
        if not settings.redact_hosted:
            return hosted
        from .privacy import RedactingBackend

        return RedactingBackend(hosted)
    return ScriptedBackend()


__all__ = [
    "CachedBackend",
    "on_behalf_of",
    "Completion",
    "LLMBackend",
    "LLMContext",
    "Message",
    "ScriptedBackend",
    "Structured",
    "generate",
    "make_backend",
    "make_context",
]
