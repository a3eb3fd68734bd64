"""Commands that recommend and explain: recommend, explain, chat."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ..errors import ConfigError
from ..render import (
    console,
    print_explanation,
    print_recommendations,
)
from .common import JsonOpt, Where, command, err_console


@command()
def recommend(
    user_id: Annotated[str, typer.Argument(help="user id")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="how many items")] = 10,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="retrieval order, no LLM")] = False,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="candidates the LLM reranks")] = 20,
    explanations: Annotated[
        str | None,
        typer.Option(
            "--explanations",
            help="auto | prose | slots: free reasons checked against the data, or reasons confined to the "
            "pick's facts by a grammar (auto: slots for the embedded model, prose for hosted ones)",
        ),
    ] = None,
    as_json: JsonOpt = False,
    *,
    where: Where,
):
    """Recommend unconsumed items, each with an explanation citing the user's own history."""
    tp = where.open(explanations=explanations)
    recommendations = tp.recommend(user_id, k=k, rerank=not no_rerank, n_candidates=candidates)
    if as_json:
        print(json.dumps([r.model_dump() for r in recommendations]))
        return
    print_recommendations(user_id, recommendations, tp.facts(user_id).item_titles)
    if tp.last_rerank and tp.last_rerank.stats.fallback:
        err_console.print(f"[yellow]rerank fell back to retrieval order:[/] {tp.last_rerank.stats.fallback}")
    elif not no_rerank and tp.last_rerank and tp.last_rerank.stats.passes == 0:
        err_console.print(
            "[dim]the LLM explains but does not rank: the rerank blend is 0 (untuned, or tuned to 0 on "
            "validation); `tasteprint fit --rerank-users N` tunes it, `TASTEPRINT_RERANK_BLEND` sets it[/]"
        )
    if reasons := tp.last_reasons:
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
        str,
        typer.Option(
            "--router",
            help="auto | rules | model: who reads each line; auto asks a tool-calling (hosted) model only "
            "for what the rules cannot read, model asks it first",
        ),
    ] = "auto",
    *,
    where: Where,
):
    """Talk about recommendations in plain language: why, more like, exclusions, newer/older, feedback,
    your profile, forget. Reads one line per message when stdin is not a terminal."""
    from ..chat import HELP, ChatSession

    if router not in ("auto", "rules", "model"):
        raise ConfigError(f"--router must be auto, rules or model, not {router!r}")
    tp = where.open()
    session = ChatSession(tp, rerank=not no_rerank, router=router)  # type: ignore[arg-type]
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
