"""Commands that recommend and explain: recommend, explain, chat."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from tasteprint.chat.intents import Router
from tasteprint.config import ExplanationMode

from .common import CandidatesOpt, JsonOpt, KOpt, Where, command, err_console
from .render import (
    console,
    print_explanation,
    print_recommendations,
)


@command()
def recommend(
    user_id: Annotated[str, typer.Argument(help="user id")],
    k: KOpt = 10,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="retrieval order, no LLM")] = False,
    candidates: CandidatesOpt = None,
    explanations: Annotated[
        ExplanationMode | None,
        typer.Option(
            "--explanations",
            help="prose: free reasons checked against the data; slots: reasons confined to the pick's facts by "
            "a grammar; auto: slots for the embedded model, prose for hosted ones [env TASTEPRINT_EXPLANATIONS]",
        ),
    ] = None,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Recommend unconsumed items, each with an explanation citing the user's own history."""
    tp = where.open(explanations=explanations, candidates=candidates)
    result = tp.recommend(user_id, k=k, rerank=not no_rerank)
    if as_json:
        print(json.dumps([r.model_dump() for r in result.recommendations]))
        return
    print_recommendations(user_id, result.recommendations, tp.facts(user_id).item_titles)
    if result.rerank.fallback:
        err_console.print(f"[yellow]rerank fell back to retrieval order:[/] {result.rerank.fallback}")
    elif not no_rerank and result.rerank.passes == 0:
        err_console.print(
            "[dim]the LLM explains but does not rank: the rerank blend is 0 (untuned, or tuned to 0 on "
            "validation); `tasteprint fit --rerank-users N` tunes it, `TASTEPRINT_RERANK_BLEND` sets it[/]"
        )
    if reasons := result.reasons:
        err_console.print(
            f"reasons ({reasons.mode}): {reasons.kept} by the model, {reasons.replaced} replaced by the template"
            + "".join(f"\n  {i}: {problem}" for i, problem in reasons.problems.items())
            + (f"\n  the call failed: {reasons.fallback}" if reasons.fallback else "")
        )


@command()
def explain(
    user_id: Annotated[str, typer.Argument(help="user id")],
    item_id: Annotated[str, typer.Argument(help="item id, recommended or not")],
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Explain how an item relates to a user's history."""
    tp = where.open()
    explanation = tp.explain(user_id, item_id)
    if as_json:
        print(explanation.model_dump_json())
        return
    print_explanation(user_id, explanation, tp.facts(user_id).item_titles)


@command()
def chat(
    user: Annotated[str | None, typer.Option("--user", help="start as this user")] = None,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="recommend without the LLM rerank")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per input line")] = False,
    router: Annotated[
        Router,
        typer.Option(
            "--router",
            help="who reads each line: auto asks a tool-calling (hosted) model only for what the rules "
            "cannot read, model asks it first",
        ),
    ] = "auto",
    *,
    where: Where,
):
    """Talk about recommendations in plain language: why, more like, exclusions, newer/older, feedback,
    your profile, forget. Reads one line per message when stdin is not a terminal."""
    from tasteprint.chat.intents import HELP
    from tasteprint.chat.session import ChatSession

    tp = where.open()
    session = ChatSession(tp, rerank=not no_rerank, router=router)
    interactive = sys.stdin.isatty() and not as_json
    if user is not None:
        greeting = session.switch(user)
        if not as_json:
            console.print(greeting)
    if interactive:
        console.print(HELP)
    while True:
        try:
            line = console.input("[bold]> [/]") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive:
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if not as_json:
                console.print(f"> {line}")
        turn = session.turn(line)
        if as_json:
            print(turn.model_dump_json(), flush=True)
        else:
            console.print(turn.reply, markup=False, highlight=False)
        if turn.intent == "quit":
            break
