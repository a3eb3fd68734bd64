"""Greedy grammar-constrained sampling that checks the grammar on the chosen token first.

llama-cpp-python's sampler chain runs the grammar over the whole vocabulary (49,152 tokens for
SmolLM2) at every step, which makes constrained decoding far slower than raw decoding. llama.cpp's own
`common_sampler` avoids that: it picks the token without the grammar, asks the grammar about that one
token, and only when it is rejected filters the whole vocabulary. At temperature 0 both give the same
token (the best allowed token is the best token whenever the best token is allowed; only an exact tie
in score at the shortlist's edge could differ), so this
module does the same for greedy decoding: repetition penalty as llama.cpp applies it, argmax, one-token
grammar check; on rejection the best allowed token among the 64 best, and a pass over the whole
vocabulary only when none of those is allowed.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Iterable

import numpy as np

SHORTLIST = 64
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


def penalised_logits(ctx, idx: int, n_vocab: int, recent: Iterable[int], repeat_penalty: float) -> np.ndarray:
    """A copy of the logits of output `idx` (-1: the last) of llama-cpp-python context `ctx`, with
    llama.cpp's repetition penalty on the `recent` tokens (positive logits divided, negative multiplied)."""
    import llama_cpp

    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(n_vocab,)).copy()
    seen = np.fromiter(set(recent), dtype=np.int64)
    if repeat_penalty != 1.0 and len(seen):
        values = logits[seen]
        logits[seen] = np.where(values <= 0, values * repeat_penalty, values / repeat_penalty)
    return logits


class GreedyGrammarSampler:
    """Stands in for llama-cpp-python's `LlamaSampler` in `Llama.generate` (only `sample` is called)."""

    def __init__(self, llama, grammar, repeat_penalty: float, last_n: int):
        import llama_cpp

        self._api = llama_cpp
        self.n_vocab = llama.n_vocab()
        self.repeat_penalty = repeat_penalty
        self.recent: deque[int] = deque(maxlen=last_n)  # tokens sampled so far, as llama.cpp's penalties see
        self.grammar = None
        if grammar is not None:
            self.grammar = llama_cpp.llama_sampler_init_grammar(
                llama._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
        self.candidates = np.zeros(self.n_vocab, dtype=TOKEN_DATA)
        self.candidates["id"] = np.arange(self.n_vocab, dtype=np.int32)
        self.one = np.zeros(1, dtype=TOKEN_DATA)

    def __del__(self):
        if getattr(self, "grammar", None) is not None:
            self._api.llama_sampler_free(self.grammar)

    def _penalised(self, ctx, idx: int) -> np.ndarray:
        return penalised_logits(ctx, idx, self.n_vocab, self.recent, self.repeat_penalty)

    def _grammar_filter(self, data: np.ndarray) -> None:
        """Set the logit of every token in `data` the grammar rejects to -inf, in place."""
        array = self._api.llama_token_data_array(
            data=data.ctypes.data_as(self._api.llama_token_data_p), size=len(data), selected=-1, sorted=False
        )
        self._api.llama_sampler_apply(self.grammar, ctypes.byref(array))

    def _best_allowed(self, logits: np.ndarray) -> int:
        """The highest-scoring token the grammar allows: among the SHORTLIST best first (the best allowed
        token is almost always there), else over the whole vocabulary."""
        best = np.argpartition(-logits, SHORTLIST)[:SHORTLIST]
        shortlist = np.zeros(SHORTLIST, dtype=TOKEN_DATA)
        shortlist["id"], shortlist["logit"] = best, logits[best]
        self._grammar_filter(shortlist)
        if np.isfinite(shortlist["logit"]).any():
            return int(shortlist["id"][np.argmax(shortlist["logit"])])
        self.candidates["logit"] = logits
        self._grammar_filter(self.candidates)
        return int(np.argmax(self.candidates["logit"]))

    def sample(self, ctx, idx: int = -1) -> int:
        logits = self._penalised(ctx, idx)
        token = int(np.argmax(logits))
        if self.grammar is not None:
            self.one[0] = (token, logits[token], 0.0)
            self._grammar_filter(self.one)
            if not np.isfinite(self.one[0]["logit"]):
                token = self._best_allowed(logits)
            self._api.llama_sampler_accept(self.grammar, token)
        self.recent.append(token)
        return token
