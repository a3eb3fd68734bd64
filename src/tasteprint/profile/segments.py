"""Segments: k-means over profile embeddings plus numeric facts, described by the LLM and verified.

The clustering is the classic one (user vectors -> k-means, k by silhouette when asked); what is new is
that each segment gets a description the model can only write from the labels most of its members
share, and that a user with little history borrows the nearest segment's interests as a prior.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
from pydantic import BaseModel, Field

from tasteprint.errors import LLMError, TasteprintError
from tasteprint.llm import LLMContext, generate
from tasteprint.llm.prompting import chat, one_of, string_schema
from tasteprint.models import UserFacts, UserProfile

from .summary import SummaryDraft

K_RANGE = range(2, 9)
NUMERIC_WEIGHT = 0.5
MIN_LABEL_SHARE = 0.3
MAX_SEGMENT_LABELS = 5


class SegmentInterest(BaseModel):
    label: str
    share: float = Field(ge=0, le=1, description="fraction of the segment's members with this interest")


class Segment(BaseModel):
    segment_id: int
    size: int
    members: list[str]
    description: str
    top_interests: list[SegmentInterest]
    mean_items: float
    mean_rating: float | None = None
    by_llm: bool = Field(description="the description was written by the model (else built from the data)")
    verified: bool = Field(description="every label the description names is shared by enough members")
    fallback: str | None = Field(default=None, description="why the model's description was not used, if it was not")
    centroid: list[float] = Field(default_factory=list, repr=False, description="embedding part of the centre")


class Segmentation(BaseModel):
    k: int
    silhouette: float | None = Field(description="mean silhouette of the chosen k")
    silhouettes: dict[int, float] = Field(default_factory=dict, description="silhouette for each k tried")
    segments: list[Segment]
    data_version: int = 0


def numeric_facts(facts: UserFacts) -> list[float]:
    """The numeric facts the classic approach clusters on: activity, rating level and spread of taste."""
    top_share = facts.top_attributes[0].share if facts.top_attributes else 0.0
    return [math.log1p(facts.n_items), facts.rating_mean if facts.rating_mean is not None else 3.5, top_share]


def feature_matrix(embeddings: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """Unit profile embeddings next to z-scored numeric facts, the latter scaled to NUMERIC_WEIGHT in total."""
    unit = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-9)
    spread = numeric.std(axis=0)
    z = (numeric - numeric.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return np.hstack([unit, z * NUMERIC_WEIGHT / math.sqrt(numeric.shape[1])])


def cluster(features: np.ndarray, k: int | str, seed: int) -> tuple[np.ndarray, np.ndarray, float | None, dict]:
    """k-means labels and centroids; with k="auto" the k in K_RANGE with the best silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(features)
    if k == "auto":
        tried = {}
        for candidate in [c for c in K_RANGE if c < n]:
            labels = KMeans(candidate, n_init=10, random_state=seed).fit_predict(features)
            tried[candidate] = round(float(silhouette_score(features, labels)), 4)
        if not tried:
            raise TasteprintError(f"--k auto needs at least 3 profiled users, found {n}")
        k = max(tried, key=lambda c: (tried[c], -c))
    else:
        tried = {}
    k = int(k)
    if not 1 <= k <= n:
        raise TasteprintError(
            f"cannot make {k} segments from {n} profiled users",
            hint="profile more users first (tasteprint profile --all) or lower --k",
        )
    model = KMeans(k, n_init=10, random_state=seed).fit(features)
    score = float(silhouette_score(features, model.labels_)) if 1 < k < n else None
    return model.labels_, model.cluster_centers_, (round(score, 4) if score is not None else None), tried


def interest_shares(profiles: list[UserProfile]) -> list[SegmentInterest]:
    """Interest labels by the share of members whose verified profile holds them, most shared first."""
    counts = Counter(label for p in profiles for label in {i.label for i in p.interests})
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [SegmentInterest(label=label, share=round(n / len(profiles), 3)) for label, n in ranked]


def description_schema(labels: list[str]) -> dict:
    """A sentence whose only slots are the labels most members share: true by construction."""
    names = one_of(labels)
    if not names:
        return string_schema("summary", "^Members share no common interest[.]$")
    opening = "((Members|Most members) (enjoy|like|favour)|This group (enjoys|likes|favours))"
    return string_schema("summary", f"^{opening} {names}((, {names})* and {names})?[.]$")


def without_repeats(text: str, labels: list[str]) -> str:
    """The sentence with each label named once, in the model's order: a small model repeats itself."""
    if not labels:
        return text
    mentions = re.findall("|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True)), text)
    named = list(dict.fromkeys(mentions))
    if len(named) == len(mentions):
        return text
    opening = text[: text.index(named[0])].rstrip()
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"{opening} {listed}."


def fallback_description(interests: list[SegmentInterest]) -> str:
    if not interests:
        return "Members share no common interest."
    return "Members like " + ", ".join(f"{i.label} ({i.share:.0%})" for i in interests[:3]) + "."


def unverified_labels(description: str, shared: list[SegmentInterest], vocabulary: set[str]) -> list[str]:
    """Catalogue labels the description names that fewer than MIN_LABEL_SHARE of members hold."""
    allowed = {i.label.lower() for i in shared if i.share >= MIN_LABEL_SHARE}
    # Allowed labels are cut out first, so a word inside one ("fantasy" in "Science Fiction & Fantasy")
    # is not taken for a label of its own; the rest must match as whole words ("cook" is not in "Cooking").
    rest = description.lower()
    for label in sorted(allowed, key=len, reverse=True):
        rest = rest.replace(label, " ")
    named = (v for v in vocabulary if len(v) >= 4 and v.lower() not in allowed)
    return sorted(v for v in named if re.search(rf"(?<!\w){re.escape(v.lower())}(?!\w)", rest))


def describe(
    members: list[UserProfile],
    facts: list[UserFacts],
    llm: LLMContext,
    vocabulary: set[str],
) -> tuple[str, list[SegmentInterest], bool, bool, str | None]:
    """(description, top interests, written by the LLM, verified, why the model's text was not used)
    for one segment. A model error (a hosted outage included) falls back to the data's description."""
    shared = interest_shares(members)
    common = [i for i in shared if i.share >= MIN_LABEL_SHARE][:MAX_SEGMENT_LABELS]
    top = common or shared[:3]
    fallback = "no model"
    if llm.backend is not None:
        messages = chat(
            "profile_system.j2",
            "segment_user.j2",
            llm.prompts_dir,
            size=len(members),
            interests=top,
            mean_items=round(float(np.mean([f.n_items for f in facts])), 1),
        )
        schema = description_schema([i.label for i in common])
        try:
            reply = generate(
                llm.backend, messages, SummaryDraft, schema=schema, max_tokens=80, temperature=llm.temperature
            )
            text = without_repeats(" ".join(reply.value.summary.split()), [i.label for i in common])
            # A backend without a grammar may ignore the pattern: the text must still match it.
            unverified = unverified_labels(text, shared, vocabulary)
            if not re.fullmatch(schema["properties"]["summary"]["pattern"], text):
                fallback = f"description outside its pattern: {text[:120]!r}"
            elif unverified:
                fallback = f"names labels few members share: {', '.join(sorted(unverified))}"
            else:
                return text, top, True, True, None
        except LLMError as exc:
            fallback = f"{type(exc).__name__}: {exc.message}"
    text = fallback_description(top)
    return text, top, False, not unverified_labels(text, shared, vocabulary), fallback


def build_segments(
    profiles: list[UserProfile],
    facts: list[UserFacts],
    embeddings: np.ndarray,
    llm: LLMContext,
    *,
    k: int | str,
    seed: int,
    vocabulary: set[str] = frozenset(),
) -> Segmentation:
    """Cluster profiled users and describe each segment. `profiles`, `facts` and `embeddings` align."""
    numeric = np.array([numeric_facts(f) for f in facts], dtype=np.float64)
    features = feature_matrix(np.asarray(embeddings, dtype=np.float64), numeric)
    labels, centres, score, tried = cluster(features, k, seed)
    dim = embeddings.shape[1]
    segments = []
    for segment_id in range(len(centres)):
        chosen = [n for n, label in enumerate(labels) if label == segment_id]
        members = [profiles[n] for n in chosen]
        member_facts = [facts[n] for n in chosen]
        description, top, by_llm, verified, fallback = describe(members, member_facts, llm, vocabulary)
        ratings = [f.rating_mean for f in member_facts if f.rating_mean is not None]
        segments.append(
            Segment(
                segment_id=segment_id,
                size=len(members),
                members=sorted(p.user_id for p in members),
                description=description,
                top_interests=top,
                mean_items=round(float(np.mean([f.n_items for f in member_facts])), 1),
                mean_rating=round(float(np.mean(ratings)), 2) if ratings else None,
                by_llm=by_llm,
                verified=verified,
                fallback=fallback,
                centroid=[float(x) for x in centres[segment_id][:dim]],
            )
        )
    return Segmentation(k=len(centres), silhouette=score, silhouettes=tried, segments=segments)


def nearest_segment(segmentation: Segmentation, vector: np.ndarray) -> Segment:
    """The segment whose centroid (embedding part) is most similar to a user's query vector."""
    centroids = np.array([s.centroid for s in segmentation.segments])
    similarity = centroids @ vector / (np.linalg.norm(centroids, axis=1) * np.linalg.norm(vector) + 1e-9)
    return segmentation.segments[int(np.argmax(similarity))]
