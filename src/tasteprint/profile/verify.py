"""Claim verification: a drafted claim stands only on the user's own data.

A catalogue label must be carried by each evidence item (liked items for interests, items rated low
for dislikes, on labels the user rates clearly below their mean); a phrase from the user's own
reviews must occur, in lemma form, in what they wrote about each evidence item, with the stance the
claim states. What verification drops is counted and its reason kept; interest weights come from
the data. Dominant labels the model left out, and platforms no claim covers, are added from data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pydantic import BaseModel, Field

from tasteprint.ingest.aspects import Mention, clauses, contains, excerpt, lemma_form, own_verdict, polarity, stance
from tasteprint.models import Dislike, Interest, UserFacts, UserProfile, VerificationStats

from .facts import DISLIKED_MAX, rating_allows

MAX_INTERESTS = 5
MIN_OWN_WORDS = 2  # interests in their own words, for a person whose reviews praise that many things
MAX_EVIDENCE = 3
DISLIKE_MARGIN = 0.5
HALF_LIFE_DAYS = 365


class DraftClaim(BaseModel):
    label: str
    evidence: list[str] = Field(default_factory=list)


class ProfileDraft(BaseModel):
    """What the model is asked for. Shape only; whether each claim is true is checked afterwards."""

    interests: list[DraftClaim] = Field(default_factory=list)
    dislikes: list[DraftClaim] = Field(default_factory=list)


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
    checker = _ClaimChecker(facts, strict)
    checker.stats.interests_proposed, checker.stats.dislikes_proposed = len(draft.interests), len(draft.dislikes)
    checker.stats.aspects_proposed = sum(c.label in checker.phrases for c in draft.interests + draft.dislikes)
    interests = checker.interests(draft.interests)
    dislikes = checker.dislikes(draft.dislikes, interests)
    checker.stats.interests_kept, checker.stats.dislikes_kept = len(interests), len(dislikes)
    checker.stats.aspects_kept = sum(c.quote is not None for c in interests + dislikes)
    return UserProfile(
        user_id=facts.user_id,
        summary="",
        interests=interests,
        dislikes=dislikes,
        context=facts.context,
        sources=facts.platforms,
        model="",
        prompt="",
        verification=checker.stats,
    )


def _liked(rating: float | None) -> bool:
    return rating is None or rating > DISLIKED_MAX


def _disliked(rating: float | None) -> bool:
    return rating is not None and rating <= DISLIKED_MAX


class _ClaimChecker:
    """Checks one draft's claims against one user's facts, recording every drop in `stats`."""

    def __init__(self, facts: UserFacts, strict: bool) -> None:
        self.facts, self.strict = facts, strict
        self.stats = VerificationStats()
        self.history = set(facts.history_item_ids)
        self.phrases = {a.phrase for a in facts.aspects}
        self.quotes: dict[tuple[str, str], str] = {}  # (kind, label) -> the clause that supports an aspect claim

    def evidence(self, claim: DraftClaim, kind: str, rating_ok: Callable[[float | None], bool]) -> list[str]:
        """The claim's evidence items that stand; each dropped one is counted with its reason."""
        kept = []
        for item_id in dict.fromkeys(claim.evidence):
            self.stats.evidence_proposed += 1
            reason = self._rejection(claim.label, item_id, kind, rating_ok)
            if reason is None:
                kept.append(item_id)
            else:
                self.stats.evidence_dropped += 1
                self.stats.reasons.append(f"{kind} {claim.label!r}: evidence {reason}")
        return kept

    def _rejection(self, label: str, item_id: str, kind: str, rating_ok: Callable[[float | None], bool]) -> str | None:
        facts = self.facts
        if item_id not in self.history:
            return f"{item_id} is not in the user's history"
        if not self.strict:
            return None
        quote = said(facts, label, item_id, 1 if kind == "interest" else -1) if label in self.phrases else None
        if quote is not None:
            self.quotes.setdefault((kind, label), quote)
            return None
        if label not in facts.item_labels.get(item_id, []):
            return f"{item_id} does not carry {label!r} and their text on it does not say it that way"
        if not rating_ok(facts.item_ratings.get(item_id)):
            return f"{item_id} was rated {facts.item_ratings.get(item_id)}"
        return None

    def _repeats(self, claim: DraftClaim, kind: str, kept: list[Interest] | list[Dislike]) -> bool:
        """Whether a claim on this label was already kept (then it is logged as a duplicate)."""
        if any(c.label == claim.label for c in kept):
            self.stats.reasons.append(f"{kind} {claim.label!r}: duplicate")
            return True
        return False

    def interests(self, claims: list[DraftClaim]) -> list[Interest]:
        weights = label_weights(self.facts)
        interests: list[Interest] = []
        for claim in claims:
            if self._repeats(claim, "interest", interests):
                continue
            evidence = self.evidence(claim, "interest", _liked)
            if not evidence:
                self.stats.reasons.append(f"interest {claim.label!r}: dropped, no supporting evidence")
                continue
            interests.append(
                Interest(
                    label=claim.label,
                    weight=weights.get(claim.label, 0.0),
                    evidence=evidence,
                    platforms=sorted({self.facts.item_platforms[i] for i in evidence}),
                    quote=self.quotes.get(("interest", claim.label)),
                )
            )
        return sorted(interests, key=lambda i: -i.weight)

    def dislikes(self, claims: list[DraftClaim], interests: list[Interest]) -> list[Dislike]:
        dislikable = dislikable_labels(self.facts) if self.strict else {c.label for c in claims}
        dislikes: list[Dislike] = []
        for claim in claims:
            if self._repeats(claim, "dislike", dislikes):
                continue
            evidence = self.evidence(claim, "dislike", _disliked)
            quote = self.quotes.get(("dislike", claim.label))
            if quote is not None and evidence:  # criticised in their own words: the text is the evidence
                dislikes.append(Dislike(label=claim.label, evidence=evidence, quote=quote))
            elif claim.label not in dislikable:
                self.stats.reasons.append(f"dislike {claim.label!r}: dropped, not rated clearly below the user's mean")
            elif any(i.label == claim.label for i in interests):
                self.stats.reasons.append(f"dislike {claim.label!r}: dropped, conflicts with a verified interest")
            elif evidence:
                dislikes.append(Dislike(label=claim.label, evidence=evidence))
            else:
                self.stats.reasons.append(f"dislike {claim.label!r}: dropped, no supporting evidence")
        return dislikes


def said(facts: UserFacts, phrase: str, item_id: str, sign: int) -> str | None:
    """The clause in which the user wrote `phrase` (or its lemma form) about the item with the stated
    stance (+1 praise, -1 complaint), or None. Read from their own text, not from the mined aspects,
    so a claim stands or falls on what they wrote; the clause must be their own verdict (no hedge, no
    reported speech), and their rating of the item must allow it (`facts.rating_allows`)."""
    target = lemma_form(phrase)
    if not target or not rating_allows(sign, facts.item_ratings.get(item_id), facts.rating_mean):
        return None
    for text in facts.item_texts.get(item_id, []):
        for clause in clauses(text):
            if not contains(lemma_form(clause), target) or not own_verdict(clause):
                continue
            mention = Mention(target, clause, polarity(clause))
            if stance(mention, facts.item_ratings.get(item_id), facts.rating_mean) == sign:
                return excerpt(clause, target)
    return None


def _room_for(interests: list[Interest], weight: float, kept: set[str], stats) -> bool:
    """Whether an omitted dominant label of `weight` can join the interests: there is room, or the
    lightest interest not in `kept` weighs less and makes way (logged)."""
    if len(interests) < MAX_INTERESTS:
        return True
    lightest = min((i for i in interests if i.label not in kept), key=lambda i: i.weight, default=None)
    if lightest is None or lightest.weight >= weight:
        return False
    interests.remove(lightest)
    stats.interests_proposed -= 1  # the repair takes its place: it was displaced, not found unsupported
    stats.reasons.append(f"interest {lightest.label!r}: made way for a dominant label the claims left out")
    return True


def repair_own_words(facts: UserFacts, profile: UserProfile) -> None:
    """A person who praised things in their own reviews gets at least MIN_OWN_WORDS interests in those
    words: when the model's verified claims fall short, the phrases they praised on the most items
    (each quote re-read from their text, with a rating that allows it) are added from data, logged."""
    weights = label_weights(facts)
    named = {c.label for c in profile.interests + profile.dislikes}
    for aspect in facts.aspects:
        if len(profile.interests) >= MIN_OWN_WORDS or len(profile.interests) >= MAX_INTERESTS:
            break
        if aspect.stance != "praised" or aspect.phrase in named:
            continue
        quoted = [(i, q) for i in aspect.item_ids if (q := said(facts, aspect.phrase, i, 1))][:MAX_EVIDENCE]
        if not quoted:
            continue
        profile.interests.append(
            Interest(
                label=aspect.phrase,
                weight=weights.get(aspect.phrase, 0.0),
                evidence=[i for i, _ in quoted],
                platforms=sorted({facts.item_platforms[i] for i, _ in quoted}),
                quote=quoted[0][1],
            )
        )
        profile.verification.omissions_repaired += 1
        profile.verification.interests_proposed += 1
        profile.verification.reasons.append(f"interest {aspect.phrase!r}: added from data, praised in their own words")
    profile.interests.sort(key=lambda i: -i.weight)
    profile.verification.interests_kept = len(profile.interests)
    profile.verification.aspects_kept = sum(c.quote is not None for c in profile.interests + profile.dislikes)


def repair_omissions(facts: UserFacts, profile: UserProfile) -> None:
    """A label on DOMINANT_SHARE or more of the history that no claim names is an omission: added as an
    interest from data when the user rates it at least at their own mean. When all MAX_INTERESTS places
    are taken it replaces the lightest interest that is neither dominant nor a phrase the user wrote, if
    that one weighs less; else it stays in the context's `mostly` line, which names every dominant
    label. Counted and logged."""
    interests, stats, weights = profile.interests, profile.verification, label_weights(facts)
    named = {c.label for c in profile.interests + profile.dislikes}
    # Dominant labels and phrases the user wrote never make way: a catalogue-wide category on every
    # item is dominant for everyone and must not push out what the person said in their own words.
    kept = {a.label for a in facts.dominant} | {a.phrase for a in facts.aspects}
    for attribute in facts.dominant:
        if attribute.label in named or attribute.label in facts.mined_labels:
            continue
        mean = facts.rating_mean
        liked_enough = attribute.mean_rating is None or mean is None or attribute.mean_rating >= mean - 0.25
        evidence = [i for i in attribute.item_ids if facts.item_ratings.get(i, 5.0) > DISLIKED_MAX][:MAX_EVIDENCE]
        weight = weights.get(attribute.label, 0.0)
        if liked_enough and evidence and _room_for(interests, weight, kept, stats):
            interests.append(
                Interest(
                    label=attribute.label,
                    weight=weight,
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
