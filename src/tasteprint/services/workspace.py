"""The state every service shares over one store: its settings, SQLite database, the facts computed
from it, the embedder, the vector store, and the language model with the LLM stages built on it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tasteprint.config import ExplanationMode, Settings
from tasteprint.explain.chain import LLMStages
from tasteprint.explain.evidence import CitableHistory, HistoryLabels, nearest_history
from tasteprint.llm import CachedBackend, LLMBackend, make_backend
from tasteprint.models import Item, UserFacts
from tasteprint.profile.facts import FACTS_CACHED, MAX_LABEL_CHARS, FactBook
from tasteprint.storage.embeddings import Embedder
from tasteprint.storage.sqlite import Database
from tasteprint.storage.vectors import VectorStore, index_items


class Workspace:
    """One store's shared state, created lazily where it is costly (the model, the vector store)."""

    def __init__(self, settings: Settings, backend: LLMBackend | None = None):
        self.settings = settings
        self.store = Path(settings.store)
        self.db = Database(self.store)
        self.factbook = FactBook(self.db)
        self.embed = Embedder()
        self._backend = backend
        self._vectors: VectorStore | None = None
        self._indexed_version: int | None = None
        self._stages: dict[tuple[bool, str], LLMStages] = {}  # (with the model, explanations), for the current facts
        self._label_items: tuple[int, dict[str, set[str]]] | None = None
        self._item_vectors: dict[str, np.ndarray] = {}  # read from the vector store on first use
        # user -> (the facts their labels were built from, the labels), least recently used first
        self._history_labels: OrderedDict[str, tuple[UserFacts, HistoryLabels]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def backend(self) -> LLMBackend:
        """The language model, created on first use so that ingest never loads one; its responses are
        cached in the store unless `llm_cache` is off."""
        if self._backend is None:
            self._backend = make_backend(self.settings)
        if self.settings.llm_cache and not isinstance(self._backend, CachedBackend):
            self._backend = CachedBackend(self._backend, self.db.responses)
        return self._backend

    def stages(self, model: bool = True, explanations: ExplanationMode | None = None) -> LLMStages:
        """The LLM stages over this store's settings and catalogue labels (with `explanations`, who
        words reasons, in place of the setting's); with `model` False they hold no backend, so they keep
        the fitted order and template sentences and never load a model."""
        key = (model, explanations or self.settings.explanations)
        if key not in self._stages:
            backend = self.backend if model else None
            settings = self.settings.model_copy(update={"explanations": key[1]})
            self._stages[key] = LLMStages.from_settings(settings, backend, set(self.factbook.global_shares))
        return self._stages[key]

    @property
    def vectors(self) -> VectorStore:
        """The store's item and profile embeddings (Chroma, local or the configured server)."""
        if self._vectors is None:
            self._vectors = VectorStore(self.store, self.settings.chroma_url)
            if self._vectors.rebuilt:
                self.index()  # an unreadable folder was replaced by an empty one: fill it now
        return self._vectors

    def label_items(self) -> dict[str, set[str]]:
        """Every label a profile can show -> the items carrying it, read once per data version (tags
        arrive as feedback too, which keeps the version: a new tag counts from the next ingest)."""
        version = self.db.data_version()
        if self._label_items is None or self._label_items[0] != version:
            self._label_items = (version, self.db.label_items(MAX_LABEL_CHARS))
        return self._label_items[1]

    def refresh_facts(self) -> None:
        """Recompute the catalogue-wide facts (label shares, generic aspects) after the data changed."""
        self.factbook = FactBook(self.db)
        self._stages.clear()  # their vocabulary is the catalogue's labels

    def index(self, progress: bool = True) -> int:
        """Embed catalogue items missing from the vector store; returns how many were added.

        Checked once per data version in this process, so recommend and explain stay cheap.
        """
        version = self.db.data_version()
        if self._indexed_version == version:
            return 0
        added = index_items(self.vectors, self.db.items(), self.embed, progress=progress)
        self._indexed_version = version
        return added

    def evidence(
        self,
        facts: UserFacts,
        item_ids: list[str],
        items: dict[str, Item],
        together: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, list[str]]:
        """For each item, the user's nearest (not disliked) history items: the citations it may use.
        `together` (item -> history item -> people who consumed both, counted in the fitted data) lets
        an item that shares nothing else cite what it was consumed with."""
        labels = self.history_labels(facts)
        vectors = self.item_vectors(list(item_ids) + labels.ids)
        history = CitableHistory(facts, vectors, labels)
        together = together or {}
        return {i: nearest_history(vectors.get(i), history, items.get(i), together=together.get(i)) for i in item_ids}

    def history_labels(self, facts: UserFacts) -> HistoryLabels:
        """The labels and ratings of the user's citable history, built once per facts object (the
        factbook rebuilds the facts when the history changes); kept for as many users as the facts."""
        with self._lock:
            kept = self._history_labels.get(facts.user_id)
            if kept is not None and kept[0] is facts:
                self._history_labels.move_to_end(facts.user_id)  # least recently used go first, as facts do
                return kept[1]
        labels = HistoryLabels(facts)
        with self._lock:
            self._history_labels[facts.user_id] = (facts, labels)
            self._history_labels.move_to_end(facts.user_id)
            while len(self._history_labels) > FACTS_CACHED:
                self._history_labels.popitem(last=False)
        return labels

    def item_vectors(self, item_ids: list[str]) -> dict[str, np.ndarray]:
        """The items' embeddings, read from the vector store once each and kept in memory (an item's
        embedding is written once, when it is indexed)."""
        missing = [i for i in dict.fromkeys(item_ids) if i not in self._item_vectors]
        if missing:
            self._item_vectors |= self.vectors.item_vectors(missing)
        return {i: self._item_vectors[i] for i in item_ids if i in self._item_vectors}

    def close(self) -> None:
        self.db.close()
