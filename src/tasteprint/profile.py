"""Facts -> LLM draft (confined by a grammar to what the data allows) -> verified UserProfile.

The model picks labels and evidence ids from enums built from the user's own facts and writes a
short summary. Verification then drops any claim the facts do not support and counts it; interest
weights are computed from the data, not by the model.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from pydantic import BaseModel, Field

from .aspects import Mention, clauses, contains, excerpt, lemma_form, polarity, stance
from .facts import DISLIKED_MAX
from .errors import LLMError, StructuredOutputError
from .llm import LLMBackend, generate
from .models import Dislike, Interest, ProfileDiff, UserFacts, UserProfile, VerificationStats
from .privacy import redact
from .prompting import chat, string_schema

MAX_INTERESTS = 5
MAX_DISLIKES = 3
MAX_EVIDENCE = 3
MAX_EVIDENCE_CHOICES = 6
SUMMARY_MAX = 300
DISLIKE_MARGIN = 0.5
PROMPT_NAME = "profile_user.j2"
UPDATE_PROMPT_NAME = "profile_update.j2"
CLAIMS_MAX_TOKENS = 400  # 300 truncated a real Amazon draft (5 interests + 2 dislikes with ASIN evidence)
HALF_LIFE_DAYS = 365
# An update drops an interest whose time-decayed weight fell below this: the taste has moved on.
FADED_WEIGHT = 0.05


class DraftClaim(BaseModel):
    label: str
    evidence: list[str] = Field(default_factory=list)


class ProfileDraft(BaseModel):
    """What the model is asked for. Shape only; whether each claim is true is checked afterwards."""

    interests: list[DraftClaim] = Field(default_factory=list)
    dislikes: list[DraftClaim] = Field(default_factory=list)


def _claims_schema(evidence_by_label: dict[str, list[str]], max_items: int, min_items: int = 0) -> dict | None:
    """An array of claims where each label can only cite the user's items that carry that label, so a
    mislabelled claim ("The Lion King" as Action) cannot be generated at all. None when nothing qualifies."""
    choices = [
        {
            "type": "object",
            "properties": {
                "label": {"const": label},
                "evidence": {"type": "array", "minItems": 1, "maxItems": MAX_EVIDENCE, "items": {"enum": ids}},
            },
            "required": ["label", "evidence"],
        }
        for label, ids in evidence_by_label.items()
        if ids
    ]
    if not choices:
        return None
    return {
        "type": "array",
        "minItems": min(min_items, len(choices)),
        "maxItems": max_items,
        "items": {"anyOf": choices},
    }


def draft_schema(facts: UserFacts) -> dict:
    """A JSON schema that only admits the user's own labels, each with its own items, and the phrases
    they wrote, each with the items they wrote it about in that stance; lengths bounded."""
    # What other reviewers wrote about an item is no claim about this person: mined item aspects enter
    # only as phrases the user wrote themselves (below).
    liked = {
        a.label: [i for i in a.item_ids if facts.item_ratings.get(i, 5.0) > DISLIKED_MAX]
        for a in facts.top_attributes
        if a.label not in facts.mined_labels
    }
    allowed = dislikable_labels(facts) - set(facts.mined_labels)
    disliked: dict[str, list[str]] = {}
    for item in facts.disliked:
        for label in item.labels:
            if label in allowed:
                disliked.setdefault(label, []).append(item.item_id)
    for aspect in facts.aspects:
        claims = liked if aspect.stance == "praised" else disliked
        claims.setdefault(aspect.phrase, aspect.item_ids[:MAX_EVIDENCE_CHOICES])
    # A claim list with no admissible choice is left out of the schema: llama.cpp's grammar does not
    # honour an empty array bound and would let the model write free-form objects there.
    properties = {
        name: schema
        for name, schema in (
            ("interests", _claims_schema(liked, MAX_INTERESTS, min_items=3)),
            ("dislikes", _claims_schema(disliked, MAX_DISLIKES)),
        )
        if schema is not None
    }
    return {"type": "object", "properties": properties, "required": list(properties)}


def dislikable_labels(facts: UserFacts) -> set[str]:
    """Labels the user rates clearly below their own mean: only these may be claimed as dislikes, so one
    bad film never makes a generally well-rated genre a "dislike"."""
    if facts.rating_mean is None:
        return set()
    totals: dict[str, list[float]] = {}
    for item_id, rating in facts.item_ratings.items():
        for label in facts.item_labels.get(item_id, []):
            totals.setdefault(label, []).append(rating)
    return {label for label, rs in totals.items() if sum(rs) / len(rs) <= facts.rating_mean - DISLIKE_MARGIN}


# A free summary may not contain JSON or markup characters and must start like a description: this
# stops a model from echoing the schema or an injected instruction back as the "summary".
FREE_SUMMARY_PATTERN = '^(Enjoys|Loves|Likes|Prefers|Watches|Reads|Buys) [^{}<>\\[\\]"]{20,260}$'


_PATTERN_SAFE = re.compile(r"[\w .,:;'!&/()-]+")


def _literal(text: str) -> str:
    return text.replace(".", "[.]").replace("(", "\\(").replace(")", "\\)")


def one_of(options: list[str]) -> str:
    """A regex alternation of literal options, or "" when none is usable.

    llama.cpp's pattern converter mishandles some escapes (it copies "\\." into the grammar, which
    then fails to parse and crashes the process), so options are limited to characters it handles,
    with "." written as "[.]" and parentheses escaped; other options are left out.
    """
    safe = [_literal(o) for o in options if _PATTERN_SAFE.fullmatch(o)]
    return "(" + "|".join(safe) + ")" if safe else ""


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
        likes = "(" + "|".join(clauses) + ")"
        pattern = f"^(Enjoys|Loves|Likes|Prefers) {likes}(, and {likes})?[.]"
        if dislikes := one_of([d.label for d in profile.dislikes]):
            pattern += f"( (Rates|Is less keen on) {dislikes}( and {dislikes})? (low|lower)[.])?"
        if phrases := one_of([v.split(" (")[0] for k, v in facts.context.items() if k in ("rating_style", "era")]):
            pattern += f"( (A|Tends to be a|Favours) {phrases}[.])?"
        pattern += "$"
    return string_schema("summary", pattern)


class SummaryDraft(BaseModel):
    summary: str


def profile_messages(facts: UserFacts, prompts_dir=None) -> list[dict[str, str]]:
    return chat("profile_system.j2", PROMPT_NAME, prompts_dir, facts=facts, max_interests=MAX_INTERESTS)


# Each step keeps the facts' most telling part: snippets go first, then the long tails of each list.
# Recent-shift and context lines are never dropped, so the most recent behaviour always reaches the model.
CONDENSE_STEPS = (
    {"snippets": 4},
    {"snippets": 0},
    {"loved": 5, "disliked": 5},
    {"top_attributes": 8, "evidence_per_label": 3},
    {"loved": 3, "disliked": 2, "top_attributes": 5, "evidence_per_label": 2},
)
MESSAGE_OVERHEAD_TOKENS = 16


def prompt_tokens(backend: LLMBackend, messages: list[dict[str, str]]) -> int:
    """Tokens the messages take: the backend's own tokenizer where it has one, else 1 token per 3 characters
    (an overestimate for English, so the budget errs on the safe side)."""
    count = getattr(backend, "count_tokens", None) or (lambda text: len(text) // 3 + 1)
    return sum(count(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def condensed(facts: UserFacts, step: dict[str, int]) -> UserFacts:
    per_label = step.get("evidence_per_label")
    attributes = facts.top_attributes[: step.get("top_attributes", len(facts.top_attributes))]
    if per_label is not None:
        attributes = [a.model_copy(update={"item_ids": a.item_ids[:per_label]}) for a in attributes]
    return facts.model_copy(
        update={
            "snippets": facts.snippets[: step.get("snippets", len(facts.snippets))],
            "loved": facts.loved[: step.get("loved", len(facts.loved))],
            "disliked": facts.disliked[: step.get("disliked", len(facts.disliked))],
            "top_attributes": attributes,
        }
    )


def fit_to_context(
    facts: UserFacts, backend: LLMBackend, reply_tokens: int, prompts_dir=None
) -> tuple[UserFacts, list[dict[str, str]], int]:
    """The facts and profile messages that fit the backend's context window with room for the reply,
    condensing the facts step by step when they do not; returns how many steps were needed.

    Raises:
        LLMError: even the most condensed facts do not fit (a context window far too small).
    """
    n_ctx = getattr(backend, "n_ctx", None)
    messages = profile_messages(facts, prompts_dir)
    if not n_ctx:
        return facts, messages, 0
    budget = n_ctx - reply_tokens
    steps = {}
    for level in range(len(CONDENSE_STEPS) + 1):
        if level:
            steps.update(CONDENSE_STEPS[level - 1])
            facts_now = condensed(facts, steps)
            messages = profile_messages(facts_now, prompts_dir)
        else:
            facts_now = facts
        if prompt_tokens(backend, messages) <= budget:
            return facts_now, messages, level
    raise LLMError(
        f"the profile prompt for user {facts.user_id!r} needs {prompt_tokens(backend, messages)} tokens even "
        f"condensed, over the model's context of {n_ctx} minus {reply_tokens} for the reply",
        hint="use a model with a larger context (n_ctx setting)",
    )


@dataclass
class Update:
    """An incremental update: the previous version and the facts of the events that arrived since."""

    previous: UserProfile
    new_facts: UserFacts


def update_messages(facts: UserFacts, update: Update, prompts_dir=None) -> list[dict[str, str]]:
    return chat(
        "profile_system.j2",
        UPDATE_PROMPT_NAME,
        prompts_dir,
        previous=update.previous,
        new=update.new_facts,
        shift=facts.context.get("recent_shift", ""),
        max_interests=MAX_INTERESTS,
    )


def _as_claims(claims: list[Interest] | list[Dislike]) -> list[DraftClaim]:
    return [DraftClaim(label=c.label, evidence=c.evidence) for c in claims]


def build_profile(
    facts: UserFacts,
    backend: LLMBackend,
    *,
    vocabulary: set[str] = frozenset(),
    prompts_dir=None,
    temperature: float = 0.0,
    verify: bool = True,
    update: Update | None = None,
) -> UserProfile:
    """Ask the model for claims, verify them, then ask it to summarise the verified claims.

    Args:
        facts: the user's facts (all their events).
        backend: any LLM backend.
        vocabulary: every label in the catalogue; a summary naming one the user never touched is replaced.
        verify: False keeps every claim and the summary as the model wrote them (the evaluation's
            `tasteprint-noverify` ablation); never use it for real profiles.
        update: build the next version from the previous one and the new events' facts (the update
            prompt) instead of from all facts: the previous claims are re-verified against today's facts
            and re-weighted, the model proposes claims from the new items only, and the top interests
            by (time-decayed) weight are kept.

    Raises:
        StructuredOutputError: the model never produced a valid draft.
    """
    if update is None:
        shown, messages, condense_level = fit_to_context(facts, backend, CLAIMS_MAX_TOKENS, prompts_dir)
        schema = draft_schema(shown)
    else:
        messages, condense_level = update_messages(facts, update, prompts_dir), 0
        schema = draft_schema(update.new_facts)
    calls = []
    draft = ProfileDraft()
    if schema["properties"]:
        claims = generate(
            backend, messages, ProfileDraft, schema=schema, max_tokens=CLAIMS_MAX_TOKENS, temperature=temperature
        )
        calls.append(claims)
        draft = claims.value
    if update is not None:
        draft = ProfileDraft(
            interests=_as_claims(update.previous.interests) + draft.interests,
            dislikes=_as_claims(update.previous.dislikes) + draft.dislikes,
        )
    profile = verify_claims(facts, draft, strict=verify)
    if verify:
        repair_omissions(facts, profile)
        cover_platforms(facts, profile)
    if condense_level:
        profile.verification.reasons.append(f"facts condensed {condense_level} step(s) to fit the context window")
    if update is not None:
        kept = [i for i in profile.interests if i.weight >= FADED_WEIGHT][:MAX_INTERESTS]
        for cut in profile.interests:
            if cut not in kept:
                why = "faded with time" if cut.weight < FADED_WEIGHT else "outweighed by recent interests"
                profile.verification.reasons.append(f"interest {cut.label!r}: dropped, {why}")
        profile.interests = kept
        profile.verification.interests_kept = len(profile.interests)
        profile.prompt, profile.based_on = UPDATE_PROMPT_NAME, update.previous.version
    messages = summary_messages(facts, profile, prompts_dir)
    try:
        schema = summary_schema(facts, profile, confined=backend.enforces_schema)
        summary = generate(backend, messages, SummaryDraft, schema=schema, max_tokens=160, temperature=temperature)
        calls.append(summary)
        if verify:
            profile = check_summary(
                facts, profile, summary.value.summary, vocabulary, source_text=messages[-1]["content"]
            )
        else:
            profile = profile.model_copy(update={"summary": summary.value.summary[:400]})
    except StructuredOutputError as exc:
        profile = check_summary(facts, profile, "", vocabulary, problem=f"no valid summary: {exc.message}")
    return profile.model_copy(
        update={
            "model": backend.model_name,
            "prompt_tokens": sum(c.prompt_tokens for c in calls),
            "completion_tokens": sum(c.completion_tokens for c in calls),
            "seconds": round(sum(c.seconds for c in calls), 3),
        }
    )


def summary_messages(facts: UserFacts, profile: UserProfile, prompts_dir=None) -> list[dict[str, str]]:
    def named(evidence: list[str]) -> list[str]:
        return [facts.item_titles.get(i, i) for i in evidence[:2]]

    return chat(
        "profile_system.j2",
        "profile_summary.j2",
        prompts_dir,
        interests=[{"label": i.label, "titles": named(i.evidence)} for i in profile.interests],
        dislikes=[{"label": d.label, "titles": named(d.evidence)} for d in profile.dislikes],
        context={k: v for k, v in facts.context.items() if k != "activity"},
    )


def cover_platforms(facts: UserFacts, profile: UserProfile) -> None:
    """For a person merged across platforms, make sure each platform's taste shows: a platform no verified
    interest cites gets its best liked label as an interest, computed from the data (and logged)."""
    weights = label_weights(facts)
    for platform in facts.platforms:
        if len(facts.platforms) < 2 or any(platform in i.platforms for i in profile.interests):
            continue
        for attribute in facts.top_attributes:
            evidence = [
                i
                for i in attribute.item_ids
                if facts.item_platforms.get(i) == platform and facts.item_ratings.get(i, 5.0) > DISLIKED_MAX
            ][:MAX_EVIDENCE]
            if evidence and all(attribute.label != i.label for i in profile.interests):
                profile.interests.append(
                    Interest(
                        label=attribute.label,
                        weight=weights.get(attribute.label, 0.0),
                        evidence=evidence,
                        platforms=[platform],
                    )
                )
                profile.verification.reasons.append(
                    f"interest {attribute.label!r}: added from data, no claim covered platform {platform!r}"
                )
                profile.verification.interests_proposed += 1
                break
    profile.verification.interests_kept = len(profile.interests)


def recency(facts: UserFacts, item_id: str) -> float:
    """How much an item counts, halving every HALF_LIFE_DAYS before the user's latest event."""
    age_days = (facts.last_timestamp - facts.item_timestamps.get(item_id, facts.last_timestamp)) / 86400
    return 0.5 ** (max(age_days, 0.0) / HALF_LIFE_DAYS)


def label_weights(facts: UserFacts) -> dict[str, float]:
    """Weight of each label in 0..1: its time-decayed item count relative to the user's top label, scaled
    by its mean rating out of 5 where the user rated. Recent items count more (`recency`)."""
    counts: Counter[str] = Counter()
    members: dict[str, list[str]] = {}
    for item_id, labels in facts.item_labels.items():
        for label in labels:
            members.setdefault(label, []).append(item_id)
    for aspect in facts.aspects:  # a phrase they wrote about several items weighs like a label on them
        members.setdefault(aspect.phrase, aspect.item_ids)
    for label, item_ids in members.items():
        counts[label] = sum(recency(facts, i) for i in item_ids)
    if not counts:
        return {}
    top = max(counts.values())
    weights = {}
    for label, count in counts.items():
        rated = [facts.item_ratings[i] for i in members[label] if i in facts.item_ratings]
        quality = min(1.0, sum(rated) / len(rated) / 5) if rated else 1.0
        weights[label] = round(count / top * quality, 3)
    return weights


def verify_claims(facts: UserFacts, draft: ProfileDraft, strict: bool = True) -> UserProfile:
    """Keep only claims the facts support; count what was dropped and why. The summary is added later.

    `strict=False` keeps every claim as drafted (ids outside the history excepted), for the ablation."""
    stats = VerificationStats(interests_proposed=len(draft.interests), dislikes_proposed=len(draft.dislikes))
    history = set(facts.history_item_ids)
    weights = label_weights(facts)
    quotes: dict[tuple[str, str], str] = {}  # (kind, label) -> the clause that supports an aspect claim
    phrases = {a.phrase for a in facts.aspects}

    def supported(claim: DraftClaim, kind: str, rating_ok) -> list[str]:
        kept = []
        for item_id in dict.fromkeys(claim.evidence):
            stats.evidence_proposed += 1
            sign = 1 if kind == "interest" else -1
            quote = said(facts, claim.label, item_id, sign) if claim.label in phrases else None
            if item_id not in history:
                reason = f"{item_id} is not in the user's history"
            elif not strict:
                kept.append(item_id)
                continue
            elif quote is not None:
                quotes.setdefault((kind, claim.label), quote)
                kept.append(item_id)
                continue
            elif claim.label not in facts.item_labels.get(item_id, []):
                reason = f"{item_id} does not carry {claim.label!r} and their text on it does not say it that way"
            elif not rating_ok(facts.item_ratings.get(item_id)):
                reason = f"{item_id} was rated {facts.item_ratings.get(item_id)}"
            else:
                kept.append(item_id)
                continue
            stats.evidence_dropped += 1
            stats.reasons.append(f"{kind} {claim.label!r}: evidence {reason}")
        return kept

    stats.aspects_proposed = sum(c.label in phrases for c in draft.interests + draft.dislikes)

    interests: list[Interest] = []
    for claim in draft.interests:
        if any(i.label == claim.label for i in interests):
            stats.reasons.append(f"interest {claim.label!r}: duplicate")
            continue
        evidence = supported(claim, "interest", lambda r: r is None or r > DISLIKED_MAX)
        if evidence:
            platforms = sorted({facts.item_platforms[i] for i in evidence})
            interests.append(
                Interest(
                    label=claim.label,
                    weight=weights.get(claim.label, 0.0),
                    evidence=evidence,
                    platforms=platforms,
                    quote=quotes.get(("interest", claim.label)),
                )
            )
        else:
            stats.reasons.append(f"interest {claim.label!r}: dropped, no supporting evidence")
    interests.sort(key=lambda i: -i.weight)

    dislikes: list[Dislike] = []
    dislikable = dislikable_labels(facts) if strict else {d.label for d in draft.dislikes}
    for claim in draft.dislikes:
        if any(d.label == claim.label for d in dislikes):
            stats.reasons.append(f"dislike {claim.label!r}: duplicate")
            continue
        evidence = supported(claim, "dislike", lambda r: r is not None and r <= DISLIKED_MAX)
        quote = quotes.get(("dislike", claim.label))
        if quote is not None and evidence:  # criticised in their own words: the text is the evidence
            dislikes.append(Dislike(label=claim.label, evidence=evidence, quote=quote))
        elif claim.label not in dislikable:
            stats.reasons.append(f"dislike {claim.label!r}: dropped, not rated clearly below the user's mean")
        elif any(i.label == claim.label for i in interests):
            stats.reasons.append(f"dislike {claim.label!r}: dropped, conflicts with a verified interest")
        elif evidence:
            dislikes.append(Dislike(label=claim.label, evidence=evidence))
        else:
            stats.reasons.append(f"dislike {claim.label!r}: dropped, no supporting evidence")
    stats.interests_kept, stats.dislikes_kept = len(interests), len(dislikes)
    stats.aspects_kept = sum(c.quote is not None for c in interests + dislikes)

    return UserProfile(
        user_id=facts.user_id,
        summary="",
        interests=interests,
        dislikes=dislikes,
        context=facts.context,
        sources=facts.platforms,
        model="",
        prompt=PROMPT_NAME,
        verification=stats,
    )


def said(facts: UserFacts, phrase: str, item_id: str, sign: int) -> str | None:
    """The clause in which the user wrote `phrase` (or its lemma form) about the item with the stated
    stance (+1 praise, -1 complaint), or None. Read from their own text, not from the mined aspects,
    so a claim stands or falls on what they wrote."""
    target = lemma_form(phrase)
    if not target:
        return None
    for text in facts.item_texts.get(item_id, []):
        for clause in clauses(text):
            if not contains(lemma_form(clause), target):
                continue
            mention = Mention(target, clause, polarity(clause))
            if stance(mention, facts.item_ratings.get(item_id), facts.rating_mean) == sign:
                return excerpt(clause, target)
    return None


def repair_omissions(facts: UserFacts, profile: UserProfile) -> None:
    """A label on DOMINANT_SHARE or more of the history that no claim names is an omission: added as an
    interest from data when the user rates it at least at their own mean and there is room (else it
    stays in the context's `mostly` line, which names every dominant label). Counted and logged."""
    interests, stats, weights = profile.interests, profile.verification, label_weights(facts)
    named = {c.label for c in profile.interests + profile.dislikes}
    for attribute in facts.dominant:
        if attribute.label in named or attribute.label in facts.mined_labels:
            continue
        mean = facts.rating_mean
        liked_enough = attribute.mean_rating is None or mean is None or attribute.mean_rating >= mean - 0.25
        evidence = [i for i in attribute.item_ids if facts.item_ratings.get(i, 5.0) > DISLIKED_MAX][:MAX_EVIDENCE]
        if liked_enough and evidence and len(interests) < MAX_INTERESTS:
            interests.append(
                Interest(
                    label=attribute.label,
                    weight=weights.get(attribute.label, 0.0),
                    evidence=evidence,
                    platforms=sorted({facts.item_platforms[i] for i in evidence}),
                )
            )
            stats.omissions_repaired += 1
            stats.interests_proposed += 1
            stats.reasons.append(
                f"interest {attribute.label!r}: added from data, on {attribute.share:.0%} of the history, unclaimed"
            )
        else:
            why = "rated below their mean" if not liked_enough or not evidence else f"{MAX_INTERESTS} interests already"
            stats.reasons.append(f"{attribute.label!r}: on {attribute.share:.0%} of the history, {why}: context only")
    interests.sort(key=lambda i: -i.weight)
    stats.interests_kept = len(interests)


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


REWEIGHT_MIN = 0.05


def profile_diff(old: UserProfile, new: UserProfile) -> ProfileDiff:
    """Interests added, dropped and re-weighted (by at least REWEIGHT_MIN), dislikes added and dropped."""
    before = {i.label: i.weight for i in old.interests}
    after = {i.label: i.weight for i in new.interests}
    old_dislikes = {d.label for d in old.dislikes}
    new_dislikes = {d.label for d in new.dislikes}
    return ProfileDiff(
        user_id=new.user_id,
        old_version=old.version,
        new_version=new.version,
        added=[label for label in after if label not in before],
        dropped=[label for label in before if label not in after],
        reweighted={
            label: (before[label], weight)
            for label, weight in after.items()
            if label in before and abs(weight - before[label]) >= REWEIGHT_MIN
        },
        dislikes_added=sorted(new_dislikes - old_dislikes),
        dislikes_dropped=sorted(old_dislikes - new_dislikes),
        summary_changed=old.summary != new.summary,
        new_events=max(new.n_events - old.n_events, 0),
    )
