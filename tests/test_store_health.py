"""Damaged derived files heal: an unreadable fit or vector folder is rebuilt from the data with one
log line and no traceback, through the CLI as a person runs it (in a subprocess, so that a crash in
native code would fail the test rather than end it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN

pytestmark = pytest.mark.slow


def recommend(store) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tasteprint.cli", "recommend", "ana", "--store", str(store), "--no-rerank"]
    env = dict(os.environ, TASTEPRINT_STORE=str(store))
    return subprocess.run(command + ["-k", "3", "--json"], capture_output=True, text=True, timeout=600, env=env)


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def test_each_damaged_derived_file_is_rebuilt_with_one_line(tmp_path):
    store = tmp_path / "store"
    tp = Tasteprint(store=store)
    tp.ingest(BUILT_IN)
    picks = [r.item_id for r in tp.recommend("ana", k=3, rerank=False).recommendations]
    tp.close()
    fit = store / "recommender" / json.loads((store / "recommender" / "current.json").read_text())["fit"]
    segment = next((store / "chroma").glob("*/header.bin")).parent
    damages = {
        "the fit's arrays": lambda: truncate(fit / "arrays" / "matrix.data.npy"),
        "the fit's state": lambda: (fit / "state.json").write_text("{"),
        "the vector index": lambda: truncate(segment / "header.bin"),
        "the vector database": lambda: truncate(store / "chroma" / "chroma.sqlite3"),
    }
    for name, damage in damages.items():
        damage()
        result = recommend(store)
        assert result.returncode == 0, (name, result.stderr)
        assert "Traceback" not in result.stderr, name
        warnings = [line for line in result.stderr.splitlines() if "cannot be read" in line]
        assert len(warnings) == 1 and ("rebuilding" in warnings[0] or "refitting" in warnings[0]), (name, result.stderr)
        assert [p["item_id"] for p in json.loads(result.stdout)] == picks, name
        # The rebuilt file now reads back: the next run is silent.
        again = recommend(store)
        assert again.returncode == 0 and "cannot be read" not in again.stderr, (name, again.stderr)
        fit = store / "recommender" / json.loads((store / "recommender" / "current.json").read_text())["fit"]
        segment = next((store / "chroma").glob("*/header.bin"), segment).parent


def test_a_truncated_hnsw_file_is_found_before_chroma_reads_it(tmp_path):
    """Chroma's native reader crashes the process on these, so they are checked by size first."""
    import struct

    from tasteprint.storage.vectors import HNSW_HEADER, hnsw_damage

    segment = tmp_path / "chroma" / "segment"
    segment.mkdir(parents=True)
    count, per_element = 3, 16
    (segment / "header.bin").write_bytes(HNSW_HEADER.pack(1, 0, 100, count, per_element) + bytes(64))
    (segment / "data_level0.bin").write_bytes(bytes(count * per_element))
    (segment / "length.bin").write_bytes(bytes(4 * count))
    links = b"".join(struct.pack("<I", size) + bytes(size) for size in (8, 0, 4))
    (segment / "link_lists.bin").write_bytes(links)
    assert hnsw_damage(tmp_path / "chroma") is None
    (segment / "link_lists.bin").write_bytes(links[:-2])
    assert "link_lists.bin is truncated" in hnsw_damage(tmp_path / "chroma")
    (segment / "link_lists.bin").write_bytes(links)
    (segment / "data_level0.bin").write_bytes(bytes(count * per_element - 1))
    assert "fewer elements" in hnsw_damage(tmp_path / "chroma")
    (segment / "header.bin").write_bytes(bytes(10))
    assert "header.bin is truncated" in hnsw_damage(tmp_path / "chroma")
