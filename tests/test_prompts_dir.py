"""A user's own templates (`TASTEPRINT_PROMPTS_DIR`) reach every LLM stage: the evaluation's and the
fit's blend tuning included, which once built their chain without them."""

import shutil

from rich.console import Console
from schema_replies import schema_reply

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN
from tasteprint.config import Settings
from tasteprint.evaluation.runner import EvalConfig, run_eval
from tasteprint.llm import ScriptedBackend
from tasteprint.llm.prompting import PACKAGE_PROMPTS

MARKER = "Custom template in use: answer as the house style asks."


def custom_prompts(tmp_path):
    """A copy of the packaged templates whose system prompts all open with MARKER."""
    folder = tmp_path / "prompts"
    shutil.copytree(PACKAGE_PROMPTS, folder)
    for path in folder.glob("*_system.j2"):
        path.write_text(MARKER + "\n" + path.read_text())
    return folder


def system_prompts(backend: ScriptedBackend) -> list[str]:
    return [messages[0]["content"] for messages, _ in backend.history]


def test_eval_sends_the_custom_templates(tmp_path, monkeypatch):
    monkeypatch.setenv("TASTEPRINT_PROMPTS_DIR", str(custom_prompts(tmp_path)))
    backend = ScriptedBackend([schema_reply] * 500)
    config = EvalConfig(path=BUILT_IN, out=tmp_path / "R", protocols=["loo"], methods=["tasteprint"], sample=2)
    settings = Settings.load(store=tmp_path / "store", rerank_blend=0.5)
    run_eval(config, settings, Console(quiet=True), backend)
    prompts = system_prompts(backend)
    # Two users, each with a profile draft, its summary, a rerank and the reasons: all custom.
    assert len(prompts) >= 8 and all(p.startswith(MARKER) for p in prompts)
    assert any("rank recommendation candidates" in p for p in prompts)


def test_fit_rerank_users_sends_the_custom_templates(tmp_path, monkeypatch):
    monkeypatch.setenv("TASTEPRINT_PROMPTS_DIR", str(custom_prompts(tmp_path)))
    backend = ScriptedBackend([schema_reply] * 500)
    tp = Tasteprint(store=tmp_path / "store", llm=backend)
    tp.ingest(BUILT_IN)
    report = tp.fit(progress=False, rerank_users=2)
    assert report.rerank_gain is not None and report.rerank_gain["users"] >= 1
    prompts = system_prompts(backend)
    # Each judged user: a profile draft, its summary and a rerank, all with the custom templates.
    assert len(prompts) >= 3 and all(p.startswith(MARKER) for p in prompts)
    assert any("rank recommendation candidates" in p for p in prompts)
