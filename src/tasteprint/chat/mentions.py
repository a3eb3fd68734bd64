"""What a chat line is about: the catalogue titles and labels it names, each with its span and the
stance the person takes on it, found before anything decides what the line asks.

Titles are matched as whole words in every form people type: with or without the year, the
catalogue's trailing article moved to the front ("Matrix, The" as "the matrix") or left out, an
alternative title ("Seven (a.k.a. Se7en)" as "se7en"), accents aside, and small typos in longer
names. The longest match wins and matches never overlap. A title that is a common word ("Heat",
"Her", "It", "Up") counts only where it is written as a name: capitalised, and not merely the first
word of the line unless a verb of judgement follows ("Up was great"). Several items sharing a name
resolve to the one in the person's history, else the most consumed. Labels are the catalogue's
attribute values (genres, decades, mined aspects), found by their word stems ("comedies": Comedy).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from tasteprint.ingest.aspects import clauses, polarity
from tasteprint.profile.stated import stems

Stance = Literal["liked", "disliked", "neutral"]
MAX_TITLE_WORDS = 12
FUZZY_MIN_CHARS = 7  # only names at least this long are matched with a typo
FUZZY_CUTOFF = 0.88
JUDGEMENT_AFTER = re.compile(r"^\W*(was|is|were|has been|'s)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_ALT_TITLE = re.compile(r"\s*\((?:a\.k\.a\.\s*)?([^()]*)\)")
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_ARTICLE = re.compile(r"^(.*), (the|a|an|le|la|les|l'|il|el|der|die|das)$", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(r"^(the|a|an) ", re.IGNORECASE)
_YEAR_AFTER = re.compile(r"^\s*\(?\s*(\d{4})\s*\)?")

# Stance cues, read in the clause that holds the mention.
_DISLIKE = re.compile(
    r"\b(hated|hate|disliked|dislike|couldn't stand|can't stand|not a fan|wasn't a fan|boring|awful|terrible|"
    r"dull|letdown|let down|overrated|worst|waste|too slow|meh)\b|\b(didn't|did not|don't|do not|never)\s+"
    r"(really\s+)?(like|enjoy|love|care for)\b",
    re.IGNORECASE,
)
_FIRST_PERSON_LIKE = re.compile(
    r"\b(i|i've|i have|we|we've)\s+(really\s+|also\s+|just\s+|totally\s+|absolutely\s+)?"
    r"(loved|liked|enjoyed|adored|love|like|enjoy|adore|dig|dug)\b|\bfavou?rites?\b|\ball-time\b",
    re.IGNORECASE,
)
_PRAISE = re.compile(
    r"\b(brilliant|fantastic|amazing|great|awesome|masterpiece|fun|excellent|wonderful|superb|perfect|"
    r"favou?rite|loved|enjoyed|good)\b",
    re.IGNORECASE,
)
_EXCLUDE = re.compile(
    r"\b(no|nothing|without|avoid|skip|exclude|leave out|don't want|do not want|keep|not|none|stop)\b", re.IGNORECASE
)
_EXCLUDE_ITEM = re.compile(
    r"\b(don't|do not|never|stop)\s+(show|suggest|recommend|give)\b|\boff my list\b|\bno more\b|\bleave out\b|"
    r"\bskip\b|\bavoid\b|\bexclude\b",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"\b(would|could|might|why|how come|what makes|more like|something like|anything like|similar|like it|"
    r"spirit of|vein of|lines of|close to|reason)\b|'d\b|\?",
    re.IGNORECASE,
)
_MORE_LABEL = re.compile(r"\b(more|extra|lots of|add|plenty)\b", re.IGNORECASE)


def fold(text: str) -> str:
    """Lower case without accents, "&" as "and": the form names are compared in."""
    text = unicodedata.normalize("NFKD", text.replace("&", " and "))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[tuple[str, int, int]]:
    """The text's words, folded, with their [start, end) offsets in `text`."""
    return [(fold(m.group()).replace("'", ""), m.start(), m.end()) for m in _WORD.finditer(text)]


def title_forms(title: str) -> dict[str, bool]:
    """Every form of a catalogue title a person may type, as folded word sequences, each with whether
    it is the whole name (False: the name with its leading article left out)."""
    base = _YEAR.sub("", title).strip()
    names = [_ALT_TITLE.sub("", base).strip()] + [m.group(1).strip() for m in _ALT_TITLE.finditer(base)]
    forms: dict[str, bool] = {}
    for name in names:
        if match := _ARTICLE.match(name):
            name = f"{match.group(2)} {match.group(1)}"
        folded = " ".join(w for w, _, _ in words(name))
        if folded:
            forms[folded] = True
            bare = _LEADING_ARTICLE.sub("", folded)
            if bare != folded and len(bare) >= 4:
                forms.setdefault(bare, False)
    return forms


@dataclass
class Mention:
    """A title or label a line names: what (`item_id` or `label`), where (`span` into the line), and
    the stance the person takes on it."""

    kind: Literal["item", "label"]
    key: str
    text: str
    span: tuple[int, int]
    stance: Stance = "neutral"


class MentionFinder:
    """Finds the titles and labels of one catalogue in chat lines."""

    def __init__(self, titles: Mapping[str, str], labels: set[str], popularity: Mapping[str, float]):
        self.names: dict[str, list[str]] = {}
        bare: dict[str, list[str]] = {}
        for item_id, title in titles.items():
            for form, whole in title_forms(title).items():
                (self.names if whole else bare).setdefault(form, []).append(item_id)
        for form, ids in bare.items():  # "heat" names Heat before The Heat
            self.names.setdefault(form, ids)
        self.titles = dict(titles)
        self.popularity = popularity
        self.labels = sorted(labels, key=lambda label: (-len(label), label))
        self._label_words = {fold(label) for label in labels}
        self._label_stems = {label: [s for s, _ in stems(label)] for label in self.labels}
        self._buckets: dict[str, list[str]] = {}
        for name in self.names:
            if len(name) >= FUZZY_MIN_CHARS:
                self._buckets.setdefault(name[:2], []).append(name)

    def find(self, line: str, history: set[str] = frozenset()) -> list[Mention]:
        """The titles, then the labels outside them, each once, in line order, with their stance."""
        found = self._titles(line, history)
        taken = [m.span for m in found]
        found += [m for m in self._labels(line) if not any(a < m.span[1] and m.span[0] < b for a, b in taken)]
        for mention in found:
            mention.stance = stance_of(line, mention)
        return sorted(found, key=lambda m: m.span)

    def _titles(self, line: str, history: set[str]) -> list[Mention]:
        tokens = words(line)
        taken: list[bool] = [False] * len(tokens)
        found: list[Mention] = []
        for n in range(min(MAX_TITLE_WORDS, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(taken[i : i + n]):
                    continue
                key = " ".join(w for w, _, _ in tokens[i : i + n])
                start, end = tokens[i][1], tokens[i + n - 1][2]
                written = line[start:end]
                ids = self.names.get(key) or (self._near(key, n) if not written.islower() else [])
                if not ids or not self._named(line, start, end, key):
                    continue
                if year := _YEAR_AFTER.match(line[end:]):  # "Heat (1995)" or "Heat 1995" picks that one
                    dated = [i for i in ids if self.titles[i].endswith(f"({year.group(1)})")]
                    if dated:
                        ids, end = dated, end + year.end()
                item_id = self._choose(ids, history)
                found.append(Mention("item", item_id, line[start:end], (start, end)))
                taken[i : i + n] = [True] * n
        return found

    def _near(self, key: str, n: int) -> list[str]:
        """Items whose name is `key` with a small typo (longer names only)."""
        if len(key) < FUZZY_MIN_CHARS or n > 6:
            return []
        close = difflib.get_close_matches(key, self._buckets.get(key[:2], []), n=1, cutoff=FUZZY_CUTOFF)
        return self.names[close[0]] if close else []

    def _named(self, line: str, start: int, end: int, key: str) -> bool:
        """Whether a match is written as a name (see the module docstring). In lower case, a name of
        several words needs two that are not common words ("jurassic park", not "something new"), one
        word needs FUZZY_MIN_CHARS + 1 letters and must not be a label."""
        written = line[start:end]
        if start and line[start - 1] in "\"'":
            return True  # quoted
        if written.islower() or not written[:1].isalpha():
            common = common_words()
            distinct = [w for w in key.split() if w not in common]
            if " " in key:
                return len(distinct) >= 2
            return len(key) > FUZZY_MIN_CHARS and key not in self._label_words and bool(distinct)
        if " " in key or line[:start].strip(" \"'"):
            return True  # capitalised inside the line, or several words
        return bool(JUDGEMENT_AFTER.match(line[end:]))  # the first word: a name only when judged

    def _choose(self, ids: list[str], history: set[str]) -> str:
        known = [i for i in ids if i in history]
        return sorted(known or ids, key=lambda i: (-self.popularity.get(i, 0), i))[0]

    def _labels(self, line: str) -> list[Mention]:
        tokens = stems(line)
        found, taken = [], set()
        for label in self.labels:
            wanted = self._label_stems[label]
            if not wanted:
                continue
            for start in range(len(tokens) - len(wanted) + 1):
                if [s for s, _ in tokens[start : start + len(wanted)]] != wanted:
                    continue
                if set(range(start, start + len(wanted))) & taken:
                    continue
                begin = tokens[start][1]
                last = tokens[start + len(wanted) - 1][1]
                end = last + len(_WORD.match(line, last).group()) if _WORD.match(line, last) else last
                found.append(Mention("label", label, line[begin:end], (begin, end)))
                taken |= set(range(start, start + len(wanted)))
                break
        return found


def stance_of(line: str, mention: Mention) -> Stance:
    """The person's stance on a mention, from the clause that holds it: an exclusion, a dislike verb or
    a negative judgement marks it disliked; a like verb, "favourite" or a positive judgement of their
    own (not a hypothetical "would I like", "something like") marks it liked; else neutral."""
    start, end = mention.span
    text, offset, _ = next((c for c in _clauses_with_offsets(line) if c[1] <= start < c[2]), (line, 0, len(line)))
    before = text[: start - offset]
    if mention.kind == "label":
        if _EXCLUDE.search(before):
            return "disliked"
        return "liked" if _MORE_LABEL.search(before) or _FIRST_PERSON_LIKE.search(before) else "neutral"
    if _DISLIKE.search(text) or _EXCLUDE_ITEM.search(text):
        return "disliked"
    judged = text[end - offset :].split(",")[0]  # "Fargo was great, can you..." judges Fargo
    if _FIRST_PERSON_LIKE.search(before) and not re.search(r"\b(would|could|might)\b|'d\b", before, re.I):
        return "liked"
    if JUDGEMENT_AFTER.match(judged) and _PRAISE.search(judged):
        return "liked"
    if _HYPOTHETICAL.search(text):
        return "neutral"
    if _FIRST_PERSON_LIKE.search(text) or _PRAISE.search(text) and polarity(text) >= 0.3:
        return "liked"
    return "neutral"


def _clauses_with_offsets(line: str) -> list[tuple[str, int, int]]:
    """The line's clauses (as `ingest.aspects.clauses` splits them) with their offsets."""
    found, at = [], 0
    for clause in clauses(line):
        start = line.find(clause, at)
        if start < 0:
            continue
        found.append((clause, start, start + len(clause)))
        at = start + len(clause)
    return found


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """English function words (YAKE's stop list), which alone never make a lower-case title."""
    from tasteprint.ingest.aspects import _extractor

    return frozenset(_extractor().stopword_set)
