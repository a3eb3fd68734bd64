"""A fitted recommender saved without pickle reads back to the same rankings, for each main retriever
and ranking stage; a damaged or missing file is refitted with one log line, never a traceback."""

import logging
import random

import numpy as np
import pytest

from tasteprint.models import FitConfig
from tasteprint.recommend.persistence import load_recommender, save_recommender
from tasteprint.recommend.recommender import Recommender


def clustered_histories(users: int = 240, seed: int = 5) -> dict[str, list[str]]:
    rng = random.Random(seed)
    groups = [[f"g{g}i{n}" for n in range(15)] for g in range(8)]
    return {f"u{u}": rng.sample(groups[u % 8], 8) + rng.sample(groups[(u + 1) % 8], 2) for u in range(users)}


@pytest.mark.parametrize(
    "config",
    [FitConfig(ranker="lambdamart", validation_users=200), FitConfig(ease_max_items=0, validation_users=120)],
    ids=["ease-lambdamart", "als"],
)
def test_a_saved_fit_reads_back_to_the_same_rankings(tmp_path, config):
    histories = clustered_histories()
    items = {i for h in histories.values() for i in h}
    vectors = {i: np.random.default_rng(len(i)).normal(size=8).astype(np.float32) for i in items}
    labels = {i: {i.split("i")[0]} for h in histories.values() for i in h}
    fitted = Recommender(config)
    fitted.fit(histories, vectors, labels)
    save_recommender(fitted, tmp_path)
    loaded = load_recommender(tmp_path)
    assert not list(tmp_path.rglob("*.pkl"))
    assert loaded.report == fitted.report and type(loaded.main) is type(fitted.main)
    assert (loaded.model is None) == (fitted.model is None)
    if config.ranker == "lambdamart":
        assert loaded.model is not None and (tmp_path / loaded_fit(tmp_path) / "ranker.txt").exists()
    for history in list(histories.values())[:30]:
        expected = fitted.recommend(history[:6], 10)
        got = loaded.recommend(history[:6], 10)
        assert [c.item_id for c in got] == [c.item_id for c in expected]
        assert np.allclose([c.score for c in got], [c.score for c in expected], rtol=1e-5)


def loaded_fit(directory) -> str:
    import json

    return json.loads((directory / "current.json").read_text())["fit"]


def test_each_damaged_part_of_a_fit_is_logged_once_and_read_as_none(tmp_path, caplog):
    fitted = Recommender(FitConfig(validation_users=100))
    fitted.fit(clustered_histories(120))
    for part in ("arrays/matrix.data.npy", "state.json", "current.json"):
        save_recommender(fitted, tmp_path)
        target = tmp_path / ("current.json" if part == "current.json" else f"{loaded_fit(tmp_path)}/{part}")
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tasteprint"):
            assert load_recommender(tmp_path) is None
            assert load_recommender(tmp_path) is None  # marked: the second reader logs nothing
        assert len(caplog.records) == 1 and "cannot be read" in caplog.records[0].getMessage()
    save_recommender(fitted, tmp_path)
    assert load_recommender(tmp_path) is not None
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("fit-")]) <= 2  # older fits removed
