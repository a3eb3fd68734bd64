"""Cross-platform people: an identity map links a MovieLens user and an Amazon reviewer (the pairing
eval/make_cross_platform.py documents) into one person with one merged profile."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import AMAZON
from schema_replies import schema_reply
from test_local_model import assert_verified
from typer.testing import CliRunner

from tasteprint import Tasteprint
from tasteprint.cli import app
from tasteprint.errors import UnknownUserError
from tasteprint.llm import ScriptedBackend

AMAZON_ACCOUNT = "A3JPFWKS83R49V"

pytestmark = pytest.mark.xdist_group("identity")  # one worker builds the merged store


def identity_map(tmp_path, extra: str = "") -> str:
    path = tmp_path / "identity_map.csv"
    path.write_text(f"platform,platform_user_id,person_id\nmovielens,1,alex\namazon,{AMAZON_ACCOUNT},alex\n" + extra)
    return str(path)


@pytest.fixture(scope="module")
def merged_store(tmp_path_factory, movielens_store):
    """MovieLens and Amazon ingested with an identity map (two of its rows bad), once per module."""
    folder = tmp_path_factory.mktemp("merged")
    shutil.copytree(movielens_store, folder / "store")
    tp = Tasteprint(store=folder / "store", llm="scripted")
    bad_rows = "amazon,,bob\nmovielens,1,someone-else\n"
    report = tp.ingest(AMAZON, identity_map=identity_map(folder, bad_rows))
    tp.close()
    return folder / "store", report


@pytest.fixture
def merged(merged_store, fresh_copy):
    store, report = merged_store
    return Tasteprint(store=fresh_copy(store), llm=ScriptedBackend([schema_reply] * 20)), report


def test_identity_map_merges_accounts_into_one_person(merged):
    tp, report = merged
    identity_errors = {e.line: e.reason for e in report.errors if e.file.endswith("identity_map.csv")}
    assert set(identity_errors) == {4, 5}
    assert "3 non-empty cells" in identity_errors[4] and "already linked" in identity_errors[5]
    users = set(tp.users())
    assert "alex" in users and "1" not in users and AMAZON_ACCOUNT not in users
    facts = tp.facts("alex")
    assert facts.platforms == ["amazon", "movielens"]
    attribute_platforms = {facts.item_platforms[i] for a in facts.top_attributes for i in a.item_ids}
    assert attribute_platforms == {"amazon", "movielens"}  # the small platform is not crowded out
    profile = tp.profile("alex")
    assert profile.sources == ["amazon", "movielens"]
    assert {p for i in profile.interests for p in i.platforms} == {"amazon", "movielens"}
    with pytest.raises(UnknownUserError):
        tp.profile("1")


def test_linking_after_ingest_moves_events_and_drops_account_profiles(tmp_path, fresh_copy, movielens_store):
    store = fresh_copy(movielens_store)
    tp = Tasteprint(store=store, llm=ScriptedBackend([schema_reply] * 20))
    tp.ingest(AMAZON)
    tp.profile("1")
    n_events = len(tp.db.user_events("1")) + len(tp.db.user_events(AMAZON_ACCOUNT))
    result = CliRunner().invoke(app, ["link", identity_map(tmp_path), "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["links"] == 2 and report["events_moved"] == n_events
    again = Tasteprint(store=store, llm=ScriptedBackend([schema_reply] * 20))
    assert len(again.db.user_events("alex")) == n_events
    assert again.db.profiles.latest("1") is None and not again.db.has_user("1")
    reingest = again.ingest(AMAZON)  # later ingests keep using the stored links: nothing new, nothing split
    assert reingest.accepted == 0 and not again.db.has_user(AMAZON_ACCOUNT)


@pytest.mark.model
def test_real_merged_profile_cites_both_platforms(merged, local_backend):
    tp = Tasteprint(store=merged[0].settings.store, llm=local_backend)
    profile = tp.profile("alex")
    facts = tp.facts("alex")
    assert_verified(profile, facts)
    assert profile.sources == ["amazon", "movielens"]
    cited = {facts.item_platforms[i] for interest in profile.interests for i in interest.evidence}
    assert cited == {"amazon", "movielens"}
