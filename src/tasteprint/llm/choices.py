"""Greedy decoding of a finite JSON reply, with the tokens it forces evaluated in batches.

A schema that is an object of required string properties, each with an `enum`, allows finitely many
replies: the object's fixed text with one listed value per property. Grammar-constrained decoding
spends a full model step on every token (about 18 ms for SmolLM2-135M on this project's 2 cores), even
where only one token is allowed, and most of a reply such as
`{"2916": "You liked Jurassic Park (1993); both are Sci-Fi and Thriller."}` is forced that way. Here
the text all still-possible values share is forced and evaluated in one batch (about 5 ms a token in
runs of 8-16), and where they part the model's highest-scoring allowed token decides, with the
repetition penalty the greedy grammar sampler applies: greedy decoding confined to the same language,
as the grammar path decodes it, except that forced text is tokenized as the tokenizer would.
"""

from __future__ import annotations

import json
import os
from collections import deque

from ..errors import LLMError
from .sampling import penalised_logits

Parts = list[list[str]]


def enum_parts(schema: dict | None) -> Parts | None:
    """The reply as a sequence of parts, each the list of texts allowed there (one for fixed text), or
    None when `schema` is not an object whose properties are all required strings with an `enum`."""
    if not schema or schema.get("type") != "object" or schema.get("additionalProperties") not in (None, False):
        return None
    properties = schema.get("properties") or {}
    if not properties or set(schema.get("required", ())) != set(properties):
        return None
    parts: Parts = []
    for n, (name, spec) in enumerate(properties.items()):
        values = spec.get("enum") if isinstance(spec, dict) else None
        if spec.get("type") != "string" or not values or not all(isinstance(v, str) for v in values):
            return None
        parts.append([("{" if n == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ":"])
        # The space leads the value, where the tokenizer attaches it to the opening quote.
        parts.append([" " + json.dumps(v, ensure_ascii=False) for v in dict.fromkeys(values)])
    parts.append(["}"])
    return parts


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

    def round_trips(self) -> bool:
        """Whether tokenizing and detokenizing gives back the text, which `decode_choices` relies on."""
        sample = ' {"id": "Caf\u00e9, The (1999); both are Sci-Fi and 1980s."}'.encode()
        return b"".join(self.text[t] for t in self.tokenize(sample)) == sample

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


def decode_choices(
    llama, vocabulary: Vocabulary, prompt: list[int], parts: Parts, repeat_penalty: float, last_n: int
) -> tuple[str, int]:
    """The reply (one text chosen from each part, joined) and its token count. See the module doc.

    At a branch every token whose text begins a live alternative is allowed, as a grammar allows it
    (so the model may end a sentence with "." before the closing quote, although `."` is one token when
    the whole value is tokenized). Text all live alternatives share is forced, tokenized as the
    tokenizer would, except its last token, which might merge with what follows and so is left to the
    model. JSON quoting makes a property's values prefix-free, so no value ends inside another."""
    reply_bound = sum(max(len(text.encode("utf-8")) for text in part) for part in parts)  # tokens <= bytes
    if len(prompt) + reply_bound > llama.n_ctx():
        raise LLMError(
            f"local model rejected the request: {len(prompt)} prompt tokens and a reply of up to {reply_bound} "
            f"tokens exceed the context window of {llama.n_ctx()}"
        )
    _evaluate_prompt(llama, prompt)
    n_vocab = llama.n_vocab()
    pending: list[int] = []  # forced tokens not evaluated yet: evaluated together at the next branch
    recent: deque[int] = deque(maxlen=last_n)  # what the repetition penalty looks back on
    generated = 0
    chosen = []
    for part in parts:
        live = {n: text.encode("utf-8") for n, text in enumerate(part)}  # what is left of each alternative
        while any(live.values()):
            rests = list(live.values())
            forced = vocabulary.tokenize(os.path.commonprefix(rests))
            if len(live) > 1:
                forced = forced[:-1]
            if not forced:
                if pending:
                    llama.eval(pending)
                    pending = []
                logits = penalised_logits(llama._ctx, -1, n_vocab, recent, repeat_penalty)
                forced = [max(vocabulary.starting(rests), key=lambda t: (logits[t], -t))]
            taken = b"".join(vocabulary.text[t] for t in forced)
            live = {n: rest[len(taken) :] for n, rest in live.items() if rest.startswith(taken)}
            if not live:
                raise LLMError("the local model's tokenizer does not give back the text it tokenized")
            pending += forced
            recent.extend(forced)
            generated += len(forced)
        chosen.append(part[next(iter(live))])
    # The tokens still pending end the reply: nothing is decoded after them, so they are not evaluated.
    return "".join(chosen), generated
