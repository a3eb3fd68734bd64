"""What every LLM stage needs besides its own data: the backend, where the prompt templates live, and
the sampling temperature. One object, built once from `Settings`, so no stage can drop a part of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import LLMBackend


@dataclass(frozen=True)
class LLMContext:
    """The model and how to ask it.

    Attributes:
        backend: the language model; None where a stage falls back to its deterministic output.
        prompts_dir: a folder of templates overriding the packaged ones (`TASTEPRINT_PROMPTS_DIR`).
        temperature: sampling temperature of every call (`Settings.temperature`).
    """

    backend: LLMBackend | None
    prompts_dir: Path | None = None
    temperature: float = 0.0
