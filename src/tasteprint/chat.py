"""A conversational front end: routes each question to the library's profile, recommend and explain
functions and answers in plain language with the evidence. Keeps what was last recommended."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from .api import Tasteprint
from .errors import TasteprintError
from .models import Recommendation

HELP = (
    "Ask me: 'recommend something', 'why did you recommend <title>?', 'what do you know about me?', "
    "'show me something different', 'more like <title>', 'switch to user <id>', or 'quit'."
)
ROUTES: list[tuple[str, re.Pattern]] = [
    ("quit", re.compile(r"^\s*(quit|exit|bye)\b", re.I)),
    (
        "switch",
        re.compile(r"\b(?:switch|change)\s+(?:to\s+)?user\s+(\S+?)[.!?]?\s*$|^\s*user\s+(\S+?)[.!?]?\s*$", re.I),
    ),
    (
        "why",
        re.compile(
            r"\bwhy\b.*?\b(?:recommend(?:ed)?|suggest(?:ed)?|pick(?:ed)?)\s+(?:me\s+)?[\"']?(.+?)[\"']?\s*\??\s*$", re.I
        ),
    ),
    ("profile", re.compile(r"\b(what do you know about me|my profile|who am i|my taste)\b", re.I)),
    ("different", re.compile(r"\b(something|anything)\s+(different|else|new)\b|\bdifferent\b", re.I)),
    ("like", re.compile(r"\bmore\s+like\s+[\"']?(.+?)[\"']?\s*[.!?]?\s*$", re.I)),
    ("recommend", re.compile(r"\b(recommend|suggest|what should i|give me)\b", re.I)),
]


def route(question: str) -> tuple[str, str | None]:
    """The intent of a question and its argument (a title or user id), or ("help", None)."""
    for intent, pattern in ROUTES:
        if match := pattern.search(question):
            argument = next((g for g in match.groups() if g), None) if intent in ("switch", "why", "like") else None
            return intent, argument
    return "help", None


@dataclass
class ChatSession:
    tp: Tasteprint
    user_id: str | None = None
    rerank: bool = True
    k: int = 5
    last: list[Recommendation] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)

    def answer(self, question: str) -> str | None:
        """Answer one question; None means the conversation is over."""
        intent, argument = route(question)
        if intent == "quit":
            return None
        if intent == "help":
            return HELP
        if intent == "switch":
            return self.switch(argument or "")
        if self.user_id is None:
            return "Tell me who you are first: 'switch to user <id>'."
        try:
            return getattr(self, f"_{intent}")(argument)
        except TasteprintError as exc:
            return f"Sorry: {exc.message}"

    def switch(self, user_id: str) -> str:
        if not self.tp.db.has_user(user_id):
            return f"I don't know user {user_id!r}."
        self.user_id, self.last, self.shown = user_id, [], set()
        facts = self.tp.facts(user_id)
        return f"Now talking about user {user_id} ({facts.n_items} items in their history)."

    def _remember(self, recommendations: list[Recommendation]) -> None:
        self.last = recommendations
        self.shown |= {r.item_id for r in recommendations}

    def _list(self, heading: str, recommendations: list[Recommendation]) -> str:
        lines = [heading]
        for n, r in enumerate(recommendations, start=1):
            lines.append(f"{n}. {r.title} - {r.explanation}")
        return "\n".join(lines)

    def _recommend(self, _argument) -> str:
        recommendations = self.tp.recommend(self.user_id, k=self.k, rerank=self.rerank)
        self._remember(recommendations)
        return self._list(f"Recommended for user {self.user_id}:", recommendations)

    def _resolve(self, title: str) -> str | None:
        """An item id from a title (or id): the last recommendations first, then the catalogue."""
        wanted = title.strip().strip("\"'").lower()
        for r in self.last:
            if wanted and (wanted in r.title.lower() or r.title.lower() in wanted or wanted == r.item_id):
                return r.item_id
        if self.tp.db.items([title.strip()]):
            return title.strip()
        found = self.tp.find_items(title.strip())
        return found[0] if found else None

    def _why(self, title) -> str:
        item_id = self._resolve(title or "")
        if item_id is None:
            return f"I can't find an item called {title!r}."
        facts = self.tp.facts(self.user_id)
        explanation = self.tp.explain(self.user_id, item_id)
        recommended = next((r for r in self.last if r.item_id == item_id), None)
        lead = (
            f"I recommended {explanation.title} because:"
            if recommended
            else f"I didn't recommend {explanation.title}, but here is how it relates to your history:"
        )
        lines = [lead, explanation.sentence]
        if recommended and recommended.explanation != explanation.sentence:
            lines.append(recommended.explanation)
        evidence = [
            f"{facts.item_titles.get(i, i)}"
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
            lines.append(f"- you like {interest.label} (weight {interest.weight:.2f}), e.g. {titles}")
        for dislike in profile.dislikes:
            titles = "; ".join(facts.item_titles.get(i, i) for i in dislike.evidence)
            lines.append(f"- you rate {dislike.label} low, e.g. {titles}")
        lines += [f"- {key}: {value}" for key, value in profile.context.items()]
        return "\n".join(lines)

    def _different(self, _argument) -> str:
        pool = self.tp.recommend(self.user_id, k=4 * self.k, rerank=False, exclude=self.shown)
        items = self.tp.db.items([r.item_id for r in pool + self.last])
        seen_labels = Counter(label for r in self.last if r.item_id in items for label in items[r.item_id].labels())
        # Least overlap with what was just shown first; retrieval order breaks ties.
        pool.sort(
            key=lambda r: sum(seen_labels[label] for label in items[r.item_id].labels()) if r.item_id in items else 0
        )
        picks = pool[: self.k]
        self._remember(picks)
        return self._list("Something different:", picks)

    def _like(self, title) -> str:
        item_id = self._resolve(title or "")
        if item_id is None:
            return f"I can't find an item called {title!r}."
        facts = self.tp.facts(self.user_id)
        neighbours = self.tp.similar_items(item_id, k=self.k, exclude=set(facts.history_item_ids) | self.shown)
        items = self.tp.db.items([i for i, _ in neighbours] + [item_id])
        evidence = [item_id] if item_id in facts.item_titles else []
        recommendations = [
            Recommendation(
                item_id=i,
                title=items[i].title,
                score=round(s, 4),
                evidence=evidence,
                explanation=f"similar to {items[item_id].title} (cosine {s:.2f}); shares "
                + (", ".join(sorted(items[i].labels() & items[item_id].labels())[:3]) or "its description"),
            )
            for i, s in neighbours
            if i in items
        ]
        self._remember(recommendations)
        return self._list(f"More like {items[item_id].title}:", recommendations)
