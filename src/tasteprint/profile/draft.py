"""Facts -> LLM draft (confined by a grammar to what the data allows) -> verified UserProfile.

The model picks labels and evidence ids (and phrases the user wrote) from enums built from the
user's own facts, then writes a short summary of what survived verification (`verify.py`,
`summary.py`). Also: fitting the prompt to the context window, incremental updates, and the diff
between versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasteprint.errors import LLMError, StructuredOutputError
from tasteprint.llm import LLMBackend, LLMContext, Structured, generate
from tasteprint.llm.prompting import chat
from tasteprint.models import Dislike, Interest, ProfileDiff, UserFacts, UserProfile

from .facts import DISLIKED_MAX
from .summary import SUMMARY_MAX_TOKENS, SummaryDraft, check_summary, summary_messages, summary_schema
from .verify import (
    MAX_EVIDENCE,
    MAX_INTERESTS,
    DraftClaim,
    ProfileDraft,
    cover_platforms,
    dislikable_labels,
    repair_omissions,
    repair_own_words,
    verify_claims,
)

MAX_DISLIKES = 3
MAX_EVIDENCE_CHOICES = 6
PROMPT_NAME = "profile_user.j2"
UPDATE_PROMPT_NAME = "profile_update.j2"
CLAIMS_MAX_TOKENS = 400  # 300 truncated a real Amazon draft (5 interests + 2 dislikes with ASIN evidence)
# An update drops an interest whose time-decayed weight fell below this: the taste has moved on.
FADED_WEIGHT = 0.05


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


def profile_messages(facts: UserFacts, prompts_dir=None) -> list[dict[str, str]]:
    return chat("profile_system.j2", PROMPT_NAME, prompts_dir, facts=facts, max_interests=MAX_INTERESTS)


# What the draft prompt shows of the facts; verification still checks claims against all of them. A
# prompt's cost grows faster than its length (each token attends to all before it: on this project's 2
# cores SmolLM2-135M evaluates 900 tokens in 3.1 s and 1,800 in 8.7 s), so the draft shows the 8 most
# frequent labels (the "mostly" line names every label on 30% or more of the history), each with its 3
# best-rated items (as many as a claim may cite), 8 loved and 3 low-rated items.
DRAFT_SHOWN = {"loved": 8, "disliked": 3, "top_attributes": 8, "evidence_per_label": MAX_EVIDENCE}

# Each step keeps the facts' most telling part: snippets go first, then the long tails of each list.
# Recent-shift and context lines are never dropped, so the most recent behaviour always reaches the model.
CONDENSE_STEPS = (
    {"snippets": 4},
    {"snippets": 0},
    {"loved": 5, "disliked": 3},
    {"top_attributes": 6},
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
    steps = dict(DRAFT_SHOWN)
    shown = condensed(facts, steps)
    messages = profile_messages(shown, prompts_dir)
    if not n_ctx:
        return shown, messages, 0
    budget = n_ctx - reply_tokens
    for level in range(len(CONDENSE_STEPS) + 1):
        if level:
            steps.update(CONDENSE_STEPS[level - 1])
            shown = condensed(facts, steps)
            messages = profile_messages(shown, prompts_dir)
        if prompt_tokens(backend, messages) <= budget:
            return shown, messages, level
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
    llm: LLMContext,
    *,
    vocabulary: set[str] = frozenset(),
    verify: bool = True,
    update: Update | None = None,
) -> UserProfile:
    """Ask the model for claims, verify them, then ask it to summarise the verified claims.

    Args:
        facts: the user's facts (all their events).
        llm: the model, its prompt templates and temperature.
        vocabulary: every label in the catalogue; a summary naming one the user never touched is replaced.
        verify: False keeps every claim and the summary as the model wrote them (the evaluation's
            `tasteprint-noverify` ablation); never use it for real profiles.
        update: build the next version from the previous one and the new events' facts (the update
            prompt) instead of from all facts: the previous claims are re-verified against today's facts
            and re-weighted, the model proposes claims from the new items only, and the top interests
            by (time-decayed) weight are kept.

    Returns:
        The verified profile, with the model's name and the calls' token counts and seconds.

    Raises:
        StructuredOutputError: the model never produced a valid draft.
    """
    calls: list[Structured] = []
    draft, condense_level = _draft_claims(facts, llm, update, calls)
    profile = verify_claims(facts, draft, strict=verify)
    profile.prompt = PROMPT_NAME
    if verify:
        repair_omissions(facts, profile)
        repair_own_words(facts, profile)
        cover_platforms(facts, profile)
    if condense_level:
        profile.verification.reasons.append(f"facts condensed {condense_level} step(s) to fit the context window")
    if update is not None:
        _keep_strongest(profile, update)
    profile = _summarise(facts, profile, llm, vocabulary, verify, calls)
    return profile.model_copy(
        update={
            "model": llm.backend.model_name,
            "prompt_tokens": sum(c.prompt_tokens for c in calls),
            "completion_tokens": sum(c.completion_tokens for c in calls),
            "seconds": round(sum(c.seconds for c in calls), 3),
        }
    )


def _draft_claims(
    facts: UserFacts, llm: LLMContext, update: Update | None, calls: list[Structured]
) -> tuple[ProfileDraft, int]:
    """The model's claims (with an update: the previous claims followed by new ones from the new items
    only), and how many steps the facts were condensed to fit the context window."""
    if update is None:
        shown, messages, condense_level = fit_to_context(facts, llm.backend, CLAIMS_MAX_TOKENS, llm.prompts_dir)
        schema = draft_schema(shown)
    else:
        messages, condense_level = update_messages(facts, update, llm.prompts_dir), 0
        schema = draft_schema(update.new_facts)
    draft = ProfileDraft()
    if schema["properties"]:
        claims = generate(
            llm.backend,
            messages,
            ProfileDraft,
            schema=schema,
            max_tokens=CLAIMS_MAX_TOKENS,
            temperature=llm.temperature,
        )
        calls.append(claims)
        draft = claims.value
    if update is not None:
        draft = ProfileDraft(
            interests=_as_claims(update.previous.interests) + draft.interests,
            dislikes=_as_claims(update.previous.dislikes) + draft.dislikes,
        )
    return draft, condense_level


def _keep_strongest(profile: UserProfile, update: Update) -> None:
    """Keep an updated profile's strongest interests that have not faded, saying why each other went."""
    kept = [i for i in profile.interests if i.weight >= FADED_WEIGHT][:MAX_INTERESTS]
    for cut in profile.interests:
        if cut not in kept:
            why = "faded with time" if cut.weight < FADED_WEIGHT else "outweighed by recent interests"
            profile.verification.reasons.append(f"interest {cut.label!r}: dropped, {why}")
    profile.interests = kept
    profile.verification.interests_kept = len(profile.interests)
    profile.prompt, profile.based_on = UPDATE_PROMPT_NAME, update.previous.version


def _summarise(
    facts: UserFacts,
    profile: UserProfile,
    llm: LLMContext,
    vocabulary: set[str],
    verify: bool,
    calls: list[Structured],
) -> UserProfile:
    """The profile with the model's summary of its verified claims, checked (or the summary written
    from data when the model's fails the checks or never comes)."""
    confined = llm.backend.enforces_schema
    messages = summary_messages(facts, profile, llm.prompts_dir, confined=confined)
    try:
        schema = summary_schema(facts, profile, confined=confined)
        summary = generate(
            llm.backend,
            messages,
            SummaryDraft,
            schema=schema,
            max_tokens=SUMMARY_MAX_TOKENS,
            temperature=llm.temperature,
        )
    except StructuredOutputError as exc:
        return check_summary(facts, profile, "", vocabulary, problem=f"no valid summary: {exc.message}")
    calls.append(summary)
    if verify:
        return check_summary(facts, profile, summary.value.summary, vocabulary, source_text=messages[-1]["content"])
    return profile.model_copy(update={"summary": summary.value.summary[:400]})


REWEIGHT_MIN = 0.05


def profile_diff(old: UserProfile, new: UserProfile) -> ProfileDiff:
    """Interests added, dropped and re-weighted (by at least REWEIGHT_MIN), dislikes and edits added and
    dropped."""
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
        edits_added=[e.describe() for e in new.edits if e not in old.edits],
        edits_removed=[e.describe() for e in old.edits if e not in new.edits],
    )
