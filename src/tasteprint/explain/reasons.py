"""Per-pick reasons written by the model, and the check each must pass before it is shown.

`prose` (capable, hosted models): free text of at most 30 words. `slots` (the embedded model): a
grammar whose only openings are the pick's computed facts (the cited item and the user's rating of it,
the labels both carry, how many people liked both, the year), so the model chooses what to say but
cannot say anything else. Either way every reason is checked against the data: each title it names is
the pick or its cited history item, each label is one both carry, each number is one the prompt gave.
A reason that fails keeps the deterministic sentence, and the failure is counted with its cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field, RootModel

from tasteprint.errors import LLMError
from tasteprint.llm import LLMBackend, LLMContext, generate
from tasteprint.llm.prompting import chat, pairs
from tasteprint.models import Item, Recommendation, UserFacts

from .evidence import PickFacts, pick_facts

MAX_WORDS = 30
PROSE_PATTERN = '^[^{}<>\\[\\]"\\n]{12,220}$'
Mode = Literal["prose", "slots"]


class ReasonStats(BaseModel):
    """What happened to one recommendation list's reasons: for `recommend --json` and the evaluation."""

    mode: Mode
    requested: int = 0
    kept: int = 0
    replaced: int = 0
    problems: dict[str, str] = Field(default_factory=dict, description="item id -> why its reason was replaced")
    fallback: str | None = Field(default=None, description="the LLM call failed: every pick keeps the template")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class ReasonsDraft(RootModel[dict[str, str]]):
    """Item id -> the model's reason for recommending it."""


def resolve_mode(setting: str, backend: LLMBackend) -> Mode:
    """`auto`: slots for a backend that enforces a grammar (the small embedded model), prose otherwise."""
    if setting == "auto":
        return "slots" if backend.enforces_schema else "prose"
    return setting  # type: ignore[return-value]


def title_names(title: str | None) -> list[str]:
    """The ways a text may name a title: as stored, without a trailing "(1995)", and "Thing, The" as
    "The Thing". Names under 4 characters are too ambiguous to look for."""
    if not title:
        return []
    bare = re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()
    names = {title.strip(), bare}
    if moved := re.fullmatch(r"(.+), (The|A|An)", bare):
        names.add(f"{moved.group(2)} {moved.group(1)}")
    return sorted((n for n in names if len(n) >= 4), key=lambda n: (-len(n), n))


def _find(text: str, name: str, ignore_case: bool = True) -> re.Match | None:
    """`name` in `text` as a whole phrase. A plain substring test comes first: a check runs against
    every catalogue title (about 19,000 names on MovieLens), and compiling a pattern for each one cost
    over a second per reason."""
    if (name.lower() not in text.lower()) if ignore_case else (name not in text):
        return None
    flags = re.IGNORECASE if ignore_case else 0
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags)


def _remove(text: str, names: list[str]) -> tuple[str, bool]:
    """`text` with every mention of `names` blanked out, and whether there was one."""
    found = False
    for name in names:
        while match := _find(text, name):
            found = True
            text = text[: match.start()] + " " + text[match.end() :]
    return text, found


def _remove_titles(text: str, names_of: dict[str | None, list[str]]) -> tuple[str, set[str | None]]:
    """`text` with every mention of the titles in `names_of` (owner -> its names) blanked out, longest
    name first, so "Toy Story" never eats into a mention of "Toy Story 2"; and the owners mentioned."""
    found = set()
    by_length = sorted(((name, owner) for owner, names in names_of.items() for name in names), key=lambda p: -len(p[0]))
    for name, owner in by_length:
        text, mentioned = _remove(text, [name])
        if mentioned:
            found.add(owner)
    return text, found


def catalogue_names(titles: list[str]) -> list[tuple[str, str]]:
    """(name, title) for every catalogue title worth looking for in a text: only names of two words or
    more, since single words ("Heat", "Up") are ordinary English far more often than they are titles."""
    return [(name, title) for title in titles for name in title_names(title) if " " in name]


class Audit(NamedTuple):
    """An explanation's claims as its text states them (`ReasonChecker.audit`)."""

    names_history: bool  # at least one of the user's items
    names_other: bool  # a catalogue title that is neither the pick nor one of the user's items
    faithful: bool

    @property
    def grounded(self) -> bool:
        """Cites the user's own history and nothing outside it."""
        return self.names_history and not self.names_other


class ReasonChecker:
    """Checks a text about a user against the data: their history titles, the catalogue's titles (from
    `catalogue_names`, looked for case-sensitively), the label vocabulary."""

    def __init__(self, history_titles: dict[str, str], catalogue: list[tuple[str, str]], vocabulary: set[str]):
        self.history_names = {i: title_names(t) for i, t in history_titles.items()}
        self.history_titles = history_titles
        self.catalogue_names = catalogue
        self.labels = {label.lower(): label for label in vocabulary if len(label) >= 3}

    def problem(self, text: str, pick: PickFacts) -> str | None:
        """Why `text` may not be shown as the reason for `pick`, or None when every claim in it holds."""
        words = text.split()
        if not words:
            return "empty"
        if len(words) > MAX_WORDS:
            return f"{len(words)} words, more than {MAX_WORDS}"
        if re.search(r"https?://|www\.", text, re.IGNORECASE):
            return "contains a link"
        clauses = [c.strip(" .").lower() for c in re.split(r"[;,]", text)]
        if len(set(clauses)) < len(clauses):
            return "repeats itself"
        rest, found = _remove_titles(text, {"cited": title_names(pick.cited_title), None: title_names(pick.title)})
        names_cited = "cited" in found
        for item_id, names in self.history_names.items():
            if item_id != pick.cited_id and any(_find(rest, n) for n in names):
                return f"names {self.history_titles[item_id]!r}, which is not the item it cites"
        for name, title in self.catalogue_names:
            if _find(rest, name, ignore_case=False):
                return f"names {title!r}, which is neither the pick nor its cited item"
        said = [label for lower, label in self.labels.items() if _find(rest, lower)]
        for label in said:
            if label not in pick.shared_labels:
                return f"says {label!r}, which {pick.title!r} and {pick.cited_title!r} do not both carry"
        rest, _ = _remove(rest, said)
        if not names_cited and not said:
            return "cites nothing from the history"
        for number in re.findall(r"\d+(?:\.\d+)?", rest):
            if number not in pick.numbers():
                return f"states {number}, a number the data did not give"
        return None

    def audit(self, text: str, item: Item, item_labels: dict[str, list[str]]) -> Audit:
        """What an explanation shown with `item` says, read from its text alone, whoever wrote it: whether
        it names one of the user's items, whether it names any other catalogue title but the item's own,
        and whether it is faithful (every label it states is carried by the item and by an item it
        names, or by one of the user's items when it names none)."""
        rest, found = _remove_titles(text, {None: title_names(item.title)} | self.history_names)
        named = [item_id for item_id in self.history_names if item_id in found]
        outside = any(_find(rest, name, ignore_case=False) for name, _ in self.catalogue_names)
        said = [label for lower, label in self.labels.items() if _find(rest, lower)]
        backing = {label for i in (named or self.history_names) for label in item_labels.get(i, [])}
        faithful = all(label in item.labels() and label in backing for label in said)
        return Audit(bool(named), outside, faithful)


def slot_sentences(pick: PickFacts) -> list[str]:
    """Every sentence the slots mode allows for `pick`, built from its facts only (empty without a
    cited item): the opening names the cited item (and the user's rating when they liked it); the
    shared labels, the pick's main reason, must be said, two when there are two (a pair of different
    ones, so no "Drama and Drama"); the co-liked count or the year may follow. The model chooses."""
    if not pick.cited_title:
        return []
    openings = [f"You chose {pick.cited_title}"]
    if pick.liked and pick.cited_rating is not None:
        openings = [f"You liked {pick.cited_title}", f"You rated {pick.cited_title} {pick.cited_rating:g} of 5"]
    labels = pick.shared_labels[:4]
    shared = [f"; both are {said}" for said in pairs(labels) or labels] or [""]
    extras = [""] + ([f"; {pick.co_liked} other people liked both"] if pick.co_liked else [])
    extras += [f"; it is from {pick.year}"] if pick.year else []
    return [f"{opening}{said}{extra}." for opening in openings for said in shared for extra in extras]


def write_reasons(
    user_id: str,
    picks: list[PickFacts],
    llm: LLMContext,
    mode: Mode,
    checker: ReasonChecker,
) -> tuple[dict[str, str], ReasonStats]:
    """One LLM call for all picks. Returns (item id -> the reason to show, for the reasons that passed
    the check) and what happened; picks missing from the result keep their template sentence."""
    stats = ReasonStats(mode=mode)
    # Slots: each pick's allowed sentences as an enum, which the embedded model decodes with its forced
    # tokens in batches (llm.choices); prose: free text of bounded length.
    if mode == "prose":
        properties = {p.item_id: {"type": "string", "pattern": PROSE_PATTERN} for p in picks if p.cited_id}
    else:
        sentences = {p.item_id: slot_sentences(p) for p in picks if p.cited_id}
        properties = {i: {"type": "string", "enum": allowed} for i, allowed in sentences.items() if allowed}
    asked = [p for p in picks if p.item_id in properties]
    if not asked:
        return {}, stats
    stats.requested = len(asked)
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    messages = chat(
        "reasons_system.j2", "reasons_user.j2", llm.prompts_dir, user_id=user_id, picks=asked, max_words=MAX_WORDS
    )
    per_pick = 80 if mode == "prose" else 70  # a slot reason repeats the cited title, which may be long
    try:
        result = generate(
            llm.backend,
            messages,
            ReasonsDraft,
            schema=schema,
            max_tokens=per_pick * len(asked) + 20,
            temperature=llm.temperature,
        )
    except LLMError as exc:
        stats.fallback = f"{type(exc).__name__}: {exc.message}"
        stats.replaced = stats.requested
        return {}, stats
    stats.prompt_tokens, stats.completion_tokens = result.prompt_tokens, result.completion_tokens
    stats.seconds = result.seconds
    written = {}
    for pick in asked:
        text = " ".join(result.value.root.get(pick.item_id, "").split())
        problem = checker.problem(text, pick)
        if problem:
            stats.problems[pick.item_id] = problem
        else:
            written[pick.item_id] = text
    stats.kept, stats.replaced = len(written), stats.requested - len(written)
    return written, stats


def word_recommendations(
    facts: UserFacts,
    recommendations: list[Recommendation],
    items: dict[str, Item],
    llm: LLMContext,
    mode: Mode,
    checker: ReasonChecker,
    *,
    co_liked: Callable[[str, str], int | None],
    label_shares: dict[str, float],
) -> tuple[list[Recommendation], ReasonStats]:
    """The recommendations with the model's reasons where they pass the check (`explanation_source`
    "llm"); the rest keep their template sentence. `co_liked(cited, item)` counts people who liked both."""
    picks = []
    for r in recommendations:
        cited = r.evidence[0] if r.evidence else None
        if r.item_id in items:
            count = co_liked(cited, r.item_id) if cited else None
            picks.append(pick_facts(facts, items[r.item_id], cited, count, label_shares))
    written, stats = write_reasons(facts.user_id, picks, llm, mode, checker)
    worded = [
        r.model_copy(update={"explanation": written[r.item_id], "explanation_source": "llm"})
        if r.item_id in written
        else r
        for r in recommendations
    ]
    return worded, stats
