"""A conversational front end: a small agent over the library's own tools.

Each line is read into its acts (`reader`: the titles and labels it names, then what it asks, by
meaning), then one tool answers each act: recommend, why/explain, more like an item, exclude or more
of a label, a free-text wish, newer/older, feedback ("I didn't like X": stored, taken into the next
profile update), the profile with its evidence and edits, forget an item.
The session keeps what was shown (never repeated) and the constraints (kept until cleared); an
exclusion said without "for now" is also stored as a profile edit, so it holds in later sessions and
in `recommend`.
"""

from __future__ import annotations

import difflib
import re
import statistics
from dataclasses import dataclass, field

from tasteprint.api import Tasteprint
from tasteprint.errors import TasteprintError
from tasteprint.models import Recommendation

from .intents import Router
from .reader import LineReader
from .turns import Constraints, LabelMention, SessionState, Subject, Turn, approximate_year, short_name
from .understanding import Act, Understanding

# A time phrase after what is excluded ("nothing with horror for now, thanks") is not part of its name;
# "for now" and its kin keep the exclusion to this session, anything else makes it a profile edit.
_FOR_NOW = re.compile(r"\b(for now|for the moment|for today|today|tonight|this time|this evening)\b", re.IGNORECASE)
_TIME_PHRASE = re.compile(
    r"[\s,]*\b(for now|for the moment|for today|today|tonight|this time|this evening|from now on|anymore|any more|"
    r"ever again|please|thanks|thank you)\b.*$",
    re.IGNORECASE,
)


WISH_POOL = 100  # items a free-text wish is looked for among: its nearest, and the person's fitted top
WISH_TASTE_WEIGHT = 0.3  # how much the person's fitted ranking counts beside closeness to the wish


@dataclass
class ChatSession:
    tp: Tasteprint
    user_id: str | None = None
    rerank: bool = True
    k: int = 5
    last: list[Recommendation] = field(default_factory=list)
    last_shown: list[Recommendation] = field(default_factory=list)  # what this turn listed (for --json)
    shown: set[str] = field(default_factory=set)
    constraints: Constraints = field(default_factory=Constraints)
    _ruled_out: tuple[str, frozenset[str]] = ("", frozenset())  # (constraints as JSON, the items they rule out)
    # rules: the deterministic parser. model: the hosted model's tool call, the rules when the call
    # fails or names nothing that exists. auto: the rules, and the model (if the backend can call
    # tools) for what the rules cannot read; the embedded 135M model routed 2 of 8 plain requests
    # right through llama.cpp's server, so it must not overrule them.
    router: Router = "auto"  # who reads a line (see `LineReader`)
    _named: set[str] = field(default_factory=set)  # the item ids this act names, resolved already

    def __post_init__(self) -> None:
        self.reader = LineReader(self.tp, self.router)

    @property
    def route_failures(self) -> list[str]:
        """Why each model routing failed, with its line."""
        return self.reader.failures

    def read(self, question: str) -> Understanding:
        """What a line names and asks, without acting on it (`turn` acts)."""
        return self.reader.read(question, self.user_id, [r.item_id for r in self.last])

    def answer(self, question: str) -> str | None:
        """Answer one line; None means the conversation is over."""
        turn = self.turn(question)
        return None if turn.intent == "quit" else turn.reply

    def turn(self, question: str) -> Turn:
        """Answer one line and say what was understood, shown and constrained."""
        understood = self.read(question)
        self.last_shown = []
        replies = []
        for act in understood.acts:
            replies.append(self._act(act, understood.argument))
            if act.intent == "quit":
                break
        picks = [
            r.model_dump(include={"item_id", "title", "explanation", "explanation_source", "evidence"})
            for r in self.last_shown
        ]
        items = self.tp.db.items([m.key for m in understood.mentions if m.kind == "item"])
        return Turn(
            input=question,
            intent=understood.intent,
            reply="\n".join(r for r in replies if r),
            recommendations=picks,
            constraints=self.constraints.model_copy(deep=True),
            acts=[a.as_json() for a in understood.acts],
            subjects=[
                Subject(item_id=m.key, title=items[m.key].title, stance=m.stance, span=m.span)
                for m in understood.mentions
                if m.kind == "item" and m.key in items
            ],
            labels=[
                LabelMention(label=m.key, stance=m.stance, span=m.span)
                for m in understood.mentions
                if m.kind == "label"
            ],
            understood_by=understood.understood_by,
        )

    def _act(self, act: Act, argument: str | None) -> str:
        """Carry out one act; its reply."""
        if act.intent == "quit":
            return "Bye."
        if act.intent == "help":
            return self._ask_back()
        if act.intent == "switch":
            return self.switch(argument or "")
        if self.user_id is None:
            return "Tell me who you are first: 'switch to user <id>'."
        self._named = {act.item_id} if act.item_id else set()
        named = act.item_id or act.label or act.query
        try:
            return getattr(self, f"_{act.intent}")(named)
        except TasteprintError as exc:
            return f"Sorry: {exc.message}"

    def _ask_back(self) -> str:
        """For a line nothing in it could be read: one short question, not the help list."""
        return "I didn't catch that: would you like a recommendation, or more like a film you name?"

    def state(self) -> SessionState:
        """What the next line needs of this one (the service stores it between requests)."""
        return SessionState(
            user_id=self.user_id, k=self.k, last=self.last, shown=sorted(self.shown), constraints=self.constraints
        )

    @classmethod
    def resume(cls, tp: Tasteprint, state: SessionState, **options) -> ChatSession:
        """A session carrying on from `state`."""
        shown, last = set(state.shown), list(state.last)
        return cls(tp, state.user_id, k=state.k, last=last, shown=shown, constraints=state.constraints, **options)

    def switch(self, user_id: str) -> str:
        if not self.tp.db.has_user(user_id):
            return f"I don't know user {user_id!r}."
        self.user_id, self.last, self.shown, self.constraints = user_id, [], set(), Constraints()
        facts = self.tp.facts(user_id)
        return f"Now talking about user {user_id} ({facts.n_items} items in their history)."

    # -- tools ----------------------------------------------------------------------------------

    def _show(self, heading: str, recommendations: list[Recommendation]) -> str:
        if self.rerank and recommendations:  # reasons are worded for what is shown, not the whole pool
            recommendations, _ = self.tp.word(self.user_id, recommendations)
        self.last, self.last_shown = recommendations, recommendations
        self.shown |= {r.item_id for r in recommendations}
        if not recommendations:
            return heading + "\nNothing left that fits; say 'clear filters' to widen the search."
        lines = [heading] + [f"{n}. {r.title} - {r.explanation}" for n, r in enumerate(recommendations, start=1)]
        return "\n".join(lines)

    def _fitting(self, recommendations: list[Recommendation]) -> list[Recommendation]:
        items = self.tp.db.items([r.item_id for r in recommendations])
        return [r for r in recommendations if r.item_id in items and self.constraints.allows(items[r.item_id])][
            : self.k
        ]

    def _recommend(self, _argument=None, heading: str = "") -> str:
        pool = self.tp.recommend(
            self.user_id, k=self.k, rerank=self.rerank, exclude=self._excluded(), reasons=False
        ).recommendations
        return self._show(heading or f"Recommended for user {self.user_id}:", self._fitting(pool))

    def _excluded(self) -> set[str]:
        """What was shown and every catalogue item the constraints rule out, so the recommender ranks
        only what may be shown: a list cut to a depth first and filtered after can come back empty for
        a person who mostly consumes what they just excluded."""
        c = self.constraints
        if not (c.exclude_labels or c.exclude_items or c.min_year or c.max_year):
            return set(self.shown)
        key = c.model_dump_json()  # the catalogue is scanned again only when the constraints change
        if self._ruled_out[0] != key:
            self._ruled_out = (key, frozenset(i for i, item in self.tp.db.items().items() if not c.allows(item)))
        return self.shown | self._ruled_out[1]

    def _resolve(self, title: str) -> str | None:
        """An item id from a title, an id or a near spelling: what was just shown first, then the catalogue."""
        if title in self._named:
            return title
        wanted = title.strip().strip("\"'").lower()
        if not wanted:
            return None
        for r in self.last:
            if wanted in r.title.lower() or r.title.lower() in wanted or wanted == r.item_id.lower():
                return r.item_id
        if self.tp.db.items([title.strip()]):
            return title.strip()
        if found := self.tp.find_items(title.strip()):
            return found[0]
        titles = {item.title.lower(): i for i, item in self.tp.db.items().items()}
        close = difflib.get_close_matches(wanted, list(titles), n=1, cutoff=0.75)
        return titles[close[0]] if close else None

    def _not_found(self, name: str | None) -> str:
        """One short question back, naming the closest titles or labels when there are any."""
        if not name:
            return self._ask_back()
        names = [item.title for item in self.tp.db.items().values()] + list(self.tp.label_shares())
        close = difflib.get_close_matches(name, names, n=2, cutoff=0.5)
        if not close:
            return f"I don't know {short_name(name)!r}: which title or genre do you mean?"
        return f"I don't know {short_name(name)!r}: did you mean {' or '.join(short_name(c) for c in close)}?"

    def _label(self, text: str) -> str | None:
        """The catalogue label a phrase names ("horror" -> "Horror"), or None."""
        wanted = text.lower().rstrip("s ") or text.lower()
        labels = {label.lower(): label for label in self.tp.label_shares()}
        for name in (text.lower(), wanted, wanted + "s"):
            if name in labels:
                return labels[name]
        close = difflib.get_close_matches(text.lower(), list(labels), n=1, cutoff=0.85)
        return labels[close[0]] if close else None

    def _why(self, title) -> str:
        item_id = self._resolve(title or "")
        if item_id is None:
            return self._not_found(title)
        facts = self.tp.facts(self.user_id)
        explanation = self.tp.explain(self.user_id, item_id)
        recommended = next((r for r in self.last if r.item_id == item_id), None)
        if item_id in facts.item_titles:
            lead = f"{explanation.title} is already in your history. Here is what it shares with the rest:"
        elif recommended:
            lead = f"I recommended {explanation.title} because:"
        else:
            lead = f"I didn't recommend {explanation.title}, but here is how it relates to your history:"
        lines = [lead, explanation.sentence]
        evidence = [
            facts.item_titles.get(i, i)
            + (f" (you rated it {facts.item_ratings[i]:g})" if i in facts.item_ratings else "")
            for i in explanation.evidence
        ]
        if evidence:
            lines.append("Evidence from your history: " + "; ".join(evidence) + ".")
        if explanation.shared_labels:
            lines.append("Shared: " + ", ".join(explanation.shared_labels[:5]) + ".")
        return "\n".join(lines)

    def _profile(self, _argument) -> str:
        profile = self.tp.profile(self.user_id)
        facts = self.tp.facts(self.user_id)
        lines = [profile.summary]
        for interest in profile.interests:
            titles = "; ".join(facts.item_titles.get(i, i) for i in interest.evidence)
            said = f' - you wrote "{interest.quote}"' if interest.quote else ""
            lines.append(f"- you like {interest.label} (weight {interest.weight:.2f}), e.g. {titles}{said}")
        for dislike in profile.dislikes:
            titles = "; ".join(facts.item_titles.get(i, i) for i in dislike.evidence)
            lines.append(f"- you rate {dislike.label} low, e.g. {titles}")
        lines += [f"- {key}: {value}" for key, value in profile.context.items()]
        titles = self.tp.db.items([e.item_id for e in profile.edits if e.item_id])
        for edit in profile.edits:  # what they told us, which every recommendation obeys
            named = titles[edit.item_id].title if edit.item_id in titles else edit.target
            lines.append(f"- you told me: {edit.kind.replace('_', ' ')} {named}")
        return "\n".join(lines)

    def _different(self, _argument) -> str:
        pool = self.tp.recommend(self.user_id, k=4 * self.k, rerank=False, exclude=self._excluded()).recommendations
        items = self.tp.db.items([r.item_id for r in pool + self.last])
        shown_labels = {label for r in self.last if r.item_id in items for label in items[r.item_id].labels()}
        pool.sort(key=lambda r: len(items[r.item_id].labels() & shown_labels) if r.item_id in items else 0)
        return self._show("Something different:", self._fitting(pool))

    def _like(self, title) -> str:
        item_id = self._resolve(title or "")
        if item_id is None:
            return self._not_found(title)
        facts = self.tp.facts(self.user_id)
        skip = set(facts.history_item_ids) | self.shown | set(self.constraints.exclude_items)
        neighbours = self.tp.similar_items(item_id, k=self.k * 8, exclude=skip)
        items = self.tp.db.items([i for i, _ in neighbours] + [item_id])
        anchor = items[item_id]
        evidence = [item_id] if item_id in facts.item_titles else []
        picks = []
        for i, similarity in neighbours:
            if i not in items or not self.constraints.allows(items[i]):
                continue
            shared = sorted(items[i].labels() & anchor.labels())[:3]
            reason = f"like {anchor.title} (text similarity {similarity:.2f})" + (
                f"; both are {', '.join(shared)}" if shared else ""
            )
            picks.append(
                Recommendation(
                    item_id=i, title=items[i].title, score=round(similarity, 4), evidence=evidence, explanation=reason
                )
            )
        return self._show(f"More like {anchor.title}:", picks[: self.k])

    def _exclude(self, text) -> str:
        """Leave a label or title out: for good (a profile edit, kept in later sessions and by
        `recommend`), or, when the line says "for now", for this session only."""
        text = text or ""
        for_now = bool(_FOR_NOW.search(text))
        text = _TIME_PHRASE.sub("", text).strip()
        label = self._label(text)
        if label is not None:
            if label not in self.constraints.exclude_labels:
                self.constraints.exclude_labels.append(label)
            if not for_now:
                self.tp.edit_profile(self.user_id, not_interested=[label])
            when = "for now" if for_now else "from now on (saved to your profile)"
            return self._recommend(heading=f"Nothing with {label} {when}. Instead:")
        item_id = self._resolve(text)
        if item_id is None:
            return self._not_found(text)
        self.constraints.exclude_items.append(item_id)
        if not for_now:
            self.tp.edit_profile(self.user_id, never=[item_id])
        return self._recommend(heading="I'll leave that one out. Instead:")

    def _era(self, newer: bool) -> str:
        items = self.tp.db.items([r.item_id for r in self.last] or self.tp.facts(self.user_id).history_item_ids)
        years = [y for item in items.values() if (y := approximate_year(item))]
        if not years:
            return "I don't know release years for these items."
        middle = int(statistics.median(years))
        if newer:
            self.constraints.min_year, self.constraints.max_year = middle + 1, None
        else:
            self.constraints.min_year, self.constraints.max_year = None, middle - 1
        bound = f"from {middle + 1} on" if newer else f"before {middle}"
        return self._recommend(heading=f"Released {bound}:")

    def _more(self, text) -> str:
        """More of a label, for good: a profile edit (at least 3 of every 10 picks carry it)."""
        label = self._label(text or "")
        if label is None:
            return "More of which kind? Name a genre, for example: more Comedy."
        self.tp.edit_profile(self.user_id, more=[label])
        return self._recommend(heading=f"More {label} from now on (saved to your profile):")

    def _wish(self, query) -> str:
        """A free-text wish ("heist films", "something for a rainy day"): the items nearest to it in the
        embedding space, ordered by how they also rank for this person in the fitted list."""
        self.tp.index(progress=False)
        pool = self.tp.recommend(
            self.user_id, k=WISH_POOL, rerank=False, exclude=self._excluded(), reasons=False
        ).recommendations
        fitted = {r.item_id: 1 - n / len(pool) for n, r in enumerate(pool)}
        vector = self.tp.embed([query])[0]
        skip = set(self.tp.facts(self.user_id).history_item_ids) | self._excluded()
        near = [(i, s) for i, s in self.tp.vectors.nearest_items(vector, WISH_POOL) if i not in skip]
        ranked = sorted(near, key=lambda pair: -(pair[1] + WISH_TASTE_WEIGHT * fitted.get(pair[0], 0.0)))
        items = self.tp.db.items([i for i, _ in ranked])
        picks = [
            Recommendation(
                item_id=i,
                title=items[i].title,
                score=round(score, 4),
                explanation=f"It fits what you asked for: {query}.",
                evidence=[],
            )
            for i, score in ranked
            if i in items
        ]
        return self._show(f"For '{query}':", self._fitting(picks))

    def _newer(self, _argument) -> str:
        return self._era(newer=True)

    def _older(self, _argument) -> str:
        return self._era(newer=False)

    def _feedback(self, title: str | None, liked: bool) -> str:
        item_id = self._resolve(title or "")
        if item_id is None:
            return self._not_found(title)
        self.tp.feedback(self.user_id, item_id, liked)
        self.shown.add(item_id)
        name = self.tp.db.items([item_id])[item_id].title
        verb = "loved" if liked else "didn't like"
        return f"Noted: you {verb} {name}. I won't suggest it again, and your next profile update takes it in."

    def _liked(self, title) -> str:
        return self._feedback(title, liked=True)

    def _disliked(self, title) -> str:
        return self._feedback(title, liked=False)

    def _forget(self, title) -> str:
        item_id = self._resolve(title or "")
        if item_id is None:
            return self._not_found(title)
        removed = self.tp.forget_item(self.user_id, item_id)
        name = self.tp.db.items([item_id])[item_id].title
        if not removed:
            return f"{name} was not in your history."
        return f"Forgotten: {name} ({removed} event(s) removed from your history)."

    def _clear(self, _argument) -> str:
        self.constraints = Constraints()
        return (
            "Filters cleared. Items already shown stay out of new lists; what you excluded for good stays in "
            "your profile (`tasteprint edit USER --undo LABEL` removes it)."
        )
