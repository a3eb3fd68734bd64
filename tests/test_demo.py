"""The demo on the built-in sample (as on a machine without ../shared/data), through a hosted endpoint."""

from rich.console import Console
from schema_replies import schema_reply
from servers import reply_server, request_schema

from tasteprint.cli import demo


def test_demo_on_the_built_in_sample_shows_the_users_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "find_movielens", lambda explicit: None)
    console = Console(record=True, width=120)
    with reply_server(lambda body: schema_reply(body["messages"], request_schema(body))) as (base_url, _):
        options = {"llm": "openai", "model": "m", "base_url": base_url}
        demo.run_demo(console, data=None, user_ids=["ben", "nobody"], k=2, store=tmp_path, **options)
    shown = console.export_text()
    assert "built-in sample" in shown and "user ben" in shown  # the reader asked for, on a fresh store
    assert "user ana" not in shown and "user nobody" not in shown


def test_cli_recommend_says_when_the_llm_explains_but_does_not_rank(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tasteprint.cli import app
    from tasteprint.cli.demo import BUILT_IN

    runner = CliRunner()
    store = str(tmp_path / "store")
    assert runner.invoke(app, ["ingest", str(BUILT_IN), "--store", store]).exit_code == 0
    asked = []  # the system prompt of every request, to count the rerank calls

    def answer(body):
        asked.append(body["messages"][0]["content"])
        return schema_reply(body["messages"], request_schema(body))

    def reranks() -> int:
        return sum(system.startswith("You rank recommendation candidates") for system in asked)

    with reply_server(answer) as (base_url, _):
        options = ["--store", store, "--llm", "openai", "--model", "m", "--base-url", base_url]
        untuned = runner.invoke(app, ["recommend", "ana", "-k", "3", *options])
        reranks_untuned = reranks()
        monkeypatch.setenv("TASTEPRINT_RERANK_BLEND", "0.3")
        blended = runner.invoke(app, ["recommend", "ana", "-k", "3", *options])
    assert untuned.exit_code == 0 and blended.exit_code == 0, untuned.output + blended.output
    assert reranks_untuned == 0 and "the LLM explains but does not rank: the rerank blend is 0" in untuned.stderr
    assert reranks() == 1 and "does not rank" not in blended.stderr
