"""A fitted `Recommender` in a store directory, saved without pickle so that reading a store never runs
code: one `.npy` file per array (read with `allow_pickle=False`), LightGBM's own model text, and JSON.

The arrays are memory-mapped, not read: the service's worker processes then share one copy of the
fitted matrices in the page cache (and in the processor's cache), instead of each holding its own.

Each save writes a new folder `fit-<time>` and then points `current.json` at it (an atomic rename), so a
reader (a service answering while a refit finishes) sees the old fit or the new one, never half of one.
The previous folder is kept for readers still loading it; older ones are removed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from tasteprint.models import FitConfig, FitReport

from .recommender import Recommender
from .retrievers import ALS, EASE, Embedding, Interactions, ItemKNN

log = logging.getLogger("tasteprint")

FORMAT = 2  # bumped when the layout changes; a fit in another format is refitted
POINTER = "current.json"


def _put_sparse(arrays: dict[str, np.ndarray], name: str, matrix: sparse.csr_matrix) -> None:
    matrix = matrix.tocsr()
    arrays |= {
        f"{name}.data": matrix.data,
        f"{name}.indices": matrix.indices,
        f"{name}.indptr": matrix.indptr,
        f"{name}.shape": np.array(matrix.shape),
    }


def _get_sparse(arrays, name: str) -> sparse.csr_matrix:
    parts = (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"])
    return sparse.csr_matrix(parts, shape=tuple(arrays[f"{name}.shape"]))


def _state(recommender: Recommender) -> tuple[dict, dict[str, np.ndarray]]:
    """The recommender as JSON-able settings and named arrays."""
    arrays: dict[str, np.ndarray] = {
        "users": np.array(recommender.interactions.users, dtype=str),
        "items": np.array(recommender.interactions.items, dtype=str),
    }
    _put_sparse(arrays, "matrix", recommender.interactions.matrix)
    main = recommender.main
    if isinstance(main, EASE):
        main_state = {"kind": "ease", "lam": main.lam, "min_count": main.min_count, "label_weight": main.label_weight}
        arrays |= {"ease.columns": main.columns, "ease.weights": main.weights}
    else:
        main_state = {"kind": "als", "params": main.params, "seed": main.seed}
        arrays |= {"als.items": main.model.item_factors, "als.users": main.model.user_factors}
    _put_sparse(arrays, "knn", recommender.knn.similarity)
    if recommender.embedding is not None:
        arrays["embedding"] = recommender.embedding.vectors
    if recommender.labels is not None:
        _put_sparse(arrays, "labels", recommender.labels)
    state = {
        "format": FORMAT,
        "config": recommender.config.model_dump(mode="json"),
        "main": main_state,
        "knn": {"k": recommender.knn.k, "label_weight": recommender.knn.label_weight},
        "ease_lambda": recommender.ease_lambda,
        "lead_is_knn": recommender.lead_is_knn,
        "label_weights": recommender.label_weights,
        "half_life": recommender.half_life,
        "plain_mix": recommender.plain_mix,
        "weights": recommender.weights,
        "rerank_blend": recommender.rerank_blend,
        "more_boost": recommender.more_boost,
        "report": recommender.report.model_dump(mode="json") if recommender.report else None,
    }
    return state, arrays


def _restore(state: dict, arrays, ranker: Path) -> Recommender:
    """The recommender from `_state`'s output (and LightGBM's model text when it ranks with one)."""
    if state.get("format") != FORMAT:
        raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
    recommender = Recommender(FitConfig(**state["config"]))
    recommender.interactions = Interactions(
        [str(u) for u in arrays["users"]], [str(i) for i in arrays["items"]], _get_sparse(arrays, "matrix")
    )
    main = state["main"]
    if main["kind"] == "ease":
        recommender.main = EASE(main["lam"], main["min_count"], main["label_weight"])
        recommender.main.columns = arrays["ease.columns"]
        recommender.main.weights = arrays["ease.weights"]  # saved row-contiguous: rows are what scoring reads
    else:
        from implicit.cpu.als import AlternatingLeastSquares

        recommender.main = ALS(**main["params"], seed=main["seed"])
        model = AlternatingLeastSquares(**main["params"], random_state=main["seed"])
        # implicit's compiled code asks for writable buffers: its factors are copied out of the mapping
        model.item_factors, model.user_factors = np.array(arrays["als.items"]), np.array(arrays["als.users"])
        recommender.main.model = model
    recommender.knn = ItemKNN(state["knn"]["k"], state["knn"]["label_weight"])
    recommender.knn.similarity = _get_sparse(arrays, "knn")
    recommender.embedding = Embedding(arrays["embedding"]) if "embedding" in arrays else None
    recommender.labels = _get_sparse(arrays, "labels") if "labels.shape" in arrays else None
    recommender.ease_lambda = state["ease_lambda"]
    recommender.lead_is_knn = state["lead_is_knn"]
    recommender.label_weights = state["label_weights"]
    recommender.half_life = state["half_life"]
    recommender.plain_mix = state["plain_mix"]
    recommender.weights = state["weights"]
    recommender.rerank_blend = state["rerank_blend"]
    recommender.more_boost = state["more_boost"]
    recommender.report = FitReport(**state["report"]) if state["report"] else None
    if ranker.exists():
        from lightgbm import Booster

        recommender.model = Booster(model_str=ranker.read_text())
    return recommender


def save_recommender(recommender: Recommender, directory: Path) -> None:
    """Write the fitted state in a new folder, then point `current.json` at it; readers never see a
    half-written fit. `fit.json` beside it is the fit report, for people."""
    directory.mkdir(parents=True, exist_ok=True)
    recommender.forget_baselines()  # refitted on demand; not worth their disk space
    state, arrays = _state(recommender)
    name = f"fit-{time.time_ns()}"
    partial = directory / f"{name}.partial"
    partial.mkdir()
    (partial / "arrays").mkdir()
    for key, array in arrays.items():
        np.save(partial / "arrays" / f"{key}.npy", np.ascontiguousarray(array))
    if recommender.model is not None:
        recommender.model.save_model(str(partial / "ranker.txt"))
    (partial / "state.json").write_text(json.dumps(state))
    partial.rename(directory / name)
    previous = _pointed(directory)
    pointer = directory / f"{POINTER}.tmp"
    pointer.write_text(json.dumps({"fit": name}))
    pointer.replace(directory / POINTER)
    report = directory / "fit.json.tmp"
    report.write_text(recommender.report.model_dump_json(indent=1) if recommender.report else "{}")
    report.replace(directory / "fit.json")
    for old in directory.iterdir():
        if old.is_dir() and old.name.startswith("fit-") and old.name not in (name, previous):
            shutil.rmtree(old, ignore_errors=True)


def _pointed(directory: Path) -> str | None:
    try:
        return json.loads((directory / POINTER).read_text())["fit"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_recommender(directory: Path) -> Recommender | None:
    """The recommender saved in `directory`, or None when there is none or it cannot be read (another
    format, a missing or damaged file): the caller refits then. An unreadable fit is logged in one line,
    once: the pointer is then marked empty until the refit replaces it."""
    if not directory.exists() or not any(directory.iterdir()):
        return None
    try:
        pointer = json.loads((directory / POINTER).read_text())
        if pointer.get("fit") is None:
            return None  # marked unreadable already; a fit is on its way
        folder = directory / pointer["fit"]
        state = json.loads((folder / "state.json").read_text())
        arrays = {
            path.name[: -len(".npy")]: np.load(path, mmap_mode="r", allow_pickle=False)
            for path in (folder / "arrays").glob("*.npy")
        }
        return _restore(state, arrays, folder / "ranker.txt")
    except Exception as exc:  # noqa: BLE001 - any damage means the same: refit from the data
        reason = f"{type(exc).__name__}: {str(exc)[:120]}"
        log.warning("the saved fit in %s cannot be read (%s); refitting it from the data", directory, reason)
        (directory / POINTER).write_text(json.dumps({"fit": None, "unreadable": reason}))
        return None
