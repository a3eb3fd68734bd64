"""The fitted recommender: choices made on validation, persistence, staleness, the ALS path, and the
served figure equal to the evaluated one."""

import csv
import random

import numpy as np
import pytest
from conftest import MOVIELENS
from rich.console import Console

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN
from tasteprint.config import Settings
from tasteprint.evaluation.runner import EvalConfig, run_eval
from tasteprint.evaluation.split import leave_last_out
from tasteprint.explain.rerank import blend_tuner
from tasteprint.models import Event, FitConfig
from tasteprint.recommend.metrics import ndcg_at_k
from tasteprint.recommend.persistence import load_recommender
from tasteprint.recommend.ranking import LEAD_ALONE, earns_its_place
from tasteprint.recommend.recommender import EASE_LAMBDAS, Recommender


def sequential_histories(users: int = 300, items: int = 60, seed: int = 0) -> dict[str, list[str]]:
    """Each user walks a run of consecutive items: what comes next is the item after the last one."""
    rng = random.Random(seed)
    histories = {}
    for user in range(users):
        start, length = rng.randrange(items), rng.randrange(6, 16)
        histories[f"u{user}"] = [f"i{(start + step) % items:02d}" for step in range(length)]
    return histories


def test_fit_chooses_recency_when_the_next_item_follows_the_last():
    histories = sequential_histories()
    held_out = {u: h[-1] for u, h in histories.items()}
    training = {u: h[:-1] for u, h in histories.items()}
    recommender = Recommender(FitConfig(target="next", validation_users=200))
    report = recommender.fit(training)
    assert report.half_life is not None and report.ranker in ("fusion", "lambdamart", "lead alone")
    assert report.validation[f"{recommender.lead[0]} (chosen)"] > report.validation["ease (plain history)"]
    served = {u: [c.item_id for c in recommender.recommend(h, 10)] for u, h in training.items()}
    fitted = np.mean([ndcg_at_k({held_out[u]}, served[u]) for u in training])
    plain = np.mean([ndcg_at_k({held_out[u]}, recommender.single("ease", h, 10)) for u, h in training.items()])
    assert fitted > plain * 1.2  # EASE at lambda 250 on the plain history, the classical baseline
    for history in list(training.values())[:20]:
        ranked = [c.item_id for c in recommender.recommend(history, 10, exclude=["i00"])]
        assert not set(ranked) & (set(history) | {"i00"}) and len(ranked) == len(set(ranked))


def test_fit_weighs_item_labels_in_when_they_tell_what_comes_next():
    # 60 labels of 20 items each; a user consumes 6 items of one label, so most pairs of items that
    # share a label were never consumed together: only the label connects them.
    rng = random.Random(3)
    groups = {f"g{g}": [f"i{g:02d}{n:02d}" for n in range(20)] for g in range(60)}
    labels = {item: {label} for label, items in groups.items() for item in items}
    histories = {f"u{u}": rng.sample(groups[rng.choice(sorted(groups))], 6) for u in range(240)}
    training = {u: h[:-1] for u, h in histories.items()}
    recommender = Recommender(FitConfig(validation_users=200))
    report = recommender.fit(training, labels=labels)
    lead, _ = recommender.lead
    assert report.label_weights[lead if lead == "itemknn" else "ease"] > 0
    served = np.mean(
        [ndcg_at_k({h[-1]}, [c.item_id for c in recommender.recommend(h[:-1], 10)]) for h in histories.values()]
    )
    plain = np.mean([ndcg_at_k({h[-1]}, recommender.single(lead, h[:-1], 10)) for h in histories.values()])
    assert served > 1.1 * plain  # the same retriever fitted on the interactions alone
    assert Recommender(FitConfig(validation_users=200)).fit(training).label_weights == {}
    tiny = Recommender().fit({"u1": ["i0000", "i0001"], "u2": ["i0001"]}, labels=labels)  # no validation cases
    assert tiny.label_weights == {"ease": 0.0, "itemknn": 0.0} and tiny.validation_users == 0


def test_a_tuned_ranking_stage_is_kept_only_when_it_beats_the_leader_on_held_out_users():
    rng = random.Random(1)
    noise = {f"u{u}": rng.sample([f"i{i:02d}" for i in range(80)], 12) for u in range(300)}
    report = Recommender(FitConfig(target="next", validation_users=150)).fit(noise)
    # On random histories a tuned stage can score higher on the check users by chance, not beyond a
    # 95% confidence interval: the leader alone is kept.
    assert max(report.validation["fusion"], report.validation["lambdamart"]) > report.validation["lead alone"]
    assert report.ranker == "lead alone" and report.fusion_weights == dict(LEAD_ALONE)
    assert report.ease_lambda in EASE_LAMBDAS
    rng = np.random.default_rng(0)
    lead = rng.random(400)
    assert earns_its_place(lead + 0.01 + rng.normal(0, 0.02, 400), lead)  # small but steady
    assert not earns_its_place(lead + rng.normal(0.01, 0.5, 400), lead)  # higher on average, by noise
    assert not earns_its_place(lead[:1] + 1, lead[:1])  # one case proves nothing
    z = rng.normal(size=100)
    gain = 0.015 + 0.1 * (z - z.mean()) / z.std(ddof=1)  # 1.5 standard errors (0.1 / sqrt(100)) above 0
    assert earns_its_place(lead[:100] + gain, lead[:100], 1.0) and not earns_its_place(lead[:100] + gain, lead[:100])


def test_large_catalogues_use_als_and_ranking_given_candidates_keeps_them_all():
    histories = sequential_histories(users=200)
    recommender = Recommender(FitConfig(ease_max_items=10, validation_users=100))
    report = recommender.fit(histories)
    assert "als" in report.retrievers and "ease" not in report.retrievers and recommender.main_name == "als"
    candidates = ["i05", "i30", "unknown-item", "i31"]
    ranked = [c.item_id for c in recommender.recommend(["i28", "i29"], 4, candidates=candidates)]
    assert sorted(ranked) == sorted(candidates) and ranked[-1] == "unknown-item"
    assert ranked[0] == "i30"  # the item right after the last one


def test_saved_recommender_is_reused_until_the_data_changes(tmp_path, monkeypatch):
    store = tmp_path / "store"
    tp = Tasteprint(store=store, fit_embeddings=False)
    tp.ingest(BUILT_IN)
    user = tp.users()[0]
    first = [r.item_id for r in tp.recommend(user, k=5, rerank=False).recommendations]
    assert (store / "recommender" / "fit.json").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("refitted although the data did not change")

    monkeypatch.setattr(Recommender, "fit", refuse)
    again = Tasteprint(store=store, fit_embeddings=False)
    assert [r.item_id for r in again.recommend(user, k=5, rerank=False).recommendations] == first
    monkeypatch.undo()
    version = again.db.data_version()
    again.db.add_events([Event(user_id=user, item_id=first[0], kind="rating", rating=5, timestamp=2_000_000_000)])
    assert again.recommender(progress=False).report.data_version == version + 1
    assert first[0] not in [r.item_id for r in again.recommend(user, k=5, rerank=False).recommendations]
    # A saved state this version cannot read (another format, a damaged file) is refitted.
    (store / "recommender" / "current.json").write_text('{"fit": "fit-0"}')
    assert load_recommender(store / "recommender") is None
    fresh = Tasteprint(store=store, fit_embeddings=False)
    assert fresh.recommender(progress=False).report.data_version == version + 1
    assert load_recommender(store / "recommender") is not None


def write_movielens_slice(root, users: int, keep=lambda row: True) -> None:
    """ratings.csv of ml-latest-small's first users (rows filtered by `keep`, file order kept) and the
    movies they rated."""
    root.mkdir()
    with (MOVIELENS / "ratings.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["userId"]) <= users]
    rated = {r["movieId"] for r in rows}
    with (root / "ratings.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["userId", "movieId", "rating", "timestamp"])
        writer.writeheader()
        writer.writerows(r for r in rows if keep(r))
    with (MOVIELENS / "movies.csv").open() as source, (root / "movies.csv").open("w", newline="") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(m for m in reader if m["movieId"] in rated)


@pytest.mark.slow
def test_served_recommendations_score_what_eval_reports(tmp_path):
    """Ingest the leave-last-out training part into a store fitted as eval fits for loo (`fit_target`
    next), call recommend(rerank=False) for every test user, score the lists here, and match eval's
    hybrid figure on the same split to three decimals."""
    full = tmp_path / "full"
    write_movielens_slice(full, users=80)
    settings = Settings.load(store=tmp_path / "eval-store", fit_embeddings=False)
    document = run_eval(
        EvalConfig(path=full, out=tmp_path / "R", protocols=["loo"], methods=["ease", "hybrid"]),
        settings,
        Console(quiet=True),
    )
    reported = next(
        r["value"]
        for r in document["results"]
        if (r["method"], r["protocol"], r["metric"], r["population"]) == ("hybrid", "loo", "ndcg@10", "all")
    )
    tp = Tasteprint(store=tmp_path / "eval-store")
    split = leave_last_out(list(tp.db.iter_events()))
    test_rows = {(u, next(iter(items))) for u, items in split.test.items()}
    train = tmp_path / "train"
    write_movielens_slice(train, users=80, keep=lambda r: (r["userId"], r["movieId"]) not in test_rows)
    served = Tasteprint(store=tmp_path / "served", fit_embeddings=False, fit_target="next")
    served.ingest(train)
    scores = [
        ndcg_at_k(split.test[u], [r.item_id for r in served.recommend(u, k=10, rerank=False).recommendations])
        for u in split.evaluated_users()
    ]
    assert len(scores) == 80
    assert round(float(np.mean(scores)), 3) == round(reported, 3)
    ease = next(
        r["value"]
        for r in document["results"]
        if (r["method"], r["protocol"], r["metric"], r["population"]) == ("ease", "loo", "ndcg@10", "all")
    )
    assert reported > ease  # on MovieLens the next item follows the last ones: recency wins


def test_blend_tuning_follows_a_judge_that_knows_and_ignores_one_that_does_not():
    # Random walks: nothing a retriever can learn, so only a judge that knows each user's next item helps.
    rng = random.Random(1)
    histories = {f"u{n}": rng.sample([f"i{i:02d}" for i in range(60)], rng.randrange(8, 16)) for n in range(300)}

    def next_item(user_id, history):
        return histories[user_id][len(history)]

    def knowing(user_id, history, pool):  # ranks the user's true next item first
        return {item: 0 if item == next_item(user_id, history) else 1 + n for n, item in enumerate(pool)}

    def contrary(user_id, history, pool):  # ranks it last
        return {item: 99 if item == next_item(user_id, history) else n for n, item in enumerate(pool)}

    config = FitConfig(target="next", validation_users=200)
    helped = Recommender(config).fit(histories, tune_rerank=blend_tuner(knowing, 30))
    assert helped.rerank_blend > 0 and helped.rerank_gain["ndcg_gain"] > 0 and helped.rerank_gain["users"] == 30
    hurt = Recommender(config).fit(histories, tune_rerank=blend_tuner(contrary, 30))
    assert hurt.rerank_blend == 0.0 and hurt.rerank_gain["ndcg_gain"] == 0.0

    def lucky(user_id, history, pool):  # knows the next item of one user in 20, keeps the order otherwise
        return knowing(user_id, history, pool) if int(user_id[1:]) % 20 == 0 else {i: n for n, i in enumerate(pool)}

    # Its best blend gains on average, but the 95% interval reaches 0: the blend stays off.
    chance = Recommender(config).fit(histories, tune_rerank=blend_tuner(lucky, 30))
    gain = chance.rerank_gain
    assert gain["best"] > 0 and gain["ndcg_gain"] > 0 and gain["ndcg_gain"] - gain["ci95"] <= 0
    assert chance.rerank_blend == 0.0


def test_explain_uses_a_current_fit_and_never_waits_for_one(tmp_path):
    tp = Tasteprint(store=tmp_path, llm=None)
    tp.ingest(BUILT_IN)  # the API's ingest loads only
    history = tp.facts("ana").history_item_ids
    unseen = next(i for i in tp.db.items() if i not in history)
    saved = tmp_path / "recommender" / "current.json"
    assert tp.explain("ana", unseen).sentence
    assert tp.current_recommender() is None and not saved.exists()  # explaining fitted nothing
    tp.fit(progress=False)
    assert saved.exists() and tp.current_recommender() is tp.recommender()
    assert Tasteprint(store=tmp_path, llm=None).current_recommender() is not None  # read from the store


def test_the_both_target_keeps_long_term_taste_before_it_chases_the_next_item():
    import numpy as np

    from tasteprint.recommend.validation import hold_out, keeps_long_term, objective, weigh_cases

    histories = {f"u{n}": [f"u{n}-i{i}" for i in range(20)] for n in range(4)}
    cases, inner = hold_out(histories, "both", users=4, seed=1)
    by_kind = {kind: [c for c in cases if c.kind == kind] for kind in ("next", "random")}
    assert len(by_kind["next"]) == 12 and len(by_kind["random"]) == 4
    for case in by_kind["random"]:  # a fifth of the 17 items before the next targets
        assert len(case.targets) == 3 and not case.targets & {f"{case.user_id}-i{i}" for i in (17, 18, 19)}
        assert not case.targets & set(inner[case.user_id]) and len(inner[case.user_id]) == 14
    # Plain NDCG 0.1 on next cases and 0.4 on random ones: weighted, each kind's mean is its ratio to plain.
    reference = {(None, 0.0): np.array([0.1 if c.kind == "next" else 0.4 for c in cases])}
    assert weigh_cases(cases, reference) == pytest.approx({"next": 0.1, "random": 0.4})

    def ratios(next_ndcg, random_ndcg):
        return np.array([c.weight * (next_ndcg if c.kind == "next" else random_ndcg) for c in cases])

    assert objective(ratios(0.1, 0.4), cases) == pytest.approx(1.0)
    # Doubling next-item NDCG while losing 40% of the random fifth (pure recency) does not beat plain;
    # a mix that gains half as much next and keeps 99% of the random fifth does (the floor is 95%).
    assert objective(ratios(0.2, 0.24), cases) < 1.0 < objective(ratios(0.15, 0.396), cases)
    assert objective(ratios(0.15, 0.396), cases) == pytest.approx(1.5)
    assert objective(ratios(0.3, 0.37), cases) < objective(ratios(0.1, 0.4), cases)  # 92.5% is below it
    # A ranking stage that gains next-item NDCG but loses any of the random fifth's is not kept.
    assert keeps_long_term(ratios(0.2, 0.4), ratios(0.1, 0.4), cases)
    assert not keeps_long_term(ratios(0.2, 0.39), ratios(0.1, 0.4), cases)
    nexts = [n for n, c in enumerate(cases) if c.kind == "next"]
    assert objective(ratios(0.2, 0.4)[nexts], by_kind["next"]) == pytest.approx(2.0)  # one kind: its mean
