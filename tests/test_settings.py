"""Where the store's name comes from: TASTEPRINT_STORE, and the deprecated TASTEPRINT_HOME."""

from pathlib import Path

import pytest

from tasteprint.config import Settings


def test_tasteprint_home_still_names_the_store_with_a_deprecation_warning(monkeypatch):
    monkeypatch.delenv("TASTEPRINT_STORE", raising=False)
    monkeypatch.setenv("TASTEPRINT_HOME", "/tmp/old-home")
    with pytest.warns(DeprecationWarning, match="TASTEPRINT_STORE"):
        assert Settings.load().store == Path("/tmp/old-home")


def test_tasteprint_store_wins_over_home(monkeypatch, recwarn):
    monkeypatch.setenv("TASTEPRINT_HOME", "/tmp/old-home")
    monkeypatch.setenv("TASTEPRINT_STORE", "/tmp/new-store")
    assert Settings.load().store == Path("/tmp/new-store")
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
