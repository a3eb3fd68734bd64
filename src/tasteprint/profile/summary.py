"""The profile summary: its schema (a regular expression confined to verified claims for small local
models, a free pattern otherwise), its prompt, the checks a written summary must pass, and the
summary written from verified data when it fails them."""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel

from tasteprint.llm.privacy import redact
from tasteprint.llm.prompting import chat, one_of, pairs, string_schema
from tasteprint.models import Interest, UserFacts, UserProfile

# A free summary may not contain JSON or markup characters and must start like a description: this
# stops a model from echoing the schema or an injected instruction back as the "summary".
FREE_SUMMARY_MAX_CHARS = 260
FREE_SUMMARY_PATTERN = (
    f'^(Enjoys|Loves|Likes|Prefers|Watches|Reads|Buys) [^{{}}<>\\[\\]"]{{20,{FREE_SUMMARY_MAX_CHARS}}}$'
)
# Room for the longest reply that pattern allows (a token is at least one character, plus the JSON
# around it), so a model that rambles is stopped by the grammar at the end of valid JSON, not cut off
# mid-string and re-asked to the same end (SmolLM2 wrote 253 characters of titles and years in 160 tokens).
SUMMARY_MAX_TOKENS = FREE_SUMMARY_MAX_CHARS + 60
# The context lines a confined summary can state (as "A generous rater.", "Favours older classics.").
SAYABLE_CONTEXT = ("rating_style", "era")


def summary_schema(facts: UserFacts, profile: UserProfile, confined: bool) -> dict:
    """The summary's schema. `confined` (for grammar-enforcing backends, i.e. small local models): a
    regular expression whose only slots are the verified labels, their evidence titles and the context
    phrases, so every sentence the model can write is true by construction. Otherwise a free pattern,
    checked afterwards by `summary_problem`."""
    pattern = FREE_SUMMARY_PATTERN
    # Each label is paired with its own evidence titles, so "likes Thriller, such as Henry V" cannot occur.
    clauses = [
        f"{label}, (such as|for example|especially) {titles}"
        for i in profile.interests
        if (label := one_of([i.label])) and (titles := one_of([facts.item_titles[e] for e in i.evidence]))
    ]
    if confined and clauses:
        # A second clause names another claim ("likes Action ..., and Action ..." cannot occur), and the
        # full stop ends each alternative, so no alternative is the beginning of another (`llm/patterns.py`).
        likes = "|".join(
            f"{clause}(, and ({'|'.join(c for c in clauses if c != clause)}))?[.]"
            if len(clauses) > 1
            else f"{clause}[.]"
            for clause in clauses
        )
        pattern = f"^(Enjoys|Loves|Likes|Prefers) ({likes})"
        labels = [d.label for d in profile.dislikes]
        if dislikes := one_of(labels + pairs(labels)):
            pattern += f"( (Rates|Is less keen on) {dislikes} (low|lower)[.])?"
        if phrases := one_of([v.split(" (")[0] for k, v in facts.context.items() if k in SAYABLE_CONTEXT]):
            pattern += f"( (A|Tends to be a|Favours) {phrases}[.])?"
        pattern += "$"
    return string_schema("summary", pattern)


class SummaryDraft(BaseModel):
    summary: str


def summary_messages(
    facts: UserFacts, profile: UserProfile, prompts_dir=None, confined: bool = False
) -> list[dict[str, str]]:
    """The summary request: each verified claim with up to two titles, and the context lines (for a
    `confined` summary only those its pattern can state: the others would be prompt tokens it cannot use)."""

    def named(evidence: list[str]) -> list[str]:
        return [facts.item_titles.get(i, i) for i in evidence[:2]]

    return chat(
        "profile_system.j2",
        "profile_summary.j2",
        prompts_dir,
        interests=[{"label": i.label, "titles": named(i.evidence)} for i in profile.interests],
        dislikes=[{"label": d.label, "titles": named(d.evidence)} for d in profile.dislikes],
        context={k: v for k, v in facts.context.items() if k != "activity" and (k in SAYABLE_CONTEXT or not confined)},
    )


def check_summary(
    facts: UserFacts,
    profile: UserProfile,
    summary: str,
    vocabulary: set[str],
    problem: str | None = None,
    source_text: str = "",
) -> UserProfile:
    """Keep the model's summary if it passes `summary_problem`; otherwise write one from verified data."""
    summary = redact(" ".join(summary.split()))
    stats = profile.verification.model_copy(deep=True)
    problem = problem or summary_problem(summary, profile, vocabulary, source_text)
    if problem:
        stats.summary_replaced = True
        stats.reasons.append(f"summary replaced: {problem}")
        summary = fallback_summary(facts, profile.interests)
    return profile.model_copy(update={"summary": summary[:400], "verification": stats})


_WORD = re.compile(r"[\w'-]+")
INJECTION_MARKERS = ("ignore", "instruction", "system prompt", "hacked", "assistant:", "<|", '{"')


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_INSTRUCTION_ECHOES = ("taste in one or two sentences", "using only these facts", "facts you are given")


def summary_problem(summary: str, profile: UserProfile, vocabulary: set[str], source_text: str = "") -> str | None:
    """Why a summary cannot be kept, or None: too short, degenerate repetition, text that reads like an
    instruction or echoes ours, a number the model was never shown, a catalogue label that is neither a
    verified claim nor in the summary prompt, or no verified claim at all."""
    words = [w.lower() for w in _WORD.findall(summary)]
    if len(words) < 4:
        return "too short"
    most, count = Counter(words).most_common(1)[0]
    if count >= 4 and count / len(words) > 0.25:
        return f"degenerate repetition of {most!r}"
    lowered = summary.lower()
    for marker in INJECTION_MARKERS:
        if marker in lowered:
            return f"contains {marker!r}, which reads as injected text"
    for echo in _INSTRUCTION_ECHOES:
        if echo in lowered:
            return "repeats the instructions"
    shown = set(_NUMBER.findall(source_text))
    for number in _NUMBER.findall(summary):
        if number not in shown:
            return f"states the number {number}, which is not in the facts"
    # Labels the summary prompt showed (claims, evidence titles that happen to be labels, context) are fine.
    claimed = [c.label.lower() for c in profile.interests + profile.dislikes]
    shown_text = " ".join(claimed) + " " + source_text.lower()
    for label in vocabulary:
        if (
            len(label) >= 4
            and label.lower() not in shown_text
            and re.search(rf"\b{re.escape(label.lower())}\b", lowered)
        ):
            return f"names {label!r}, which is not a verified interest or dislike"
    if claimed and not any(label in lowered for label in claimed):
        return "mentions none of the verified interests"
    return None


def fallback_summary(facts: UserFacts, interests: list[Interest]) -> str:
    """A summary written from verified data alone, used when the model's summary fails its checks."""
    labels = [i.label for i in interests[:3]] or [a.label for a in facts.top_attributes[:3]]
    parts = [f"Interacted with {facts.n_items} items"]
    if labels:
        parts[0] += f", mostly {', '.join(labels)}"
    if facts.loved:
        parts.append("Favourites include " + "; ".join(i.title for i in facts.loved[:2]))
    return (". ".join(parts) + ".")[:400]
