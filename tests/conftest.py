from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    # Under pytest-xdist each worker gets its share of the cores, for itself and the processes it
    # starts (CLI runs, llama.cpp servers): llama.cpp's and OpenMP's threads spin while they wait, so two
    # workers that each ran one thread per core would slow each other down several times over.
    SHARE = str(max(1, (os.cpu_count() or 1) // WORKERS))
    for name in ("TASTEPRINT_N_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, SHARE)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))  # the benchmarks' HTTP servers serve the tests too
SHARED = ROOT.parent / "shared" / "data"
MOVIELENS = SHARED / "ml-latest-small"
AMAZON = SHARED / "amazon2018-magazine"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"shared data missing at {path}: tests read real data from ../shared/data")
    return path


def _ingested(tmp_path_factory, name: str, source: Path) -> Path:
    """A store with `source` ingested, once per session. Tests copy it (fresh_copy) before writing."""
    from tasteprint.ingest.loader import ingest
    from tasteprint.storage.sqlite import Database

    store = tmp_path_factory.mktemp(name)
    db = Database(store)
    ingest(db, _need(source))
    db.close()
    return store


def _copy_rows(name: str, folder: Path, keep) -> list[list[str]]:
    """Copy ml-latest-small's `name` into `folder` with the header and the rows `keep` accepts; returns them."""
    import csv

    with open(_need(MOVIELENS / name), newline="", encoding="utf-8") as source:
        header, *rows = csv.reader(source)
    kept = [row for row in rows if keep(row)]
    with open(folder / name, "w", newline="", encoding="utf-8") as target:
        csv.writer(target, lineterminator="\n").writerows([header, *kept])
    return kept


def movielens_slice(folder: Path, users: set[str], also_movies: set[str] = frozenset()) -> Path:
    """ml-latest-small cut to `users`: their ratings and tags, and the movies they rated (plus
    `also_movies`), written as the same CSV files into `folder` (a temporary directory, never the repo).
    A store of a few hundred real users fits in seconds where the whole set takes minutes."""
    folder.mkdir(parents=True, exist_ok=True)
    movies = set(also_movies)
    for name in ("ratings.csv", "tags.csv"):
        movies |= {row[1] for row in _copy_rows(name, folder, lambda row: row[0] in users)}
    _copy_rows("movies.csv", folder, lambda row: row[0] in movies)
    return folder


def pytest_collection_modifyitems(items):
    """Run order for two workers: modules that share a costly store (`xdist_group`) first and whole, then
    the other long tests (real model, processes, servers), then the short ones, which fill the end of the
    run on both workers instead of one worker idling through another's long tail."""

    def order(item) -> int:
        if any(item.iter_markers("xdist_group")):
            return 0
        return 1 if any(item.iter_markers("model")) or any(item.iter_markers("slow")) else 2

    items.sort(key=order)


@pytest.fixture(scope="session")
def movielens_store(tmp_path_factory) -> Path:
    return _ingested(tmp_path_factory, "ml-store", MOVIELENS)


@pytest.fixture(scope="session")
def amazon_store(tmp_path_factory) -> Path:
    return _ingested(tmp_path_factory, "amazon-store", AMAZON)


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
    from tasteprint.config import Settings
    from tasteprint.llm.llamacpp import LlamaCppBackend

    return LlamaCppBackend(n_ctx=4096, n_threads=Settings.load().n_threads)
