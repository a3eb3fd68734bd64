"""What a chat line asks, by meaning: the acts it carries, in order, each with what it names.

1. `mentions` finds the titles and labels first, with spans and stances.
2. The line, with each title written as TITLE and each label as GENRE, is embedded with the
   project's MiniLM model and compared with example requests of every intent (`EXAMPLES`); the
   nearest intent wins when it is close enough and clearly ahead of the next one.
3. Otherwise the rules (`intents.route`) read the line; failing those, a model chooses: the local
   model among the intents whose examples were too close to tell apart (confined to them by a
   grammar), a hosted one that calls tools among every intent (a tool call).
4. A line with several parts ("I loved Heat, anything similar?") carries several acts: each part
   that reads clearly as its own request adds an act, and a title judged liked or disliked is
   recorded before the request is answered. "it", "that one" or "the second" in a part refer to the
   line's title, else to what was just shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .examples import EXAMPLES
from .intents import route
from .mentions import Mention

UnderstoodBy = Literal["rules", "embedding", "model"]
# (line, the intents within the margin of the nearest or None) -> the intent a model reads, or None
ModelChooser = Callable[[str, list[str] | None], str | None]
MIN_SIMILARITY = 0.55  # below this the nearest example is not a paraphrase
MARGIN = 0.04  # the nearest intent must lead the next by this much
CLEAR_LEAD = 0.1  # ... and by this much to overrule the rules where they read the line otherwise
NEEDS_ITEM = {"why", "like", "liked", "disliked", "forget"}


_REFERENCE = re.compile(r"\b(it|that one|that|this one|the (first|second|third|fourth|fifth|last) one?)\b", re.I)
_PARTS = re.compile(r"\s*(?:[,;.!?]+|\bbut\b|\band (?=can|could|would|what|show|give|recommend))\s*", re.I)
_EXAMPLE_VECTORS: dict[str, np.ndarray] = {}  # the examples' embeddings, by embedding model
ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}


@dataclass
class Act:
    """One thing a line asks or tells: its intent and what it names (an item, a label or a query)."""

    intent: str
    item_id: str | None = None
    label: str | None = None
    query: str | None = None

    def as_json(self) -> dict:
        named = {"item_id": self.item_id, "label": self.label, "query": self.query}
        return {"intent": self.intent} | {k: v for k, v in named.items() if v is not None}


@dataclass
class Understanding:
    """A line as understood: its acts in order, the titles and labels it names, and who decided."""

    acts: list[Act]
    mentions: list[Mention] = field(default_factory=list)
    understood_by: UnderstoodBy = "rules"
    argument: str | None = None  # what the rules captured, for intents whose argument is a user id

    @property
    def intent(self) -> str:
        return self.acts[0].intent if self.acts else "help"


class SemanticRouter:
    """Nearest example intents over sentence embeddings (`EXAMPLES`)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], vocabulary: set[str] = frozenset()):
        self.embed = embed
        self.vocabulary = vocabulary  # the embedding model's whole words: what counts as a real word
        self.intents = [intent for intent, examples in EXAMPLES.items() for _ in examples]
        # Every session embeds the same examples with the same model: once per model in a process.
        key = str(getattr(embed, "model_dir", id(embed)))
        if key not in _EXAMPLE_VECTORS:
            _EXAMPLE_VECTORS[key] = embed([example for examples in EXAMPLES.values() for example in examples])
        self.vectors = _EXAMPLE_VECTORS[key]

    def describes(self, text: str) -> bool:
        """Whether a line no intent reads still describes something to watch: two or more real content
        words ("dragons and magic"), not noise ("zxqv plorf") or a courtesy."""
        from .mentions import common_words

        content = [w for w in re.findall(r"[a-z]+", text.lower()) if w not in common_words()]
        return sum(w in self.vocabulary for w in content) >= 2

    def ranked(self, text: str) -> list[tuple[str, float]]:
        """Every intent with its nearest example's similarity to a line with its names masked, nearest first."""
        similarity = self.vectors @ self.embed([text])[0]
        best: dict[str, float] = {}
        for intent, value in zip(self.intents, similarity):
            best[intent] = max(best.get(intent, -1.0), float(value))
        return sorted(best.items(), key=lambda pair: -pair[1])

    def nearest(self, text: str) -> tuple[str, float, float]:
        """(intent, similarity, lead over the next intent) for a line with its names masked."""
        ranked = self.ranked(text)
        return ranked[0][0], ranked[0][1], ranked[0][1] - ranked[1][1]


def masked(line: str, mentions: list[Mention], start: int = 0, end: int | None = None) -> str:
    """`line[start:end]` with each title written as TITLE and each label as GENRE."""
    end = len(line) if end is None else end
    out, at = [], start
    for m in mentions:
        if start <= m.span[0] and m.span[1] <= end:
            out += [line[at : m.span[0]], "TITLE" if m.kind == "item" else "GENRE"]
            at = m.span[1]
    return "".join(out + [line[at:end]]).strip()


def understand(
    line: str,
    mentions: list[Mention],
    router: SemanticRouter,
    choose_by_model: ModelChooser | None = None,
    shown: list[str] = (),
) -> Understanding:
    """The acts of one line (see the module docstring). `choose_by_model(line, close)` returns an intent
    or None, where `close` lists the intents whose examples are within the margin of the nearest (None
    when no example is near); `shown` is what the session just listed, for "the second"."""
    intent, by, argument = _whole_line(line, mentions, router, choose_by_model)
    acts = [_act(intent, line, mentions, 0, len(line), shown)]
    if intent in NEEDS_ITEM and acts[0].item_id is None and route(line)[0] == intent:
        acts[0].query = argument  # a title the catalogue lacks: the reply names what was asked for
    parts = _parts(line)
    if len(parts) > 1 and intent not in ("switch", "quit", "help"):
        acts = []
        for start, end in parts:
            text = masked(line, mentions, start, end)
            if len(text.split()) < 2 and acts:
                continue  # "thanks", "please": courtesy, not a request
            part_intent, similarity, lead = router.nearest(text)
            if similarity < MIN_SIMILARITY or lead < MARGIN / 2:
                part_intent = intent if not acts else None
            if part_intent and part_intent != "help" and (not acts or acts[-1].intent != part_intent):
                acts.append(_act(part_intent, line, mentions, start, end, shown))
        acts = acts or [_act(intent, line, mentions, 0, len(line), shown)]
    _agree_with_stances(acts, mentions)
    judged = [m for m in mentions if m.kind == "item" and m.stance != "neutral"]
    for m in judged:  # a title judged in passing is recorded before the request is answered
        verdict = "liked" if m.stance == "liked" else "disliked"
        if acts[0].intent not in (verdict, "exclude", "forget") and not any(a.item_id == m.key for a in acts[:1]):
            acts.insert(0, Act(verdict, item_id=m.key))
    return Understanding(acts, mentions, by, argument)


def _agree_with_stances(acts: list[Act], mentions: list[Mention]) -> None:
    """Where the stance read from the words and the nearest intent disagree on direction, the words win:
    "no more romance" excludes, "the Matrix was a letdown" is a dislike."""
    for act in acts:
        named = next((m for m in mentions if (m.key == act.item_id or m.key == act.label) and m.key), None)
        if named is None:
            continue
        if act.intent in ("liked", "disliked") and named.stance != "neutral":
            act.intent = named.stance
        elif act.intent == "more" and named.stance == "disliked":
            act.intent = "exclude"
        elif act.intent == "exclude" and named.kind == "label" and named.stance == "liked":
            act.intent = "more"


def _whole_line(line, mentions, router, choose_by_model) -> tuple[str, UnderstoodBy, str | None]:
    ruled, argument = route(line)
    if ruled == "switch":
        return ruled, "rules", argument
    ranked = router.ranked(masked(line, mentions))
    (intent, similarity), lead = ranked[0], ranked[0][1] - ranked[1][1]
    # Clearly nearest wins; a close call goes to the rules when they read the line.
    # The rules' catch-all "recommend" (any "more", "another") is no reading of its own.
    if (
        similarity >= MIN_SIMILARITY
        and lead >= MARGIN
        and (ruled in ("help", "recommend", intent) or lead >= CLEAR_LEAD)
    ):
        return intent, "embedding", argument
    if ruled != "help":
        return ruled, "rules", argument
    close = [name for name, value in ranked if value >= similarity - MARGIN] if similarity >= MIN_SIMILARITY else None
    if choose_by_model is not None and (chosen := choose_by_model(line, close)):
        return chosen, "model", argument
    if similarity >= MIN_SIMILARITY:
        return intent, "embedding", argument
    # Nothing reads it as a request of its own: a line that names nothing but describes something is a wish.
    return ("wish", "embedding", argument) if not mentions and router.describes(line) else ("help", "rules", argument)


def _parts(line: str) -> list[tuple[int, int]]:
    """[start, end) of each part of the line, split at punctuation and at "but"."""
    parts, at = [], 0
    for match in _PARTS.finditer(line):
        if match.start() > at:
            parts.append((at, match.start()))
        at = match.end()
    if at < len(line):
        parts.append((at, len(line)))
    return [p for p in parts if line[p[0] : p[1]].strip()]


def _act(intent: str, line: str, mentions: list[Mention], start: int, end: int, shown: list[str]) -> Act:
    """The act of `intent` on what the part names: its title, else its label, else a reference."""
    inside = [m for m in mentions if start <= m.span[0] < end]
    items = [m for m in inside if m.kind == "item"] or [m for m in mentions if m.kind == "item"]
    labels = [m for m in inside if m.kind == "label"]
    if intent in ("exclude", "more") and labels:
        return Act(intent, label=labels[0].key)
    if intent == "wish":
        return Act(intent, query=line[start:end].strip())
    if items and (intent in NEEDS_ITEM or intent == "exclude"):
        return Act(intent, item_id=items[0].key)
    if intent in NEEDS_ITEM and shown and (ref := _REFERENCE.search(line[start:end])):
        ordinal = ref.group(2)
        return Act(intent, item_id=shown[ORDINALS[ordinal.lower()]] if ordinal else shown[0])
    return Act(intent)
