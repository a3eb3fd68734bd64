"""Reads chat lines for a session: the catalogue's mentions, then the acts (`understanding`), with a
model consulted as the router setting says."""

from __future__ import annotations

from tasteprint.api import Tasteprint
from tasteprint.errors import LLMError
from tasteprint.llm import make_context

from .intents import TAKES_ARGUMENT, Router, choose_intent, route, route_by_model
from .mentions import MentionFinder
from .understanding import Act, SemanticRouter, Understanding, understand


class LineReader:
    """Understands lines against one store's catalogue; keeps why each model routing failed."""

    def __init__(self, tp: Tasteprint, router: Router = "auto"):
        self.tp = tp
        # rules: the old deterministic parser only. model: the model's tool call first. auto: the
        # examples, then the rules, then a hosted model that calls tools, or the local model choosing
        # only among the intents the examples left too close to call (the embedded 135M model routed
        # 2 of 8 plain requests right through llama.cpp's server when it chose among all of them).
        self.router = router
        self.failures: list[str] = []
        self._finder: tuple[int, MentionFinder] | None = None
        self._semantic: SemanticRouter | None = None

    def read(self, question: str, user_id: str | None = None, shown: list[str] = ()) -> Understanding:
        """The line's acts and mentions; `shown` is what was just listed ("the second")."""
        finder, semantic = self._readers()
        # Only which items they consumed (to resolve a shared name): no facts built on every line.
        history = set(self.tp.db.user_history(user_id)) if user_id else set()
        mentions = finder.find(question, history)
        if self.router == "rules":
            intent, argument = route(question)
            return Understanding([_rule_act(intent, argument, mentions)], mentions, "rules", argument)
        if self.router == "model" and (chosen := self._model_choice(question)):
            return Understanding([_rule_act(chosen, None, mentions)], mentions, "model")
        chooser = self._close_choice if self.router == "auto" else None
        return understand(question, mentions, semantic, chooser, list(shown))

    def _close_choice(self, question: str, close: list[str] | None) -> str | None:
        """A hosted model's tool call over every intent; the local model's pick among `close` (the
        intents the examples could not tell apart), confined to them. None when there is nothing to
        choose from, or the call failed (the failure's cause kept)."""
        if callable(getattr(self.tp.backend, "call_tool", None)):
            return self._model_choice(question)
        choices = [intent for intent in close or () if intent != "switch"]  # a user id comes from the rules
        if len(choices) < 2:
            return None
        try:
            return choose_intent(make_context(self.tp.settings, self.tp.backend), question, choices)
        except LLMError as exc:
            self.failures.append(f"{question!r}: {exc}")
            return None

    def _model_choice(self, question: str) -> str | None:
        """The intent the model's tool call chose, or None (the failure's cause kept): a call that fails, or
        names a title, label or user that does not exist."""
        try:
            chosen, named = route_by_model(self.tp.backend, question, self.tp.settings.prompts_dir)
        except (LLMError, ValueError, AttributeError) as exc:
            self.failures.append(f"{question!r}: {exc}")
            return None
        if named is not None and not self._exists(chosen, named):
            self.failures.append(f"{question!r}: the model chose {chosen} of {named!r}, which does not exist")
            return None
        return chosen

    def _exists(self, intent: str, named: str) -> bool:
        if intent == "switch":
            return self.tp.db.has_user(named)
        labels = {label.casefold() for label in self.tp.label_shares()}
        return named.casefold() in labels or bool(self.tp.find_items(named))

    def _readers(self) -> tuple[MentionFinder, SemanticRouter]:
        """The catalogue's mention finder (rebuilt when the data changes) and the semantic router."""
        version = self.tp.db.data_version()
        if self._finder is None or self._finder[0] != version:
            items = self.tp.db.items()
            labels = {v for item in items.values() for values in item.attributes.values() for v in values}
            fitted = self.tp.current_recommender()
            popularity = dict(zip(fitted.interactions.items, fitted.interactions.popularity)) if fitted else {}
            self._finder = (version, MentionFinder({i: it.title for i, it in items.items()}, labels, popularity))
        if self._semantic is None:
            tokenizer = getattr(getattr(self.tp.embed, "model", None), "tokenizer", None)
            vocabulary = set(tokenizer.get_vocab()) if tokenizer is not None else set()
            self._semantic = SemanticRouter(self.tp.embed, vocabulary)
        return self._finder[1], self._semantic


def _rule_act(intent: str, argument: str | None, mentions) -> Act:
    """An act from a router that reads no mentions itself (the rules, the model): its intent, naming
    the line's first title (or label) where the intent takes one."""
    if intent not in TAKES_ARGUMENT or intent == "switch":
        return Act(intent)
    item = next((m.key for m in mentions if m.kind == "item"), None)
    label = next((m.key for m in mentions if m.kind == "label"), None)
    if intent in ("exclude", "more") and label and not item:
        return Act(intent, label=label)
    return Act(intent, item_id=item) if item else Act(intent, query=argument)
