"""The demo on the built-in sample (as on a machine without ../shared/data), through a hosted endpoint."""

from rich.console import Console

from tasteprint import demo

from schema_replies import schema_reply
from servers import reply_server, request_schema


def test_demo_on_the_built_in_sample_shows_the_users_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "find_movielens", lambda explicit: None)
    console = Console(record=True, width=120)
    with reply_server(lambda body: schema_reply(body["messages"], request_schema(body))) as (base_url, _):
        options = {"llm": "openai", "model": "m", "base_url": base_url}
        demo.run_demo(console, data=None, user_ids=["ben", "nobody"], k=2, store=tmp_path, **options)
    shown = console.export_text()
    assert "built-in sample" in shown and "user ben" in shown  # the reader asked for, on a fresh store
    assert "user ana" not in shown and "user nobody" not in shown
