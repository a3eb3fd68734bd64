"""The service's background work on the embedded model: a list asked for with model-worded reasons is
served with templates at once, and the worded reasons replace them once the worker is done; a profile
asked for before it exists is 202, then built."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN
from tasteprint.service import create_app

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_reasons_and_profiles_come_from_the_background_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("TASTEPRINT_ADMIN_TOKEN", "admin")
    tp = Tasteprint(store=tmp_path, refit_stale=False)
    tp.ingest(BUILT_IN)
    tp.fit(progress=False)
    headers = {"Authorization": "Bearer admin"}
    with TestClient(create_app(tp)) as client:
        url = "/v1/users/ana/recommendations?k=5&explanations=slots"
        first = client.get(url, headers=headers).json()["recommendations"]
        assert all(p["explanation_source"] == "template" for p in first)  # nothing waited for the model
        assert client.get("/v1/users/ana/profile", headers=headers).status_code == 202
        deadline, sources = time.time() + 300, set()
        while time.time() < deadline and "llm" not in sources:
            time.sleep(1)
            picks = client.get(url, headers=headers).json()["recommendations"]
            sources = {p["explanation_source"] for p in picks}
        assert "llm" in sources
        assert [p["item_id"] for p in picks] == [p["item_id"] for p in first]  # the same list, reworded
        while time.time() < deadline and client.get("/v1/users/ana/profile", headers=headers).status_code != 200:
            time.sleep(1)
        profile = client.get("/v1/users/ana/profile", headers=headers).json()
        assert profile["user_id"] == "ana" and profile["interests"]
