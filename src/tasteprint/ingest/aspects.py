"""Aspects: the things people write about, mined from review and search text.

Candidate phrases come from YAKE (a maintained unsupervised keyphrase extractor) run over the whole
text, are put in lemma form by simplemma, lose the opinion words at their edges ("wonderful recipes" ->
"recipe": VADER's lexicon says which words carry opinion), and take the polarity (VADER's compound
score) of the first of the writer's own clauses that names them with an opinion, wherever it is in
the text; named only neutrally, the rating decides, or without one the whole review's polarity.
Item aspects count what all reviewers of an item wrote; phrases that half
the catalogue shares ("magazine") say nothing about any one item and are dropped; near-duplicates are
merged by sentence-embedding similarity. User aspects keep the person's own phrase and the clause
that contains it, so a profile claim can be checked against, and quote, what they wrote.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ASPECT_ATTRIBUTE = "aspect"
MAX_TEXT_CHARS = 5_000  # a pasted essay is mined from its start only, so one review cannot stall a batch
PHRASE_WORDS = 3
PHRASES_PER_TEXT = 8
MAX_ITEM_ASPECTS = 6
GENERIC_ITEM_SHARE = 0.2  # a phrase written about more than this share of items describes none of them
MERGE_SIMILARITY = 0.85
POLARITY_MIN = 0.05  # VADER's own neutral band: |compound| below it is neither praise nor complaint
REVIEW_POLARITY_MIN = 0.5  # a whole review this clearly for or against judges what it names neutrally
QUOTE_CHARS = 160
OPINION_VALENCE = 1.0  # VADER valence from which a word is an opinion, not a thing
_TOKEN = re.compile(r"[a-z][a-z'-]*")
_CLAUSE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+|,?\s+(?:but|however|although|though)\s+", re.IGNORECASE)
# Words that name nothing a person could like: fillers YAKE lets through at the edges of phrases.
# Review boilerplate (who it was for, how it arrived) is no more an aspect than a filler word is.
_VAGUE = {
    "thing", "lot", "bit", "way", "one", "time", "star", "stuff", "item", "product", "review", "everything",
    "receive", "purchase", "order", "gift", "husband", "wife", "son", "daughter", "friend", "arrive",
    "deliver", "delivery", "ship", "shipping", "money", "worth", "copy", "buy", "get", "give", "make",
    "write", "say", "think", "know", "find", "look", "use", "see", "come", "go", "take", "want", "need",
    "keep", "feel", "try", "seem",
}  # fmt: skip


@dataclass(frozen=True)
class Mention:
    """One aspect phrase in one text: its lemma form, the clause that judges it (the first of the
    writer's own clauses naming it with an opinion, else the first naming it), that clause's polarity
    (VADER compound, -1..1), and the whole text's polarity over the writer's own clauses."""

    phrase: str
    clause: str
    polarity: float
    review: float = 0.0


# VADER's lexicon is tuned on social media; product reviews judge with words it does not score
# ("flimsy", "overpriced", "sturdy", "insightful"). Valences on VADER's own -4..4 scale.
REVIEW_LEXICON = {
    **dict.fromkeys(
        [
            "sturdy",
            "reliable",
            "insightful",
            "informative",
            "witty",
            "durable",
            "well-made",
            "crisp",
            "accurate",
            "favourite",
            "favorite",
            "must-read",
            "page-turner",
            "engaging",
            "thoughtful",
            "useful",
            "handy",
            "comfy",
            "versatile",
            "intuitive",
            "flawless",
            "gripping",
            "charming",
            "smooth",
            "solid",
        ],
        2.0,
    ),
    **dict.fromkeys(["sharp", "quiet", "works", "worked", "lasts", "recommended", "clean", "vibrant"], 1.2),
    **dict.fromkeys(
        [
            "flimsy",
            "overpriced",
            "wobbly",
            "tinny",
            "cluttered",
            "cheaply",
            "nightmare",
            "shoddy",
            "defective",
            "unreliable",
            "unusable",
            "useless",
            "misleading",
            "repetitive",
            "shallow",
            "bland",
            "clunky",
            "leaky",
            "outdated",
            "sloppy",
            "mediocre",
            "disappointing",
            "overrated",
            "filler",
            "gimmicky",
            "scratchy",
            "frustrating",
            "unreadable",
        ],
        -2.0,
    ),
    **dict.fromkeys(
        [
            "broke",
            "broken",
            "crashes",
            "crashed",
            "faded",
            "fades",
            "peeling",
            "peeled",
            "dies",
            "died",
            "tears",
            "ripped",
            "leaks",
            "late",
            "damaged",
            "smells",
            "stopped",
            "rusted",
            "rusty",
            "advertising",
            "ads",
            "cracked",
            "loose",
            "jammed",
            "stuck",
            "dented",
        ],
        -1.5,
    ),
}
# "too small", "far too easy", "hardly any", "never turn out": complaints VADER reads as neutral or praise.
_COMPLAINT = re.compile(
    r"\b(too|overly|hardly|barely)\s+\w+|\bnever\s+(work|works|worked|turn|turns|answer|answered)\b"
)


@lru_cache(maxsize=1)
def _sentiment():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(REVIEW_LEXICON)
    return analyzer


@lru_cache(maxsize=1)
def _extractor():
    import yake

    return yake.KeywordExtractor(lan="en", n=PHRASE_WORDS, top=PHRASES_PER_TEXT * 2, dedupLim=0.7)


@lru_cache(maxsize=65_536)
def _lemma(word: str) -> str:
    import simplemma

    return simplemma.lemmatize(word, lang="en").lower()


def lemma_words(text: str) -> list[str]:
    """The text's words in lower-case lemma form ("Recipes were" -> ["recipe", "be"])."""
    return [_lemma(word) for word in _TOKEN.findall(text.lower())]


def lemma_form(text: str) -> str:
    return " ".join(lemma_words(text))


def polarity(clause: str) -> float:
    """VADER's compound sentiment of a clause, -1 (negative) .. 1 (positive), with a lexicon for product
    reviews (`REVIEW_LEXICON`); "too X" and "hardly any" make a clause a complaint."""
    score = float(_sentiment().polarity_scores(clause)["compound"])
    if _COMPLAINT.search(clause.lower()):
        return min(score, -0.3)
    return score


# A clause that hedges ("not sure it is what I want") or reports someone else's words ("my wife says")
# is not the reviewer's own verdict, so no claim rests on it.
NOT_A_VERDICT = re.compile(
    r"\b(not sure|unsure|maybe|perhaps|i wonder|wondering|i guess|if only|hoping|whether|"
    r"said|says|told|tells|according to|claims?|claimed|heard|people say|others say|reviewers?|"
    r"my (wife|husband|partner|friend|friends|son|daughter|kids?|mom|dad|mother|father|boss))\b",
    re.IGNORECASE,
)


def own_verdict(clause: str) -> bool:
    """Whether a clause is its writer's own judgement (no hedge, no reported speech)."""
    return NOT_A_VERDICT.search(clause) is None


def verdict(clause: str) -> int:
    """+1 praise, -1 complaint, 0 neither or not the writer's own verdict."""
    if not own_verdict(clause):
        return 0
    score = polarity(clause)
    return 1 if score >= POLARITY_MIN else -1 if score <= -POLARITY_MIN else 0


def clauses(text: str) -> list[str]:
    """Sentences, split again at contrasts ("great photos, but too many ads" is two opinions)."""
    return [c.strip() for c in _CLAUSE_BREAK.split(text) if c and c.strip()]


def aspect_phrase(candidate: str) -> str | None:
    """The lemma form of a candidate phrase without opinion words and stopwords at its edges, or None
    when nothing that names a thing is left."""
    stopwords = _extractor().stopword_set
    lexicon = _sentiment().lexicon
    words = lemma_words(candidate)

    def weak(word: str) -> bool:
        return word in stopwords or abs(lexicon.get(word, 0.0)) >= OPINION_VALENCE or len(word) < 2

    while words and weak(words[0]):
        words.pop(0)
    while words and weak(words[-1]):
        words.pop()
    if not words or all(w in _VAGUE for w in words) or any(w in stopwords for w in words):
        return None
    return " ".join(words)


def contains(haystack_lemmas: str, phrase: str) -> bool:
    """Whether a lemma-form phrase occurs as whole words in lemma-form text."""
    return f" {phrase} " in f" {haystack_lemmas} "


def excerpt(clause: str, phrase: str, limit: int = QUOTE_CHARS) -> str:
    """At most `limit` characters of the clause, centred on the lemma-form `phrase` it contains."""
    if len(clause) <= limit:
        return clause
    words = clause.split()
    lemmas = [lemma_form(w) for w in words]

    def holds(start: int, end: int) -> bool:
        return contains(" ".join(lemmas[start:end]), phrase)

    # The last word where the phrase still follows, then the first end that completes it there.
    start = max((n for n in range(len(words)) if holds(n, len(words))), default=0)
    left, right = start, next((m for m in range(start + 1, len(words) + 1) if holds(start, m)), len(words))
    while True:
        grown = False
        if right < len(words) and len(" ".join(words[left : right + 1])) <= limit:
            right, grown = right + 1, True
        if left > 0 and len(" ".join(words[left - 1 : right])) <= limit:
            left, grown = left - 1, True
        if not grown:
            return " ".join(words[left:right])[:limit]


def mine(text: str) -> list[Mention]:
    """The aspect phrases of one text, best first (YAKE's order), each with the clause it occurs in."""
    return list(_mined(text[:MAX_TEXT_CHARS]))


def forget_mined() -> None:
    """Empty `mine`'s memory, so a benchmark times mining as a fresh process does it."""
    _mined.cache_clear()


@lru_cache(maxsize=16_384)
def _mined(text: str) -> tuple[Mention, ...]:
    """`mine`, remembered per text: ingest mines every stored review again, eval its training reviews,
    and facts the user's own, so the same texts come back (YAKE takes ~5 ms a review)."""
    if len(_TOKEN.findall(text.lower())) < 3:
        return ()
    pieces = [(clause, lemma_form(clause), polarity(clause)) for clause in clauses(text)]
    review = polarity(" ".join(clause for clause, _, _ in pieces if own_verdict(clause)))
    found: dict[str, Mention] = {}
    for candidate, _ in _extractor().extract_keywords(text):
        phrase = aspect_phrase(candidate)
        if phrase is None or phrase in found:
            continue
        naming = [(clause, score) for clause, lemmas, score in pieces if contains(lemmas, phrase)]
        if not naming:
            continue
        # Every clause that names it counts, not only the first: "The recipes. Each one a keeper!"
        judged = [(c, score) for c, score in naming if own_verdict(c) and abs(score) >= POLARITY_MIN]
        clause, score = (judged or naming)[0]
        found[phrase] = Mention(phrase, excerpt(clause, phrase), score, review)
        if len(found) == PHRASES_PER_TEXT:
            break
    return tuple(found.values())


def stance(mention: Mention, rating: float | None, rating_mean: float | None) -> int:
    """+1 praise, -1 complaint, 0 neither: the clause's polarity; where it is neutral, the rating
    against the writer's own mean; without a rating, the whole review's when it is clearly one way."""
    if mention.polarity >= POLARITY_MIN:
        return 1
    if mention.polarity <= -POLARITY_MIN:
        return -1
    if rating is not None and rating_mean is not None:
        return (1 if rating > rating_mean else -1) if abs(rating - rating_mean) >= 0.5 else 0
    if abs(mention.review) >= REVIEW_POLARITY_MIN:
        return 1 if mention.review > 0 else -1
    return 0


def item_aspects(
    texts_by_item: dict[str, list[str]],
    embed: Callable[[list[str]], np.ndarray] | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[dict[str, list[str]], set[str]]:
    """Each item's aspects from every text written about it (most-mentioned first), and the generic
    phrases left out because too many items share them. With `embed`, near-duplicate phrases across
    the catalogue are merged into the most frequent one."""
    mentions: dict[str, Counter[str]] = {}
    for done, (item_id, texts) in enumerate(sorted(texts_by_item.items()), start=1):
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(m.phrase for m in mine(text))  # once per text, best first: equal counts rank alike every run
        mentions[item_id] = counts
        progress(done)
    items_with = Counter(p for counts in mentions.values() for p in counts)
    generic = {p for p, n in items_with.items() if n >= 3 and n > GENERIC_ITEM_SHARE * len(mentions)}
    chosen: dict[str, list[str]] = {}
    for item_id, counts in mentions.items():
        ranked = sorted((p for p in counts if p not in generic), key=lambda p: -counts[p])
        shared = [p for p in ranked if counts[p] >= 2]  # what several reviewers say, when anything is
        chosen[item_id] = (shared or ranked)[: MAX_ITEM_ASPECTS * 2]
    if embed is not None:
        canonical = merge_near_duplicates([p for ps in chosen.values() for p in ps], embed)
        chosen = {i: list(dict.fromkeys(canonical[p] for p in ps)) for i, ps in chosen.items()}
    return {i: ps[:MAX_ITEM_ASPECTS] for i, ps in chosen.items() if ps}, generic


def merge_near_duplicates(phrases: Iterable[str], embed: Callable[[list[str]], np.ndarray]) -> dict[str, str]:
    """Phrase -> the most frequent phrase at least MERGE_SIMILARITY cosine-similar to it (itself if none)."""
    counts = Counter(phrases)
    ordered = sorted(counts, key=lambda p: (-counts[p], p))
    if not ordered:
        return {}
    vectors = np.asarray(embed(ordered), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    canonical: dict[str, str] = {}
    kept: list[int] = []
    for n, phrase in enumerate(ordered):
        if kept:
            similarity = vectors[kept] @ vectors[n]
            best = int(np.argmax(similarity))
            if similarity[best] >= MERGE_SIMILARITY:
                canonical[phrase] = ordered[kept[best]]
                continue
        kept.append(n)
        canonical[phrase] = phrase
    return canonical


def review_texts(events: Iterable) -> dict[str, list[str]]:
    """Item id -> the review texts written about it (one per review event with text)."""
    texts: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.kind == "review" and event.text:
            texts[event.item_id].append(event.text)
    return dict(texts)
