from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MOVIELENS = SHARED / "ml-latest-small"
AMAZON = SHARED / "amazon2018-magazine"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"shared data missing at {path}: tests read real data from ../shared/data")
    return path


@pytest.fixture(scope="session")
def movielens_store(tmp_path_factory) -> Path:
    """A store with ml-latest-small ingested once per session. Tests copy it before writing."""
    from tasteprint.db import Database
    from tasteprint.ingest import ingest

    store = tmp_path_factory.mktemp("ml-store")
    db = Database(store)
    ingest(db, _need(MOVIELENS))
    db.close()
    return store


@pytest.fixture(scope="session")
def amazon_store(tmp_path_factory) -> Path:
    from tasteprint.db import Database
    from tasteprint.ingest import ingest

    store = tmp_path_factory.mktemp("amazon-store")
    db = Database(store)
    ingest(db, _need(AMAZON))
    db.close()
    return store


@pytest.fixture
def fresh_copy(tmp_path):
    """Copy a session store so a test can write to it without affecting others."""

    def copy(store: Path) -> Path:
        target = tmp_path / "store"
        shutil.copytree(store, target)
        return target

    return copy


@pytest.fixture(scope="session")
def local_backend():
    from tasteprint.llm.llamacpp import LlamaCppBackend

    return LlamaCppBackend(n_ctx=4096)
