"""What a chat line asks for: an intent (recommend, why, more like, exclude...) and its argument (a
title, label or user id). Two routers: deterministic rules that read paraphrases, and, for a hosted
model that can call tools, the model's own choice through one forced OpenAI tool call whose
arguments are validated before anything acts on them. `choose_intent` asks a model (the local one
among them) to pick one of a few intents, confined to them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, create_model

from tasteprint.llm import LLMContext, generate
from tasteprint.llm.prompting import chat

_TITLE = r"[\"']?(.+?)[\"']?\s*[.!?]*\s*$"
_NOT = r"(?:did\s*n[o']?t|didn't|do\s*n[o']?t|don't|did not|do not)"
# First match wins: specific intents before the catch-all "recommend".
PATTERNS: list[tuple[str, str]] = [
    ("quit", r"^\s*(quit|exit|bye|goodbye)\b"),
    ("switch", r"\b(?:switch|change)\s+(?:to\s+)?user\s+(\S+?)[.!?]?\s*$|^\s*user\s+(\S+?)[.!?]?\s*$"),
    ("clear", r"\b(clear|reset|drop|remove)\s+(?:the\s+|all\s+|my\s+)?(filters?|constraints?|exclusions?)\b"),
    ("forget", r"^\s*(?:please\s+)?(?:forget|remove|delete)\s+(?:about\s+)?" + _TITLE),
    (
        "disliked",
        rf"\bi\s+{_NOT}\s+(?:really\s+)?(?:like|enjoy|love)\s+{_TITLE}"
        rf"|\bi\s+(?:hated|disliked|hate|dislike|couldn't stand)\s+{_TITLE}",
    ),
    (
        "why",
        r"\bwhy\b.*?\b(?:recommend(?:ed)?|suggest(?:ed)?|pick(?:ed)?|enjoy|like|love|watch|read|want)\s+"
        r"(?:me\s+)?" + _TITLE,
    ),
    ("liked", r"\bi\s+(?:really\s+)?(?:loved|liked|enjoyed|adored|love|like|enjoy)\s+(?!something|anything)" + _TITLE),
    ("profile", r"\b(what do you know about me|my profile|who am i|my taste|describe me|about me)\b"),
    (
        "exclude",
        r"\b(?:nothing|no more|no|not|without|avoid|skip|exclude)\s+(?:with\s+|more\s+|any\s+)?(?:of\s+)?"
        r"(?:the\s+)?[\"']?(.+?)[\"']?(?:\s+please)?\s*[.!?]*\s*$",
    ),
    (
        "like",
        r"\b(?:more\s+like|in\s+the\s+spirit\s+of|similar\s+to|something\s+like|along\s+the\s+lines\s+of)\s+" + _TITLE,
    ),
    ("newer", r"\b(newer|more\s+recent|recent|latest|modern)\b"),
    ("older", r"\b(older|classics?|earlier|vintage|old)\b"),
    ("different", r"\b(something|anything)\s+(different|new)\b|\bdifferent\b"),
    ("recommend", r"\b(recommend|suggest|what should i|give me|what else|another|more|ideas?)\b"),
]
ROUTES = [(intent, re.compile(pattern, re.I)) for intent, pattern in PATTERNS]
TAKES_ARGUMENT = {"switch", "forget", "disliked", "why", "liked", "exclude", "like", "more"}


def route(question: str) -> tuple[str, str | None]:
    """The intent of a line and its argument (a title, label or user id), or ("help", None)."""
    for intent, pattern in ROUTES:
        if match := pattern.search(question):
            if intent not in TAKES_ARGUMENT:
                return intent, None
            return intent, next((g.strip() for g in match.groups() if g), None)
    return "help", None


INTENTS = {
    "recommend": "suggest items for the person",
    "why": "explain why a named item would suit them (argument: the title)",
    "like": "suggest items like a named one (argument: the title)",
    "exclude": "leave out a label or a title from now on (argument: the label or title)",
    "more": "more items with a label (argument: the label)",
    "newer": "suggest more recent items",
    "older": "suggest older items",
    "different": "suggest something unlike what was just shown",
    "liked": "they liked or loved a named item (argument: the title)",
    "disliked": "they did not like a named item (argument: the title)",
    "profile": "say what is known about them",
    "forget": "remove a named item from their history (argument: the title)",
    "clear": "drop every exclusion and year bound",
    "switch": "talk about another user (argument: the user id)",
    "quit": "end the conversation",
    "wish": "a description of what they want, in their own words",
    "help": "the request is none of these",
}
Intent = Literal[tuple(INTENTS)]  # type: ignore[valid-type]
# Who reads a chat line: the rules, with the model only for what they cannot read (auto), or the model first.
Router = Literal["auto", "rules", "model"]


class ToolChoice(BaseModel):
    """The model's reading of a line, validated before the session acts on it."""

    intent: Intent
    argument: str | None = Field(default=None, max_length=200)


ROUTE_TOOL = {
    "type": "function",
    "function": {
        "name": "act",
        "description": "Choose what to do for the person's request. "
        + "; ".join(f"{name}: {what}" for name, what in INTENTS.items()),
        "parameters": {
            "type": "object",
            "properties": {
                "intent": {"type": "string", "enum": list(INTENTS)},
                "argument": {"type": "string", "description": "the title, label or user id it names, or empty"},
            },
            "required": ["intent", "argument"],
        },
    },
}


def route_by_model(backend, question: str, prompts_dir=None) -> tuple[str, str | None]:
    """The intent and argument a tool-calling model chose for `question`.

    Raises:
        LLMError: the call failed or made no call; ValueError (pydantic's ValidationError among them):
        the arguments are not an intent and an argument, or an intent that needs one came without it.
    """
    messages = chat("route_system.j2", "route_user.j2", prompts_dir, request=question)
    choice = ToolChoice.model_validate(backend.call_tool(messages, ROUTE_TOOL))
    argument = (choice.argument or "").strip() or None
    if choice.intent in TAKES_ARGUMENT and argument is None:
        raise ValueError(f"intent {choice.intent!r} needs an argument")
    return choice.intent, argument if choice.intent in TAKES_ARGUMENT else None


def choose_intent(llm: LLMContext, question: str, choices: list[str]) -> str:
    """The intent among `choices` (at least two) that the model reads in `question`; the reply is
    confined to `choices` (a grammar for the local model, the schema for a hosted one).

    Raises:
        LLMError: the call failed, or no reply validated.
    """
    described = {intent: INTENTS[intent] for intent in choices}
    messages = chat("intent_system.j2", "intent_user.j2", llm.prompts_dir, request=question, choices=described)
    # Validated against `choices` too: a backend that only asks for the schema may answer outside it.
    choice = create_model("IntentChoice", intent=(Literal[tuple(choices)], ...))
    reply = generate(llm.backend, messages, choice, max_tokens=16, temperature=0.0)
    return reply.value.intent


HELP = (
    "Ask me: 'recommend something', 'why would I like <title>?', 'more like <title>', 'nothing with <label>', "
    "'something newer' / 'older', 'I loved <title>' / 'I didn't like <title>', 'what do you know about me?', "
    "'forget <title>', 'clear filters', 'switch to user <id>', or 'quit'."
)
