"""A fitted `Recommender` in a store directory: written atomically with its fit report beside it."""

from __future__ import annotations

import pickle
from pathlib import Path

from .recommender import Recommender


def save_recommender(recommender: Recommender, directory: Path) -> None:
    """Write the fitted state and its report; readers never see a half-written file."""
    directory.mkdir(parents=True, exist_ok=True)
    recommender.forget_baselines()  # refitted on demand; not worth their disk space
    partial = directory / "recommender.pkl.tmp"
    with partial.open("wb") as handle:
        pickle.dump(recommender, handle, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(directory / "recommender.pkl")
    report = directory / "fit.json.tmp"
    report.write_text(recommender.report.model_dump_json(indent=1) if recommender.report else "{}")
    report.replace(directory / "fit.json")


def load_recommender(directory: Path) -> Recommender | None:
    """The recommender saved in `directory`, or None when there is none or it cannot be read (saved
    by another version of tasteprint, or damaged): the caller refits then."""
    path = directory / "recommender.pkl"
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError):
        return None
