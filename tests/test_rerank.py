"""Rerank, explanations and fallback with a scripted backend."""

from tasteprint.explain.evidence import explanation_text
from tasteprint.explain.rerank import rerank
from tasteprint.llm import LLMContext, ScriptedBackend
from tasteprint.models import Item, UserFacts
from tasteprint.recommend.retrievers import Candidate


def facts() -> UserFacts:
    return UserFacts(
        user_id="u",
        n_events=3,
        n_items=3,
        kinds={"rating": 3},
        platforms=["p"],
        first_timestamp=1,
        last_timestamp=3,
        history_item_ids=["h1", "h2", "h3"],
        item_labels={"h1": ["Drama"], "h2": ["Comedy"], "h3": ["Horror"]},
        item_titles={"h1": "Old Drama", "h2": "Old Comedy", "h3": "Bad Horror"},
        item_ratings={"h1": 5.0, "h2": 4.0, "h3": 1.0},
        rating_mean=3.333,
    )


CANDIDATES = [Candidate(c, 1.0 / n, {"ease": n}) for n, c in enumerate(["c1", "c2", "c3", "c4"], start=1)]
ITEMS = {
    f"c{n}": Item(item_id=f"c{n}", title=f"Candidate {n}", attributes={"genres": [g]})
    for n, g in enumerate(["Drama", "Comedy", "Drama", "Comedy"], start=1)
}
EVIDENCE = {"c1": ["h1"], "c2": ["h2", "h1"], "c3": ["h1"], "c4": ["h2"]}


def test_without_llm_keeps_retrieval_order_with_grounded_explanations():
    result = rerank(facts(), None, CANDIDATES, ITEMS, EVIDENCE, LLMContext(None), k=3)
    assert [r.item_id for r in result.recommendations] == ["c1", "c2", "c3"]
    first = result.recommendations[0]
    assert first.evidence == ["h1"]
    assert first.explanation == "Because you liked Old Drama (you rated it 5); both are Drama."


def test_llm_judgements_are_blended_and_citations_checked():
    backend = ScriptedBackend(
        [
            {
                "c1": "1:h1",
                "c2": "2:h3",
                "c3": "3:h1",
                "c4": "5:h2",
                "zz": "5:h1",
            },
            {"c4": 5, "c3": 3, "c2": 2, "c1": 1},
        ]
    )
    result = rerank(facts(), None, CANDIDATES, ITEMS, EVIDENCE, LLMContext(backend), k=4, blend=1.0, passes=2)
    assert [r.item_id for r in result.recommendations] == ["c4", "c3", "c2", "c1"]
    stats = result.stats
    assert stats.out_of_candidates == 1  # "zz" was never a candidate
    assert stats.citations_replaced == 1  # h3 is not an allowed citation for c2 (and was disliked)
    c2 = next(r for r in result.recommendations if r.item_id == "c2")
    assert c2.evidence == ["h2"]
    # The second pass saw the candidates reversed, and only judged fit.
    second_prompt = backend.history[1][0][-1]["content"]
    assert second_prompt.index("[c4]") < second_prompt.index("[c1]")
    assert backend.history[1][1]["properties"]["c1"] == {"enum": [1, 2, 3, 4, 5]}
    schema = backend.history[0][1]
    assert schema["required"] == ["c1", "c2", "c3", "c4"]
    assert schema["properties"]["c2"]["enum"][:3] == ["1:h2", "1:h1", "2:h2"]


def test_blend_keeps_retrieval_in_charge_at_low_weight():
    # The model ranks c4 (retrieval's last) first; a low blend keeps retrieval's first on top, a full one
    # follows the model. Both parse (no fallback), so the order is the blend's doing.
    judgement = {"c1": "1:h1", "c2": "1:h2", "c3": "1:h1", "c4": "5:h2"}
    low = rerank(facts(), None, CANDIDATES, ITEMS, EVIDENCE, LLMContext(ScriptedBackend([judgement])), k=4, blend=0.2)
    full = rerank(facts(), None, CANDIDATES, ITEMS, EVIDENCE, LLMContext(ScriptedBackend([judgement])), k=4, blend=1.0)
    assert low.stats.fallback is None and full.stats.fallback is None
    assert low.recommendations[0].item_id == "c1"
    assert full.recommendations[0].item_id == "c4"


def test_llm_failure_falls_back_to_retrieval_order():
    backend = ScriptedBackend(["nonsense", "{", "[]"])
    result = rerank(facts(), None, CANDIDATES, ITEMS, EVIDENCE, LLMContext(backend), k=2, blend=0.3)
    assert result.stats.fallback.startswith("StructuredOutputError")
    assert [r.item_id for r in result.recommendations] == ["c1", "c2"]
    assert all(r.explanation and r.evidence for r in result.recommendations)


def test_explanation_never_cites_outside_the_history():
    known = facts()
    for item_id, item in ITEMS.items():
        text = explanation_text(known, item, EVIDENCE[item_id][:1])
        named = {h for h, title in known.item_titles.items() if title in text}
        assert named == set(EVIDENCE[item_id][:1]), text  # the cited item, and no other title
    assert "both are Comedy" in explanation_text(known, ITEMS["c2"], ["h2"])


def test_a_pick_nothing_in_the_history_explains_says_what_the_data_shows():
    known = facts()  # h1 Drama, h2 Comedy, h3 Horror
    drama = Item(item_id="d", title="D", attributes={"genres": ["Drama", "War"]})
    assert explanation_text(known, drama, []) == "It is Drama, like 1 of your 3 items."
    western = Item(item_id="w", title="W", attributes={"genres": ["Western"]})
    assert explanation_text(known, western, []) == (
        "Ranked by the fitted recommender; it shares no label with your history."
    )


def test_liked_means_rated_above_the_users_own_mean():
    lukewarm = facts().model_copy(update={"item_ratings": {"h1": 5.0, "h2": 3.0, "h3": 1.0}})
    assert explanation_text(lukewarm, ITEMS["c2"], ["h2"]) == "Because you chose Old Comedy; both are Comedy."
    text = explanation_text(lukewarm, ITEMS["c1"], ["h1", "h2"])
    assert text == "Because you liked Old Drama (you rated it 5) and you chose Old Comedy; both are Drama."


def test_a_citation_shares_a_label_or_close_text_never_just_a_title_word():
    import numpy as np

    from tasteprint.explain.evidence import CitableHistory, nearest_history

    history = facts().model_copy(update={"item_titles": {"h1": "Old Drama", "h2": "Candidate Comedy", "h3": "x"}})
    far = {"h1": np.array([0.0, 1.0]), "h2": np.array([0.3, 0.95])}
    cited = nearest_history(np.array([1.0, 0.0]), CitableHistory(history, far), ITEMS["c1"])
    assert cited == ["h1"]  # shares Drama; h2 shares only a title word and is not close in embedding
    close = far | {"h2": np.array([0.8, 0.6])}
    assert nearest_history(np.array([1.0, 0.0]), CitableHistory(history, close), ITEMS["c1"]) == ["h1", "h2"]


def test_a_pick_sharing_nothing_else_cites_what_most_people_consumed_with_it():
    import numpy as np

    from tasteprint.explain.evidence import CitableHistory, nearest_history

    western = Item(item_id="w", title="Far West", attributes={"genres": ["Western"]})
    vectors = CitableHistory(facts(), {"h1": np.array([0.0, 1.0]), "h2": np.array([0.0, 1.0])})
    # h3 was rated 1 (disliked): never a citation, however often it was consumed with the pick.
    together = {"h1": 3, "h2": 7, "h3": 40}
    cited = nearest_history(np.array([1.0, 0.0]), vectors, western, together=together)
    assert cited == ["h2"]
    text = explanation_text(facts(), western, cited, together)
    assert text == "Because you liked Old Comedy (you rated it 4); 7 other people chose both."
    # One person is an anecdote: no citation, and the sentence says what the data shows instead.
    assert nearest_history(np.array([1.0, 0.0]), vectors, western, together={"h2": 1}) == []
    # A shared label still wins over co-consumption, and then the labels are the reason given.
    assert nearest_history(np.array([1.0, 0.0]), vectors, ITEMS["c1"], together=together) == ["h1"]
    assert "other people" not in explanation_text(facts(), ITEMS["c1"], ["h1"], together)


def test_rerank_sentences_state_the_co_consumption_count_of_a_pick_cited_for_it():
    western = Item(item_id="w", title="Far West", attributes={"genres": ["Western"]})
    result = rerank(
        facts(),
        None,
        [Candidate("w", 1.0, {"ease": 1})],
        {"w": western},
        {"w": ["h1"]},
        LLMContext(None),
        k=1,
        together={"w": {"h1": 12}},
    )
    assert result.recommendations[0].explanation.endswith("; 12 other people chose both.")


def test_at_blend_zero_the_llm_is_not_asked_and_retrieval_order_stands():
    backend = ScriptedBackend([{"c1": "1:h1", "c2": "1:h2", "c3": "1:h1", "c4": "5:h2"}])
    result = rerank(facts(), None, CANDIDATES, ITEMS, EVIDENCE, LLMContext(backend), k=4, blend=0.0)
    assert backend.history == [] and result.stats.passes == 0 and result.llm_rank == {}
    assert [r.item_id for r in result.recommendations] == ["c1", "c2", "c3", "c4"]
    assert [r.evidence for r in result.recommendations][:2] == [["h1"], ["h2", "h1"]]  # the evidence order


def test_a_long_history_cites_the_same_items_as_a_full_sort_would():
    import random

    import numpy as np

    from tasteprint.explain.evidence import CITE_MIN_COSINE, CitableHistory, nearest_history
    from tasteprint.profile.facts import DISLIKED_MAX

    rng = random.Random(7)
    ids = [f"h{n:03d}" for n in range(400)]
    genres = ["Drama", "Comedy", "War", "Crime"]
    long = facts().model_copy(
        update={
            "history_item_ids": ids,
            "item_labels": {i: rng.sample(genres, rng.randint(0, 3)) for i in ids},
            "item_ratings": {i: float(rng.choice([2, 3, 4, 5])) for i in ids},  # many equal ratings
        }
    )
    # Few distinct directions: many items tie on score too, so the item id decides among them.
    directions = [np.array([1.0, 0.0]), np.array([0.6, 0.8]), np.array([0.0, 1.0])]
    vectors = {i: directions[rng.randrange(3)] for i in ids}
    history = CitableHistory(long, vectors)
    candidate = Item(item_id="c", title="C", attributes={"genres": ["Drama", "War"]})
    for n in (1, 3, 10, 50):
        cited = nearest_history(np.array([1.0, 0.0]), history, candidate, n=n)
        shared = {i: len({"Drama", "War"} & set(long.item_labels[i])) for i in ids}
        cosine = {i: float(np.float32(vectors[i][0])) for i in ids}  # the candidate is [1, 0]
        score = {i: cosine[i] + 0.01 * long.item_ratings[i] for i in ids}
        citable = [i for i in ids if long.item_ratings[i] > DISLIKED_MAX]
        kept = [i for i in citable if shared[i] or cosine[i] >= CITE_MIN_COSINE]
        expected = sorted(kept, key=lambda i: (shared[i], score[i], i), reverse=True)[:n]
        assert cited == expected, n
