"""What a person says they like, read into edits: `tasteprint edit USER --says "TEXT"`.

1. The text's mentions are found from the catalogue: titles whose name (year and case aside) occurs
   in it, then, outside those titles, labels whose word stems occur in it ("comedies" names Comedy,
   "animated" Animation).
2. The model sorts those mentions, and only those (its output is confined by the schema to them):
   liked labels, disliked labels, liked titles.
3. Each choice is checked against the text: the clause that mentions it must state that stance
   (a negation such as "no", "not", "never" or "without" before the mention, or a negative clause, for
   a dislike; neither for a like). A mention the model left out is read from the clause alone, and a
   choice the check contradicts is dropped; both are logged.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import snowballstemmer
from pydantic import BaseModel, Field

from tasteprint.errors import LLMError
from tasteprint.ingest.aspects import clauses, polarity
from tasteprint.llm import LLMContext, generate
from tasteprint.llm.prompting import chat

STATED_MAX_TOKENS = 200
MIN_TITLE_CHARS = 4  # "Up" or "It" inside a sentence is a word, not a film
NEGATIVE_CLAUSE = -0.3  # VADER compound at or below which a clause without a negation word still rejects
_NEGATION = re.compile(
    r"\b(no|not|never|nothing|without|none|hate|hates|dislike|dislikes|avoid|can't|cannot|don't|doesn't|won't|"
    r"isn't|aren't|stop|skip|enough)\b|n't\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_WORD = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("english")
_TRAILING_ARTICLE = re.compile(r"^(.*), (the|a|an)$", re.IGNORECASE)


class StatedChoice(BaseModel):
    """The model's sorting of the mentions; shape only, each choice is checked against the text."""

    liked_labels: list[str] = Field(default_factory=list)
    disliked_labels: list[str] = Field(default_factory=list)
    liked_titles: list[str] = Field(default_factory=list)


@dataclass
class StatedReading:
    """What a statement says: liked and disliked labels, liked item ids, and what the check did."""

    liked_labels: list[str] = field(default_factory=list)
    disliked_labels: list[str] = field(default_factory=list)
    liked_items: list[str] = field(default_factory=list)
    by_llm: bool = False
    reasons: list[str] = field(default_factory=list)


def title_name(title: str) -> str:
    """A title as people say it: no year, "Matrix, The" as "the matrix", case folded."""
    name = _YEAR.sub("", title).strip()
    if match := _TRAILING_ARTICLE.match(name):
        name = f"{match.group(2)} {match.group(1)}"
    return name.casefold()


def stems(text: str) -> list[tuple[str, int]]:
    """The text's words as (stem, character offset), lower case."""
    words = [(m.group().casefold(), m.start()) for m in _WORD.finditer(text)]
    return list(zip(_STEMMER.stemWords([w for w, _ in words]), (at for _, at in words)))


def find_stems(text: str | list[tuple[str, int]], name: str) -> int:
    """The character offset in `text` (or its `stems`) where `name` occurs as a run of word stems, or -1."""
    words = stems(text) if isinstance(text, str) else text
    wanted = [stem for stem, _ in stems(name)]
    for start in range(len(words) - len(wanted) + 1) if wanted else ():
        if [stem for stem, _ in words[start : start + len(wanted)]] == wanted:
            return words[start][1]
    return -1


def title_names(title: str) -> tuple[str, ...]:
    """The names a title goes by, year and case aside: as people say it ("the matrix") and as the
    catalogue writes it ("matrix, the")."""
    return tuple(dict.fromkeys((title_name(title), _YEAR.sub("", title).strip().casefold())))


def mentioned_labels(text: str, labels: Collection[str]) -> list[str]:
    """Catalogue labels the text names by their word stems, longest first (so "science fiction" is
    found before "fiction")."""
    words = stems(text)
    found = [label for label in labels if find_stems(words, label) >= 0]
    return sorted(found, key=lambda label: (-len(label), label))


def mentioned_titles(text: str, titles: Mapping[str, str]) -> dict[str, str]:
    """Item id -> the form in which the text names its title as whole words: as people say it ("the
    matrix") or as the catalogue writes it ("matrix, the"). Where one name holds another ("The
    Godfather: Part II" and "The Godfather"), only the longer one counts."""
    folded = text.casefold()
    found: dict[str, str] = {}
    for item_id, title in titles.items():
        for name in title_names(title):
            if len(name) >= MIN_TITLE_CHARS and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", folded):
                found[item_id] = name
                break
    kept: dict[str, str] = {}
    for item_id in sorted(found, key=lambda i: -len(found[i])):
        if not any(found[item_id] in name for name in kept.values()):
            kept[item_id] = found[item_id]
    return kept


def stance(text: str, name: str) -> int:
    """-1 when the clause naming `name` rejects it (a negation before the mention, or a clearly
    negative clause), else +1; 0 when no clause names it."""
    for clause in clauses(text):
        at = find_stems(clause, name)
        if at < 0:
            continue
        if _NEGATION.search(clause[:at]) or polarity(clause) <= NEGATIVE_CLAUSE:
            return -1
        return 1
    return 0


def read_statement(text: str, labels: Collection[str], titles: Mapping[str, str], llm: LLMContext) -> StatedReading:
    """The statement's liked and disliked labels and liked titles (see the module docstring)."""
    title_mentions = mentioned_titles(text, titles)
    untitled = text  # a genre word inside a title ("Star Wars") names the film, not the label
    for name in title_mentions.values():
        untitled = re.sub(re.escape(name), " ", untitled, flags=re.IGNORECASE)
    label_mentions = mentioned_labels(untitled, labels)
    reading = StatedReading()
    choice = _ask(text, label_mentions, {i: titles[i] for i in title_mentions}, llm, reading)
    by_title = {titles[i]: i for i in title_mentions}
    read = {label: stance(untitled, label) for label in label_mentions}
    read |= {titles[i]: stance(text, name) for i, name in title_mentions.items()}
    checked: dict[str, int] = {}
    for wanted, names in ((1, choice.liked_labels + choice.liked_titles), (-1, choice.disliked_labels)):
        for name in names:
            if read.get(name) == wanted:
                checked[name] = wanted
            else:
                reading.reasons.append(f"{name!r}: the model's choice dropped, the text does not say it that way")
    for name, said in read.items():
        if name not in checked and said:
            checked[name] = said
            reading.reasons.append(f"{name!r}: read from the text, the model left it out")
    for name, said in checked.items():
        if name in by_title:
            if said > 0:
                reading.liked_items.append(by_title[name])
        elif said > 0:
            reading.liked_labels.append(name)
        else:
            reading.disliked_labels.append(name)
    return reading


def _ask(text: str, labels: list[str], titles: dict[str, str], llm: LLMContext, reading: StatedReading) -> StatedChoice:
    """The model's sorting, confined to the mentions; an empty choice when there is nothing to sort,
    no model, or the call fails (logged)."""
    shown = list(titles.values())
    properties = {}
    for key, options in (("liked_labels", labels), ("disliked_labels", labels), ("liked_titles", shown)):
        if options:
            properties[key] = {"type": "array", "items": {"type": "string", "enum": options}, "maxItems": len(options)}
    if not properties or llm.backend is None:
        return StatedChoice()
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    messages = chat("stated_system.j2", "stated_user.j2", llm.prompts_dir, statement=text, labels=labels, titles=shown)
    try:
        reply = generate(
            llm.backend,
            messages,
            StatedChoice,
            schema=schema,
            max_tokens=STATED_MAX_TOKENS,
            temperature=llm.temperature,
        )
    except LLMError as exc:
        reading.reasons.append(f"the model's reading failed ({exc.message}); read from the text alone")
        return StatedChoice()
    reading.by_llm = True
    return reply.value
