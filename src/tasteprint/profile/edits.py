"""What a person states about their profile: edits that outlive every rebuild.

An edit names a catalogue label (`not_interested`, `more`), an item (`never`, `liked`) or keeps a
note. `apply_edits` folds a request into the stored list (a later statement on the same label or item
replaces an earlier one; `undo` removes it). `obey_edits` makes a drafted profile agree with them: a
claim that contradicts what the person said is dropped, with the reason logged. Recommendations obey
them in `recommend.steering`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping

from pydantic import BaseModel, Field

from tasteprint.errors import TasteprintError
from tasteprint.models import ProfileEdit, UserFacts, UserProfile, VerificationStats, utcnow

from .stated import StatedReading, title_names
from .summary import fallback_summary


class EditRequest(BaseModel):
    """One `tasteprint edit` call: labels and items (ids or exact titles) as the person named them."""

    not_interested: list[str] = Field(default_factory=list)
    more: list[str] = Field(default_factory=list)
    never: list[str] = Field(default_factory=list)
    liked: list[str] = Field(default_factory=list)
    undo: list[str] = Field(default_factory=list)
    says: str | None = Field(default=None, max_length=2000)


class UnknownNameError(TasteprintError):
    """A label or item the catalogue does not have; the hint names the nearest ones that exist."""


def resolve_label(name: str, labels: Collection[str]) -> str:
    """The catalogue label `name` names (exactly, or differing only in case).

    Raises:
        UnknownNameError: no such label; the hint lists the nearest ones."""
    if name in labels:
        return name
    folded = {label.casefold(): label for label in labels}
    if name.casefold() in folded:
        return folded[name.casefold()]
    near = difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
    hint = "nearest labels: " + ", ".join(folded[n] for n in near) if near else "`tasteprint profile USER` shows labels"
    raise UnknownNameError(f"unknown label {name!r}", hint=hint)


def resolve_item(name: str, titles: Mapping[str, str]) -> str:
    """The item `name` names: an item id, or a title (case aside, with or without its year) that
    matches exactly one item.

    Raises:
        UnknownNameError: no item, or a title several items share; the hint names candidates."""
    if name in titles:
        return name
    wanted = name.strip().casefold()
    names = {item_id: title_names(title) for item_id, title in titles.items()}
    matches = sorted(i for i, forms in names.items() if wanted in forms or wanted == titles[i].casefold())
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(f"{titles[i]} [{i}]" for i in matches[:5])
        raise UnknownNameError(f"{name!r} matches {len(matches)} items", hint=f"name one by id: {shown}")
    by_name = {forms[-1]: i for i, forms in names.items()}
    near = difflib.get_close_matches(wanted, list(by_name), n=3, cutoff=0.6)
    hint = "nearest items: " + ", ".join(f"{titles[by_name[n]]} [{by_name[n]}]" for n in near) if near else None
    raise UnknownNameError(f"unknown item {name!r}", hint=hint or "give an item id or an exact title")


def apply_edits(current: list[ProfileEdit], statements: list[ProfileEdit], undo: Collection[str]) -> list[ProfileEdit]:
    """The stored edits after `statements` (newest wins on the same label or item: "more" replaces
    "not interested", "liked" replaces "never", and the reverse) and `undo` (labels or item ids whose
    edits are removed)."""
    edits = [e for e in current if e.target not in undo]
    for statement in statements:
        if statement.kind != "note":
            edits = [e for e in edits if e.target != statement.target or e.kind == "note"]
        edits.append(statement)
    return edits


def statements(request: EditRequest, labels: Collection[str], titles: Mapping[str, str]) -> list[ProfileEdit]:
    """The request's label and item statements, each resolved against the catalogue (all of them are
    checked before anything is stored, so a bad name changes nothing)."""
    now = utcnow()
    made = [ProfileEdit(kind="not_interested", label=resolve_label(n, labels), at=now) for n in request.not_interested]
    made += [ProfileEdit(kind="more", label=resolve_label(n, labels), at=now) for n in request.more]
    made += [ProfileEdit(kind="never", item_id=resolve_item(n, titles), at=now) for n in request.never]
    made += [ProfileEdit(kind="liked", item_id=resolve_item(n, titles), at=now) for n in request.liked]
    return made


def reading_edits(reading: StatedReading) -> list[ProfileEdit]:
    """The edits a statement's reading makes: liked labels as `more`, disliked ones as `not_interested`,
    liked titles as `liked`."""
    now = utcnow()
    made = [ProfileEdit(kind="more", label=label, at=now) for label in reading.liked_labels]
    made += [ProfileEdit(kind="not_interested", label=label, at=now) for label in reading.disliked_labels]
    return made + [ProfileEdit(kind="liked", item_id=item_id, at=now) for item_id in reading.liked_items]


def resolve_undo(names: list[str], current: list[ProfileEdit], titles: Mapping[str, str]) -> set[str]:
    """The labels or item ids `names` undo: each must name one of the user's edits."""
    targets = {e.target for e in current if e.kind != "note"}
    resolved = set()
    for name in names:
        if name in targets:
            resolved.add(name)
            continue
        folded = {t.casefold(): t for t in targets}
        if name.casefold() in folded:
            resolved.add(folded[name.casefold()])
            continue
        try:
            item_id = resolve_item(name, titles)
        except UnknownNameError:
            item_id = None
        if item_id in targets:
            resolved.add(item_id)
            continue
        shown = ", ".join(sorted(targets)) or "none"
        raise UnknownNameError(f"no edit on {name!r} to undo", hint=f"this user's edits name: {shown}")
    return resolved


def stated_profile(user_id: str) -> UserProfile:
    """The profile of a person known only by what they stated: no history, so no claims yet."""
    return UserProfile(
        user_id=user_id,
        summary="Known only from what they stated; recommendations follow their edits until history arrives.",
        interests=[],
        dislikes=[],
        context={},
        sources=[],
        model="",
        prompt="edits",
        verification=VerificationStats(),
    )


def obey_edits(profile: UserProfile, edits: list[ProfileEdit], facts: UserFacts) -> UserProfile:
    """`profile` without the claims the user's edits contradict: an interest in a label they are not
    interested in, a dislike of a label they want more of. Each drop is logged in its verification; a
    summary that names an unwanted label is replaced by the one written from data."""
    unwanted = {e.label for e in edits if e.kind == "not_interested"}
    wanted = {e.label for e in edits if e.kind == "more"}
    stats = profile.verification.model_copy(deep=True)
    interests = [i for i in profile.interests if i.label not in unwanted]
    dislikes = [d for d in profile.dislikes if d.label not in wanted]
    for label in sorted({i.label for i in profile.interests} & unwanted):
        stats.reasons.append(f"interest {label!r}: dropped, the user said they are not interested")
    for label in sorted({d.label for d in profile.dislikes} & wanted):
        stats.reasons.append(f"dislike {label!r}: dropped, the user asked for more of it")
    stats.interests_kept, stats.dislikes_kept = len(interests), len(dislikes)
    summary = profile.summary
    if any(re.search(rf"(?<!\w){re.escape(label.casefold())}(?!\w)", summary.casefold()) for label in unwanted):
        kept = [a for a in facts.top_attributes if a.label not in unwanted]
        summary = fallback_summary(facts.model_copy(update={"top_attributes": kept}), interests)
        stats.summary_replaced = True
        stats.reasons.append("summary: replaced, it named a label the user is not interested in")
    update = {"interests": interests, "dislikes": dislikes, "summary": summary, "verification": stats}
    return profile.model_copy(update=update)
