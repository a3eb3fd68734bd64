"""Explain any item for a user: evidence from the history, and an LLM sentence whose citations are checked."""

from __future__ import annotations

import re

from pydantic import BaseModel

from tasteprint.errors import LLMError
from tasteprint.llm import LLMContext, generate
from tasteprint.llm.prompting import chat, one_of, pairs, string_schema
from tasteprint.models import Explanation, Item, UserFacts

from .evidence import explanation_text


class SentenceDraft(BaseModel):
    sentence: str


def sentence_schema(evidence_titles: list[str], shared: list[str], confined: bool) -> dict:
    """Confined: the sentence can only name the evidence titles and shared labels. Free otherwise."""
    titles = one_of(evidence_titles + pairs(evidence_titles))
    pattern = '^[^{}<>\\[\\]"]{20,240}$'
    if confined and titles:
        opening = "^(You may enjoy|You might like) (it|this) because you (liked|enjoyed|rated highly)"
        pattern = f"{opening} {titles}[.]"
        if labels := one_of(shared + pairs(shared)):
            pattern += f"( Both are {labels}[.])?"
        pattern += "$"
    return string_schema("sentence", pattern)


def cited_items(sentence: str, facts: UserFacts, candidates: list[str]) -> list[str]:
    """History items whose titles the sentence names, among `candidates` (longest titles first)."""
    found = []
    rest = sentence
    for item_id in sorted(candidates, key=lambda i: -len(facts.item_titles.get(i, i))):
        title = facts.item_titles.get(item_id, item_id)
        if title and title in rest:
            found.append(item_id)
            rest = rest.replace(title, " ")
    return found


def explain_item(
    facts: UserFacts,
    item: Item,
    evidence: list[str],
    llm: LLMContext,
    together: dict[str, int] | None = None,
) -> Explanation:
    """Explain `item` for the user. `evidence` are the nearest history items, best first; `together`
    counts the other people who consumed the item and each history item."""
    shared = sorted(item.labels() & {label for i in evidence for label in facts.item_labels.get(i, [])})
    base = Explanation(
        user_id=facts.user_id,
        item_id=item.item_id,
        title=item.title,
        evidence=evidence[:2],
        shared_labels=shared,
        sentence=explanation_text(facts, item, evidence[:2], together),
        grounded=bool(evidence),
        by_llm=False,
    )
    backend = llm.backend
    if backend is None or not evidence:
        return base
    titles = [facts.item_titles.get(i, i) for i in evidence]
    messages = chat(
        "explain_system.j2",
        "explain_user.j2",
        llm.prompts_dir,
        user_id=facts.user_id,
        target={"title": item.title, "labels": sorted(item.labels())[:5]},
        evidence=[
            {"title": t, "rating": facts.item_ratings.get(i), "labels": facts.item_labels.get(i, [])[:5]}
            for i, t in zip(evidence, titles)
        ],
        shared=shared,
    )
    try:
        draft = generate(
            backend,
            messages,
            SentenceDraft,
            schema=sentence_schema(titles, shared, confined=backend.enforces_schema),
            max_tokens=120,
            temperature=llm.temperature,
        )
    except LLMError:
        return base
    sentence = " ".join(draft.value.sentence.split())
    history = set(facts.history_item_ids)
    cited = cited_items(sentence, facts, facts.history_item_ids if len(history) < 5000 else evidence)
    # Grounded: cites at least one history item, and no catalogue title outside the evidence.
    if not cited or not set(cited) <= set(evidence) or re.search(r"[{}<>]", sentence):
        return base
    return base.model_copy(update={"sentence": sentence, "evidence": cited, "by_llm": True, "grounded": True})
