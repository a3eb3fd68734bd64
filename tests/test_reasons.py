"""Per-pick reasons: the check every reason passes before it is shown, the slots grammar, and the
prose path through a real HTTP endpoint and the public API."""

import json
import re

from schema_replies import schema_reply
from servers import reply_server
from typer.testing import CliRunner

from tasteprint import Tasteprint
from tasteprint.cli import app
from tasteprint.cli.demo import BUILT_IN
from tasteprint.explain.evidence import PickFacts
from tasteprint.explain.reasons import ReasonChecker, catalogue_names, slot_sentences, title_names, write_reasons
from tasteprint.llm import LLMContext, ScriptedBackend
from tasteprint.models import Item

HISTORY = {"h1": "Thing, The (1982)", "h2": "Alien (1979)", "h3": "Toy Story (1995)"}
CATALOGUE = list(HISTORY.values()) + ["Heat (1995)", "Blade Runner (1982)", "Big (1988)"]
VOCABULARY = {"Horror", "Sci-Fi", "Animation", "Comedy", "Action", "1980s", "1990s"}
PICK = PickFacts(
    item_id="c1",
    title="Predator (1987)",
    year=1987,
    labels=["1980s", "Action", "Sci-Fi"],
    cited_id="h1",
    cited_title="Thing, The (1982)",
    cited_rating=5.0,
    liked=True,
    shared_labels=["Sci-Fi", "1980s"],
    co_liked=12,
)


def checker() -> ReasonChecker:
    return ReasonChecker(HISTORY, catalogue_names(CATALOGUE), VOCABULARY)


def test_a_reason_that_states_only_the_picks_facts_passes():
    check = checker()
    assert check.problem("Since you rated The Thing 5 of 5, this 1987 Sci-Fi film should suit you.", PICK) is None
    assert check.problem("Like Thing, The (1982), both are 1980s Sci-Fi; 12 other people liked both.", PICK) is None
    assert check.problem("Predator is Sci-Fi you will enjoy, as you did the film you rated 5.", PICK) is None


def test_every_false_or_unsupported_claim_is_caught_with_its_cause():
    check = checker()
    cases = {
        "You loved Alien, so try this.": "names 'Alien (1979)', which is not the item it cites",
        "Fans of Blade Runner and The Thing love this.": "names 'Blade Runner (1982)'",
        "You liked The Thing; both are Horror.": "says 'Horror'",
        "You rated The Thing 4 of 5.": "states 4",
        "You liked The Thing; 40 other people liked both.": "states 40",
        "A great film for you, trust me.": "cites nothing from the history",
        "You liked The Thing; see http://example.com for more.": "contains a link",
        "You liked The Thing; both are Sci-Fi; both are Sci-Fi.": "repeats itself",
        " ".join(["word"] * 31): "31 words",
        "": "empty",
    }
    for text, cause in cases.items():
        problem = check.problem(text, PICK)
        assert problem is not None and cause in problem, (text, problem)


def test_single_word_catalogue_titles_are_ordinary_words_but_history_titles_count_in_any_case():
    check = checker()
    # "Big" and "Heat" are catalogue titles outside the history: as words they are not claims.
    assert check.problem("A big Sci-Fi hit with heat and noise, like The Thing.", PICK) is None
    assert "Toy Story" in check.problem("Unlike toy story, this is Sci-Fi.", PICK)


def test_audit_reads_grounding_and_faithfulness_from_the_text_alone():
    check = checker()
    predator = Item(item_id="c1", title="Predator (1987)", attributes={"genres": ["Sci-Fi", "Action"]})
    labels = {"h1": ["Horror", "Sci-Fi"], "h2": ["Horror", "Sci-Fi"], "h3": ["Animation", "Comedy"]}
    assert check.audit("Because you liked Thing, The (1982); both are Sci-Fi.", predator, labels) == (True, False, True)
    assert check.audit("Because you liked Alien and The Thing.", predator, labels) == (True, False, True)
    assert check.audit("Both are Horror, like The Thing.", predator, labels) == (True, False, False)  # Predator isn't
    assert check.audit("Sci-Fi like Toy Story.", predator, labels) == (True, False, False)  # Toy Story isn't Sci-Fi
    assert check.audit("Ranked for your history.", predator, labels) == (False, False, True)  # names nothing
    assert check.audit("It is Sci-Fi, like 2 of your 3 items.", predator, labels) == (False, False, True)
    assert check.audit("It is Action, like 2 of your 3 items.", predator, labels) == (False, False, False)  # none is
    assert check.audit("It is Comedy, like 1 of your 3 items.", predator, labels) == (
        False,
        False,
        False,
    )  # Predator is not
    foreign = check.audit("Like The Thing and Blade Runner.", predator, labels)
    assert foreign == (True, True, True) and not foreign.grounded  # Blade Runner is not theirs
    assert check.audit("Because you liked Alien.", predator, labels).grounded


def test_a_title_inside_a_longer_title_never_hides_the_longer_one():
    # A sequel recommended for its original, and the other way round: each title is read whole.
    check = ReasonChecker({"h1": "Toy Story 2 (1999)"}, catalogue_names(["Toy Story (1995)"]), {"Animation"})
    original = Item(item_id="c1", title="Toy Story (1995)", attributes={"genres": ["Animation"]})
    audit = check.audit("You liked Toy Story 2 (1999); both are Animation.", original, {"h1": ["Animation"]})
    assert audit == (True, False, True)
    pick = PickFacts(
        item_id="c1",
        title="Toy Story (1995)",
        cited_id="h1",
        cited_title="Toy Story 2 (1999)",
        cited_rating=5.0,
        liked=True,
        shared_labels=["Animation"],
    )
    assert check.problem("You liked Toy Story 2 (1999); both are Animation.", pick) is None
    sequel = pick.model_copy(update={"title": "Toy Story 2 (1999)", "cited_title": "Toy Story (1995)"})
    assert check.problem("You liked Toy Story (1995), like Toy Story 2.", sequel) is None


def test_title_names_cover_the_forms_a_writer_uses():
    assert title_names("Thing, The (1982)") == ["Thing, The (1982)", "Thing, The", "The Thing"]
    assert title_names("Up (2009)") == ["Up (2009)"]  # "Up" alone is too short to look for


def test_slot_sentences_admit_only_the_picks_facts():
    allowed = slot_sentences(PICK)
    said = [
        "You liked Thing, The (1982); both are Sci-Fi and 1980s.",
        "You rated Thing, The (1982) 5 of 5; both are Sci-Fi and 1980s; 12 other people liked both.",
        "You liked Thing, The (1982); both are Sci-Fi and 1980s; it is from 1987.",
    ]
    for text in said:
        assert text in allowed, text
    for text in allowed:
        assert checker().problem(text, PICK) is None, text
    for text in [
        "You liked Thing, The (1982).",  # the shared labels must be said
        "You liked Alien (1979); both are Sci-Fi and 1980s.",
        "You rated Thing, The (1982) 4 of 5; both are Sci-Fi and 1980s.",
        "You liked Thing, The (1982); both are Sci-Fi and Sci-Fi.",
        "You liked Thing, The (1982); both are Sci-Fi and 1980s; 13 other people liked both.",
    ]:
        assert text not in allowed, text
    lukewarm = PICK.model_copy(update={"liked": False, "cited_rating": 3.0})
    assert "You chose Thing, The (1982); both are Sci-Fi and 1980s." in slot_sentences(lukewarm)
    assert not any(s.startswith("You liked") for s in slot_sentences(lukewarm))
    odd = slot_sentences(PICK.model_copy(update={"cited_title": 'What? "{x}"'}))
    assert odd and all(s.startswith(('You liked What? "{x}"', 'You rated What? "{x}"')) for s in odd)
    assert slot_sentences(PICK.model_copy(update={"cited_title": None})) == []


def test_write_reasons_keeps_what_passes_and_counts_what_it_replaces():
    second = PICK.model_copy(update={"item_id": "c2", "title": "Cars (2006)", "shared_labels": ["Animation"]})
    backend = ScriptedBackend([{"c1": "You rated The Thing 5 of 5; Predator is Sci-Fi too.", "c2": "You loved Alien."}])
    written, stats = write_reasons("u", [PICK, second], LLMContext(backend), "prose", checker())
    assert written == {"c1": "You rated The Thing 5 of 5; Predator is Sci-Fi too."}
    assert (stats.requested, stats.kept, stats.replaced) == (2, 1, 1)
    assert "Alien" in stats.problems["c2"] and stats.fallback is None
    _, outage = write_reasons("u", [PICK], LLMContext(ScriptedBackend([])), "prose", checker())
    assert outage.fallback and outage.replaced == 1 and outage.kept == 0


def _reasons_answer(body: dict) -> str:
    """Prose reasons for a reasons request (the first pick's honest, the second naming a title from
    another part of the history, the rest with a number nobody gave); the schema's first choice else."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    schema = body["response_format"].get("schema") or body["response_format"]["json_schema"]["schema"]
    if "why each recommended item suits them" not in system:
        return schema_reply(body["messages"], schema)
    picks = re.findall(r'^\[(\S+)\] .*\n  cited item from their history: "([^"]+)"', user, re.M)
    reasons = {}
    for n, (item_id, cited) in enumerate(picks):
        other = next(title for _, title in picks if title != cited) if n == 1 else None
        reasons[item_id] = (
            f"You enjoyed {cited}, and this is close to it."
            if n == 0
            else f"You enjoyed {other} too."
            if other
            else f"Rated 9.5 by {cited} fans."
        )
    return json.dumps(reasons)


def test_recommend_through_a_hosted_endpoint_shows_only_reasons_that_pass(tmp_path):
    with reply_server(_reasons_answer) as (base_url, _):
        tp = Tasteprint(store=tmp_path, llm="openai", model="m", base_url=base_url)
        tp.ingest(BUILT_IN)
        result = tp.recommend("ana", k=4)
        recommendations = result.recommendations
        command = ["recommend", "ana", "-k", "4", "--store", str(tmp_path), "--llm", "openai", "--model", "m"]
        command += ["--base-url", base_url, "--explanations", "prose"]
        printed = CliRunner().invoke(app, [*command, "--json"])
        table = CliRunner().invoke(app, command)
        rejected = CliRunner().invoke(app, [*command[:-1], "poetry"])
    assert printed.exit_code == 0, printed.output
    assert [(r["item_id"], r["explanation_source"]) for r in json.loads(printed.stdout)] == [
        (r.item_id, r.explanation_source) for r in recommendations
    ]
    assert "reasons (prose): 1 by the model" in table.stderr and "not the item it cites" in table.stderr
    assert rejected.exit_code != 0 and "explanations" in rejected.output
    stats = result.reasons
    assert stats.mode == "prose" and stats.fallback is None and stats.requested >= 3
    assert stats.kept == 1 and stats.replaced == stats.requested - 1
    assert any("not the item it cites" in p for p in stats.problems.values())
    assert any("a number the data did not give" in p for p in stats.problems.values())
    facts = tp.facts("ana")
    sources = [r.explanation_source for r in recommendations]
    assert sources.count("llm") == 1
    for r in recommendations:
        named = {i for i, title in facts.item_titles.items() if title in r.explanation}
        assert named <= set(r.evidence), (r.explanation, r.evidence)
        if r.explanation_source == "llm":
            assert r.explanation.startswith("You enjoyed ") and facts.item_titles[r.evidence[0]] in r.explanation


def test_explain_grammar_never_names_the_same_title_twice():
    from tasteprint.explain.item import sentence_schema

    schema = sentence_schema(["The Last Relay", "Copper Moon"], ["hardcover", "Fantasy"], confined=True)
    pattern = schema["properties"]["sentence"]["pattern"]
    opening = "You might like this because you enjoyed"
    assert re.fullmatch(pattern, f"{opening} The Last Relay and Copper Moon. Both are hardcover and Fantasy.")
    assert re.fullmatch(pattern, f"{opening} Copper Moon.")
    assert not re.fullmatch(pattern, f"{opening} The Last Relay and The Last Relay.")
    assert not re.fullmatch(pattern, f"{opening} Copper Moon. Both are Fantasy and Fantasy.")
