"""Greedy decoding of a JSON reply from a finite schema, with the tokens it forces evaluated in batches.

A schema built only from objects (every property required), bounded arrays, string `enum`s, `const`s,
`anyOf` objects told apart by a leading `const`, and strings whose pattern has finitely many matches
(`patterns.py`) allows finitely many replies, and most of each is
forced: in `{"2916": "You liked Jurassic Park (1993); both are Sci-Fi and Thriller."}` or a profile
draft's `{"interests": [{"label": "Drama", "evidence": ["1222"]}, ...]}` only a few tokens are the
model's choice. Grammar-constrained decoding spends a full model step on every token (about 18 ms for
SmolLM2-135M on this project's 2 cores). Here text the still-possible replies share is forced and
evaluated in one batch (about 5 ms a token in runs of 8-16), and where they part the model's
highest-scoring allowed token decides, with the repetition penalty the greedy grammar sampler
applies: greedy decoding confined to the schema, as the grammar path decodes it, except that forced
text is tokenized as the tokenizer would and the JSON is written in one fixed layout.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass

from tasteprint.errors import LLMError

from .patterns import string_steps
from .sampling import penalised_logits


@dataclass(frozen=True)
class Choice:
    """One of `options` (JSON text, prefix-free) goes here."""

    options: tuple[str, ...]


@dataclass(frozen=True)
class Fields:
    """An object's properties, in order: (key, node)."""

    fields: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Tagged:
    """`anyOf` objects whose first property `key` is a const: the const chooses the rest."""

    key: str
    variants: tuple[tuple[str, Fields], ...]  # (the const's JSON text, the other properties)


@dataclass(frozen=True)
class Items:
    """An array of `low` to `high` items, each `item`."""

    item: object
    low: int
    high: int


@dataclass(frozen=True)
class Steps:
    """A string matching a finite pattern: one option of each step in turn (`patterns.string_steps`)."""

    steps: tuple[tuple[str, ...], ...]


MAX_ARRAY_ITEMS = 64  # an unbounded array is left to the grammar path


def compile_schema(schema: dict | None):
    """The schema as nodes `decode_choices` walks, or None when it is not a finite schema as the module
    docstring describes (the grammar path decodes it then)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return Choice((json.dumps(schema["const"], ensure_ascii=False),))
    if "enum" in schema:
        values = schema["enum"]
        if not values or not all(isinstance(v, str) for v in values):
            return None  # numbers are not prefix-free ("1" begins "10"); quoted strings are
        return Choice(tuple(json.dumps(v, ensure_ascii=False) for v in dict.fromkeys(values)))
    if "anyOf" in schema:
        return _tagged(schema["anyOf"])
    if schema.get("type") == "string" and set(schema) == {"type", "pattern"}:
        steps = string_steps(schema["pattern"])
        return Steps(steps) if steps else None
    if schema.get("type") == "object":
        return _fields(schema)
    if schema.get("type") == "array":
        item = compile_schema(schema.get("items"))
        low, high = schema.get("minItems", 0), schema.get("maxItems", MAX_ARRAY_ITEMS + 1)
        if item is None or high > MAX_ARRAY_ITEMS or low > high:
            return None
        return Items(item, low, high)
    return None


def _fields(schema: dict) -> Fields | None:
    properties = schema.get("properties") or {}
    if not properties or set(schema.get("required", ())) != set(properties):
        return None
    if schema.get("additionalProperties") not in (None, False):
        return None
    nodes = tuple((key, compile_schema(spec)) for key, spec in properties.items())
    return None if any(node is None for _, node in nodes) else Fields(nodes)


def _tagged(variants: list) -> Tagged | None:
    compiled = [_fields(v) if isinstance(v, dict) and v.get("type") == "object" else None for v in variants]
    if not compiled or any(c is None for c in compiled):
        return None
    keys = {c.fields[0][0] for c in compiled}
    tags = [c.fields[0][1] for c in compiled]
    if len(keys) != 1 or not all(isinstance(t, Choice) and len(t.options) == 1 for t in tags):
        return None
    if len({t.options[0] for t in tags}) != len(tags):
        return None
    return Tagged(keys.pop(), tuple((t.options[0], Fields(c.fields[1:])) for t, c in zip(tags, compiled)))


def longest_reply(node) -> int:
    """An upper bound on the reply's length in bytes (so in tokens)."""
    if isinstance(node, Choice):
        return max(len(o.encode("utf-8")) for o in node.options)
    if isinstance(node, Fields):
        return 2 + sum(len(k.encode("utf-8")) + 6 + longest_reply(n) for k, n in node.fields)
    if isinstance(node, Tagged):
        return max(len(node.key.encode()) + 8 + len(tag.encode()) + longest_reply(rest) for tag, rest in node.variants)
    if isinstance(node, Steps):
        return sum(max(len(o.encode("utf-8")) for o in step) for step in node.steps)
    return 2 + node.high * (2 + longest_reply(node.item))


class Vocabulary:
    """Each token's bytes, both ways (special tokens left out), for a tokenizer whose tokens
    detokenize back to the text they came from (byte-level BPE, as SmolLM2's)."""

    def __init__(self, llama):
        self.llama = llama
        self.text = [llama.detokenize([token], special=False) for token in range(llama.n_vocab())]
        self.token: dict[bytes, int] = {}
        for token, text in enumerate(self.text):
            if text:
                self.token.setdefault(text, token)
        self.longest = max(map(len, self.token))
        # `decode_choices` relies on tokenizing and detokenizing giving back the text.
        sample = ' {"id": "Caf\u00e9, The (1999); both are Sci-Fi and 1980s."}'.encode()
        self.round_trips = b"".join(self.text[t] for t in self.tokenize(sample)) == sample

    def tokenize(self, text: bytes) -> list[int]:
        return self.llama.tokenize(text, add_bos=False, special=False) if text else []

    def starting(self, texts: list[bytes]) -> set[int]:
        """Every token whose text begins one of `texts`."""
        return {
            self.token[text[:size]]
            for text in texts
            for size in range(1, min(len(text), self.longest) + 1)
            if text[:size] in self.token
        }


class _Decoder:
    """Appends forced text and the model's choices to a reply after an evaluated prompt."""

    def __init__(self, llama, vocabulary: Vocabulary, repeat_penalty: float, last_n: int):
        self.llama, self.vocabulary, self.repeat_penalty = llama, vocabulary, repeat_penalty
        self.held = b""  # text said or chosen but not tokenized yet: it may merge with what follows
        self.pending: list[int] = []  # tokens not evaluated yet: evaluated together at the next branch
        self.recent: deque[int] = deque(maxlen=last_n)  # what the repetition penalty looks back on
        self.reply: list[str] = []
        self.generated = 0

    def say(self, text: str) -> None:
        self.held += text.encode("utf-8")
        self.reply.append(text)

    def choose(self, options: tuple[str, ...]) -> int:
        """The index of the option the model takes. At a branch every token whose text begins a live
        option is allowed, as a grammar allows it; text all live options share is forced, tokenized as
        the tokenizer would, except its last token, which may merge with what follows."""
        live = {n: self.held + option.encode("utf-8") for n, option in enumerate(options)}
        while len(live) > 1:
            rests = list(live.values())
            forced = self.vocabulary.tokenize(os.path.commonprefix(rests))[:-1]
            if not forced:
                if self.pending:
                    self.llama.eval(self.pending)
                    self.pending = []
                logits = penalised_logits(self.llama._ctx, -1, self.llama.n_vocab(), self.recent, self.repeat_penalty)
                forced = [max(self.vocabulary.starting(rests), key=lambda t: (logits[t], -t))]
            self._take(forced)
            taken = b"".join(self.vocabulary.text[t] for t in forced)
            live = {n: rest[len(taken) :] for n, rest in live.items() if rest.startswith(taken)}
            if not live or (len(live) > 1 and not all(live.values())):
                raise LLMError("the local model's tokenizer does not give back the text it tokenized")
        ((chosen, self.held),) = live.items()
        self.reply.append(options[chosen])
        return chosen

    def finish(self) -> str:
        # The last held text ends the reply: nothing is decoded after it, so it is not evaluated.
        self._take(self.vocabulary.tokenize(self.held))
        return "".join(self.reply)

    def _take(self, tokens: list[int]) -> None:
        self.pending += tokens
        self.recent.extend(tokens)
        self.generated += len(tokens)

    def value(self, node, opened: bool = False) -> None:
        """Write `node`; `opened`: its first character was already written (by an array's choice)."""
        if isinstance(node, Choice):
            options = tuple(o[1:] for o in node.options) if opened else node.options
            if len(options) == 1:
                self.say(options[0])
            else:
                self.choose(options)
        elif isinstance(node, Steps):
            for step in node.steps[1:] if opened else node.steps:  # the first step is the opening quote
                self.say(step[0]) if len(step) == 1 else self.choose(step)
        elif isinstance(node, Fields):
            self.say("" if opened else "{")
            self.fields(node, first=True)
            self.say("}")
        elif isinstance(node, Tagged):
            self.say(("" if opened else "{") + json.dumps(node.key, ensure_ascii=False) + ": ")
            tag = self.choose(tuple(tag for tag, _ in node.variants))
            self.fields(node.variants[tag][1], first=False)
            self.say("}")
        else:
            self.items(node, opened)

    def fields(self, node: Fields, first: bool) -> None:
        for n, (key, child) in enumerate(node.fields):
            self.say(("" if first and n == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ": ")
            self.value(child)

    def items(self, node: Items, opened: bool = False) -> None:
        """`[` then items: past `low`, the model chooses between `]` and the next item's first character
        (`{`, `[` or `"`, never `]`), which the item then continues."""
        self.say("" if opened else "[")
        opening = _first_character(node.item)
        for n in range(node.high):
            separator = ", " if n else ""
            if n >= node.low and self.choose(("]", separator + opening)) == 0:
                return
            if n < node.low:
                self.say(separator + opening)
            self.value(node.item, opened=True)
        self.say("]")


def _first_character(node) -> str:
    if isinstance(node, Choice):
        return node.options[0][0]
    if isinstance(node, Steps):
        return '"'
    return "{" if isinstance(node, (Fields, Tagged)) else "["


def _evaluate_prompt(llama, tokens: list[int]) -> None:
    """Evaluate `tokens`, reusing the longest prefix the model's KV cache already holds; the last
    token is always evaluated again so its logits are current."""
    cached = 0
    for held, wanted in zip(llama.input_ids[: llama.n_tokens], tokens):
        if held != wanted:
            break
        cached += 1
    llama.n_tokens = min(cached, len(tokens) - 1)
    llama.eval(tokens[llama.n_tokens :])  # eval drops the KV cache past n_tokens first


def decode_choices(
    llama, vocabulary: Vocabulary, prompt: list[int], node, repeat_penalty: float, last_n: int
) -> tuple[str, int]:
    """The reply to `prompt` confined to compiled schema `node`, and its token count."""
    bound = longest_reply(node)
    if len(prompt) + bound > llama.n_ctx():
        raise LLMError(
            f"local model rejected the request: {len(prompt)} prompt tokens and a reply of up to {bound} "
            f"tokens exceed the context window of {llama.n_ctx()}"
        )
    _evaluate_prompt(llama, prompt)
    decoder = _Decoder(llama, vocabulary, repeat_penalty, last_n)
    decoder.value(node)
    return decoder.finish(), decoder.generated
