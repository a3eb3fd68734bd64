"""The evaluation harness end to end on the built-in sample, with a schema-following scripted LLM."""

import json

import pytest
from rich.console import Console
from schema_replies import schema_reply

from tasteprint.cli.demo import BUILT_IN
from tasteprint.config import Settings
from tasteprint.evaluation.runner import EvalConfig, run_eval
from tasteprint.llm import ScriptedBackend
from tasteprint.storage.vectors import VectorStore


def unparseable_reranks_for(users: set[str]):
    """Schema-following replies, except nonsense to every rerank request for `users`: the harness
    must count those passes invalid and fall back, not report rates of 1.0 by construction."""

    def reply(messages, schema):
        asked_for = messages[1]["content"].split()[2] if len(messages) > 1 else ""  # "What user X likes:"
        if messages[0]["content"].startswith("You rank recommendation candidates") and asked_for in users:
            return "nonsense"
        return schema_reply(messages, schema)

    return reply


def test_eval_writes_agreeing_report_results_and_plots(tmp_path):
    # Half the sample's users get no parseable rerank; the 3 evaluated users (seed 42) include both kinds.
    backend = ScriptedBackend([unparseable_reranks_for({"ana", "ben", "chloe", "dev", "eli", "fatima"})] * 2000)
    out = tmp_path / "R"
    config = EvalConfig(
        path=BUILT_IN,
        out=out,
        sample=3,
        methods=[
            "random",
            "pop",
            "ease",
            "hybrid",
            "bert-kmeans",
            "llm",
            "tasteprint",
            "tasteprint-nofacts",
            "tasteprint-noverify",
            "tasteprint-noaspects",
        ],
    )
    # An explicit blend: the LLM ranks (at the default 0 it would only explain) and no tuning is spent.
    settings = Settings.load(store=tmp_path / "store", rerank_blend=0.3)
    document = run_eval(config, settings, Console(quiet=True), backend)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["seed"] == 42 and results["model"] == "scripted"
    row = next(
        r
        for r in results["results"]
        if r["method"] == "ease" and r["protocol"] == "cand20" and r["metric"] == "ndcg@10" and r["population"] == "all"
    )
    assert row["value"] > 0 and row["n_users"] == 12
    assert f"{row['value']:.4f}" in (out / "report.md").read_text()
    assert {r["protocol"] for r in results["results"]} == {"loo", "loo-cold", "cand20", "cand20-cold", "msr"}
    assert not any(r["method"] == "llm" and not r["protocol"].startswith("cand20") for r in results["results"])
    for method in ("bert-kmeans", "tasteprint-nofacts", "tasteprint-noverify"):
        assert any(r["method"] == method and r["protocol"] == "loo" for r in results["results"])
    stages = {(s["method"], s["protocol"]): s for s in results["llm_stages"]}
    tp = stages[("tasteprint", "loo")]
    assert tp["users"] == 3 and 0 < tp["json_validity_rate"] < 1 and 0 < tp["fallback_rate"] < 1
    assert tp["consumed_item_rate"] == 0.0 and tp["duplicate_rate"] == 0.0
    # Read from the texts shown: the template sentences (the scripted reasons all failed) name the
    # user's items and only labels both carry.
    assert tp["explanation_grounding_rate"] == 1.0 and tp["explanation_faithfulness_rate"] == 1.0
    assert tp["explanation_pass_rate"] == 1.0 and tp["uncited_rate"] is not None
    reasons = tp["reasons"]  # worded for the full method only, where its rerank did not fall back
    assert reasons["requested"] >= 3 and reasons["kept"] == 0 and reasons["replaced"] == reasons["requested"]
    assert stages[("tasteprint-nofacts", "loo")]["reasons"]["requested"] == 0
    contribution = {row["protocol"]: row for row in results["llm_contribution"]}
    assert contribution["loo"]["users"] == 3
    loo = contribution["loo"]
    assert f"paired on 3 users: {loo['ndcg_gain']:+.4f} ± {loo['ci95']:.4f}" in (out / "report.md").read_text()
    fidelity = tp["fidelity"]  # computed from the profiles and the held-out items, not by the model
    assert set(fidelity) == {"dominant_recall", "top3_recall", "next_label_hit", "next_label_hit_data_only"}
    assert fidelity["top3_recall"] is not None  # its arithmetic is checked by hand in test_metrics
    assert {"proposed", "kept"} == set(tp["aspect_claims"]) and ("tasteprint-noaspects", "loo") in stages
    fit = results["fits"]["loo"]
    assert fit["rerank_blend"] is None and fit["rerank_gain"] is None  # set, so not tuned
    assert results["fits"]["msr"]["target"] == "random"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 2 and all((out / p).stat().st_size > 1000 for p in pngs)
    assert document["results"] == results["results"]


def write_ml100k(source, root, max_user: int = 60) -> int:
    """MovieLens 100K files (u.data, u.item in Latin-1, u.genre, u.user) made from ml-latest-small's
    first users: the harness must run on that format too, and no ML-100K copy is shipped here."""
    import csv

    genres = ["unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama"]
    root.mkdir()
    with (source / "ratings.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["userId"]) <= max_user]
    (root / "u.data").write_text(
        "".join(f"{r['userId']}\t{r['movieId']}\t{round(float(r['rating']) + 0.01)}\t{r['timestamp']}\n" for r in rows)
    )
    rated = {r["movieId"] for r in rows}
    lines = []
    with (source / "movies.csv").open() as handle:
        for movie in csv.DictReader(handle):
            if movie["movieId"] in rated:
                flags = ["1" if g in movie["genres"].split("|") else "0" for g in genres]
                title = movie["title"].replace("|", "/")
                lines.append("|".join([movie["movieId"], title, "01-Jan-1995", "", "http://x", *flags]) + "\n")
    (root / "u.item").write_bytes("".join(lines).encode("latin-1", errors="replace"))
    (root / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)))
    users = sorted({r["userId"] for r in rows}, key=int)
    (root / "u.user").write_text("".join(f"{u}|30|F|other|00000\n" for u in users))
    return len(rows)


@pytest.mark.slow
def test_eval_command_runs_on_movielens_100k_files(tmp_path):
    from conftest import MOVIELENS
    from typer.testing import CliRunner

    from tasteprint.cli import app

    n_ratings = write_ml100k(MOVIELENS, tmp_path / "ml-100k")
    out = tmp_path / "R"
    command = ["eval", str(tmp_path / "ml-100k"), "--protocol", "all", "--methods", "random,pop,itemknn,ease"]
    result = CliRunner().invoke(app, [*command, "--sample", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["format"] == "ml100k" and results["data"]["events"] == n_ratings
    ndcg = {
        (r["method"], r["protocol"]): r["value"]
        for r in results["results"]
        if r["metric"] == "ndcg@10" and r["population"] == "all"
    }
    assert {p for m, p in ndcg if m == "ease"} == {"loo", "loo-cold", "cand20", "cand20-cold", "msr"}
    # EASE learns something from these files: it beats a random order on each full-catalogue protocol.
    assert all(ndcg[("ease", p)] > ndcg[("random", p)] for p in ("loo", "msr"))
    assert len(list(out.glob("*.png"))) >= 2
    assert not VectorStore(out / "store").item_ids()  # no method here reads a vector: nothing embedded


def test_explanations_pass_when_cited_picks_are_grounded_and_uncited_ones_name_no_title():
    from tasteprint.evaluation.methods import UserOutcome
    from tasteprint.evaluation.summary import stage_metrics
    from tasteprint.explain.reasons import Audit

    outcome = UserOutcome("u", ["a", "b", "c", "d"], {"a"}, {"h"})
    outcome.explanation_audit = [
        (True, Audit(names_history=True, names_other=False, faithful=True)),  # cites the user's item
        (True, Audit(names_history=True, names_other=True, faithful=True)),  # and a title outside
        (False, Audit(names_history=False, names_other=False, faithful=True)),  # "It is Drama, like 3 of ..."
        (False, Audit(names_history=False, names_other=True, faithful=False)),  # uncited, names a stranger
    ]
    figures = stage_metrics("tasteprint", "loo", [outcome])
    assert figures["explanation_grounding_rate"] == 0.5  # of the two cited picks
    assert figures["uncited_rate"] == 0.5
    assert figures["explanation_pass_rate"] == 0.5  # the grounded cited one and the clean uncited one
    assert figures["explanation_faithfulness_rate"] == 0.75


def test_the_aspect_ablation_refits_on_the_catalogue_before_mining(tmp_path):
    """`hybrid-noaspects` ranks through a recommender fitted on the same split without the mined
    aspects (labels and item text), and the report states hybrid minus it, paired per user."""
    import gzip

    from conftest import AMAZON

    with gzip.open(AMAZON / "Magazine_Subscriptions_5.json.gz", "rt") as handle:
        reviews = [next(handle) for _ in range(900)]
    data = tmp_path / "reviews-only.json"  # the reviews without their metadata file
    data.write_text("".join(reviews))
    out = tmp_path / "R"
    config = EvalConfig(path=data, out=out, protocols=["loo"], methods=["itemknn", "hybrid", "hybrid-noaspects"])
    document = run_eval(config, Settings.load(store=tmp_path / "store"), Console(quiet=True))
    rows = {
        (r["method"], r["protocol"]): r
        for r in document["results"]
        if r["metric"] == "ndcg@10" and r["population"] == "all"
    }
    assert rows[("hybrid-noaspects", "loo")]["n_users"] == rows[("hybrid", "loo")]["n_users"] > 20
    gains = {row["protocol"]: row for row in document["aspect_contribution"]}
    assert set(gains) == {"loo", "loo-cold"} and gains["loo"]["users"] == rows[("hybrid", "loo")]["n_users"]
    assert f"{gains['loo']['ndcg_gain']:+.4f}" in (out / "report.md").read_text()


def test_vectors_without_aspects_re_embed_only_the_items_mining_changed():
    import numpy as np

    from tasteprint.evaluation.runner import vectors_without_aspects
    from tasteprint.models import Item

    plain = Item(item_id="B01", title="B01")
    mined = plain.model_copy(update={"title": "garden, home (B01)", "attributes": {"aspect": ["garden", "home"]}})
    kept = Item(item_id="m1", title="Heat (1995)")
    embedded = []

    def embed(texts):
        embedded.extend(texts)
        return np.ones((len(texts), 2))

    vectors = {"B01": np.zeros(2), "m1": np.full(2, 7.0)}
    result = vectors_without_aspects(vectors, {"B01": mined, "m1": kept}, {"B01": plain, "m1": kept}, embed)
    assert embedded == ["B01"]  # the item's text before mining: its id alone
    assert result["B01"].tolist() == [1.0, 1.0] and result["m1"].tolist() == [7.0, 7.0]


@pytest.mark.slow
def test_stated_protocol_ranks_from_a_sentence_beside_popularity_and_seeded_knn(tmp_path):
    """`stated` is asked for by name (not part of all): each sampled user's statement is read, and the
    three lists are scored on the same users; the report gives the ratios."""
    from conftest import movielens_slice
    from typer.testing import CliRunner

    from tasteprint.cli import app

    data = movielens_slice(tmp_path / "data", {str(u) for u in range(1, 101)})
    out = tmp_path / "R"
    command = ["eval", str(data), "--protocol", "stated", "--methods", "pop", "--sample", "30", "--llm", "scripted"]
    result = CliRunner().invoke(app, [*command, "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["protocols"] == ["stated"] and document["fits"] == {}
    stated = document["stated"]
    ndcg = {
        r["method"]: r["value"] for r in document["results"] if r["protocol"] == "stated" and r["metric"] == "ndcg@10"
    }
    assert set(ndcg) == {"stated", "pop", "itemknn-seeded"} and stated["users"] == 30
    assert stated["ndcg"]["stated"] == pytest.approx(ndcg["stated"], abs=1e-5)
    assert stated["vs_pop"] == pytest.approx(ndcg["stated"] / ndcg["pop"], rel=1e-3)
    assert f"{stated['vs_pop']}x popularity" in (out / "report.md").read_text()


def test_statement_template_and_its_reading_without_a_model():
    """The fixed template names the top labels and two favourites; the text check alone reads it."""
    from tasteprint.evaluation.stated import statement
    from tasteprint.llm import LLMContext
    from tasteprint.profile.stated import read_statement

    said = statement(["Drama", "Crime", "1990s"], ["Heat (1995)", "Matrix, The (1999)"])
    assert said == "I like Drama, Crime and 1990s. Two favourites: Heat (1995) and Matrix, The (1999)."
    titles = {"6": "Heat (1995)", "2571": "Matrix, The (1999)", "9": "Heathers (1989)"}
    reading = read_statement(said, ["Drama", "Crime", "1990s", "Horror"], titles, LLMContext(None))
    assert set(reading.liked_labels) == {"Drama", "Crime", "1990s"}
    assert sorted(reading.liked_items) == ["2571", "6"] and not reading.disliked_labels and not reading.by_llm
    no_horror = read_statement("Comedies yes, but never horror films.", ["Comedy", "Horror"], {}, LLMContext(None))
    assert no_horror.liked_labels == ["Comedy"] and no_horror.disliked_labels == ["Horror"]
