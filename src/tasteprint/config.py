"""One Settings object, the home of every serving default. Precedence: explicit argument (CLI flag) >
TASTEPRINT_* environment > default. `FitConfig` (in `models`) holds the fit's, `EvalConfig` the
evaluation's."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError
from .models import FitTarget

ENV_PREFIX = "TASTEPRINT_"
ExplanationMode = Literal["auto", "prose", "slots"]
LLMName = Literal["local", "openai", "scripted"]
# A user with at most this many items is cold: serving fuses their segment's prior into the list, and
# the evaluation's cold-start slices cut histories to this length.
COLD_START_MAX = 5


class Settings(BaseModel):
    """Everything that configures a Tasteprint instance.

    The API key itself is never stored: only the *name* of the environment variable that holds it.
    """

    model_config = ConfigDict(extra="forbid")

    store: Path = Field(default=Path(".tasteprint"), description="store directory (SQLite + Chroma)")
    llm: LLMName = "local"
    model: str | None = Field(default=None, description="GGUF path (local) or model name (openai)")
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    json_mode: Literal["auto", "json_schema", "json_object"] = Field(
        default="auto", description="how the hosted backend asks for JSON; auto falls back on rejection"
    )
    n_ctx: int = 4096
    n_threads: int | None = None
    temperature: float = 0.0
    finite_decoding: bool = Field(
        default=True,
        description="local model: decode finite schemas (profile drafts, slot reasons) with forced tokens in "
        "batches; off: through the grammar, token by token (slower; for comparison)",
    )
    seed: int = 42
    timeout_s: float = 60.0
    max_retries: int = 4
    rerank_blend: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="weight of the LLM rank in the final order; unset: what the fit chose on validation, "
        "else 0 (the LLM only explains)",
    )
    fit_target: FitTarget = Field(
        default="both",
        description="what the fit validates on: each user's next items, a random fifth of their items, or both",
    )
    fit_embeddings: bool = Field(default=True, description="embed the catalogue and use embedding neighbours")
    ease_max_items: int = Field(
        default=12_000, description="above this many items with 2+ interactions the fit uses ALS, not EASE"
    )
    rerank_passes: int = Field(
        default=1, ge=1, le=2, description="2 adds a pass in reversed order against position bias, at twice the cost"
    )
    candidates: int = Field(default=20, ge=2, description="candidates the fitted recommender hands the LLM rerank")
    explanations: ExplanationMode = Field(
        default="auto",
        description="who words each pick's reason: prose (free, checked), slots (a choice among the sentences "
        "the pick's facts allow); "
        "auto: slots for the embedded model, prose for hosted ones",
    )
    prompts_dir: Path | None = None
    redact_hosted: bool = Field(
        default=True, description="redact e-mails, phone numbers and similar before text goes to a hosted model"
    )
    llm_cache: bool = Field(default=True, description="cache LLM responses in the store, keyed by request hash")
    chroma_url: str | None = None
    refit_stale: bool = Field(
        default=True,
        description="when the data changed since the last fit: refit on the next read (the CLI), or keep "
        "serving the last fit, reading each user's history live, until a refit replaces it (the HTTP service, "
        "which refits in the background)",
    )
    admin_token_env: str = Field(
        default="TASTEPRINT_ADMIN_TOKEN", description="the environment variable holding the service's admin token"
    )
    max_body_bytes: int = Field(default=10_000_000, ge=1, description="the service refuses larger request bodies (413)")

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        """Build settings from TASTEPRINT_* variables, then apply non-None overrides on top."""
        values: dict[str, object] = {}
        if (home := os.environ.get("TASTEPRINT_HOME")) and not os.environ.get("TASTEPRINT_STORE"):
            warnings.warn(
                "TASTEPRINT_HOME is deprecated and will be removed in the next release; set TASTEPRINT_STORE",
                DeprecationWarning,
                stacklevel=2,
            )
            values["store"] = home
        for name in cls.model_fields:
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(cls.model_fields)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            raise ConfigError(f"invalid settings: {exc}") from exc
