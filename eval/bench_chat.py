"""Benchmark: how well the chat reads what people say. On the paraphrase set (`tests/data/paraphrases.txt`,
written for the tests): intent accuracy with the per-intent confusion, subject linking and stance
errors. On the ReDial development conversations (`../shared/data/redial-dev`, CC BY 4.0): each
seeker line that names one film found in the catalogue, its title typed in place of the film's
marker, must have that film among the line's subjects, and its stance must not contradict the
seeker's own label (liked against disliked; "did not say" and neutral are not errors). The last line
is JSON.

    .venv/bin/python eval/bench_chat.py --data ../shared/data/ml-latest-small
"""

from __future__ import annotations

import argparse
import html
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasteprint import Tasteprint
from tasteprint.chat.mentions import title_forms
from tasteprint.chat.session import ChatSession

ROOT = Path(__file__).resolve().parents[1]
PARAPHRASES = ROOT / "tests" / "data" / "paraphrases.txt"
MARKER = re.compile(r"@(\d+)")
YEAR = re.compile(r"\((\d{4})\)\s*$")


def read_paraphrases(path: Path = PARAPHRASES) -> list[dict]:
    """The set's lines as {"intent", "text", "films": {title: stance}, "labels": {label: stance}}."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        intent, text, films, labels = (part.strip() for part in line.split("|"))

        def pairs(field: str) -> dict[str, str]:
            return dict(p.rsplit("=", 1) for p in (x.strip() for x in field.split(";")) if p)

        rows.append({"intent": intent, "text": text, "films": pairs(films), "labels": pairs(labels)})
    return rows


def paraphrase_figures(session: ChatSession, titles: dict[str, str]) -> dict:
    rows = read_paraphrases()
    confusion: Counter = Counter()
    intents_right = subjects_right = stance_checked = stance_wrong = 0
    readers: Counter = Counter()  # (who understood the line, whether its intent was right)
    for row in rows:
        understood = session.read(row["text"])
        confusion[(row["intent"], understood.intent)] += 1
        intents_right += understood.intent == row["intent"]
        readers[(understood.understood_by, understood.intent == row["intent"])] += 1
        got = {titles[m.key]: m.stance for m in understood.mentions if m.kind == "item"}
        got_labels = {m.key: m.stance for m in understood.mentions if m.kind == "label"}
        subjects_right += set(got) == set(row["films"])
        for wanted, found in ((row["films"], got), (row["labels"], got_labels)):
            for name, stance in wanted.items():
                if name in found:
                    stance_checked += 1
                    stance_wrong += found[name] != stance
    per_intent = {}
    for intent in sorted({r["intent"] for r in rows}):
        total = sum(n for (want, _), n in confusion.items() if want == intent)
        wrong = {got: n for (want, got), n in confusion.items() if want == intent and got != intent}
        per_intent[intent] = {"accuracy": round(confusion[(intent, intent)] / total, 3), "confused_with": wrong}
    return {
        "lines": len(rows),
        "intent_accuracy": round(intents_right / len(rows), 4),
        "subject_accuracy": round(subjects_right / len(rows), 4),
        "polarity_errors": round(stance_wrong / max(stance_checked, 1), 4),
        "per_intent": per_intent,
        "understood_by": {
            by: {"lines": readers[(by, True)] + readers[(by, False)], "right": readers[(by, True)]}
            for by in sorted({by for by, _ in readers})
        },
    }


def redial_lines(folder: Path, titles: dict[str, str]) -> list[tuple[str, str, int]]:
    """(line, catalogue item id, the seeker's liked label) for each seeker line naming one film that the
    catalogue holds (matched by name and year), the title typed in place of its marker."""
    by_name: dict[tuple[str, str], str] = {}
    for item_id, title in titles.items():
        if year := YEAR.search(title):
            for form in title_forms(title):
                by_name.setdefault((form, year.group(1)), item_id)
    found = []
    for raw in (folder / "dev_data.jsonl").read_text().splitlines():
        conversation = json.loads(raw)
        seeker, labels = conversation["initiatorWorkerId"], conversation.get("initiatorQuestions") or {}
        for message in conversation["messages"]:
            named = MARKER.findall(message["text"])
            if message["senderWorkerId"] != seeker or len(named) != 1:
                continue
            mentioned = conversation["movieMentions"].get(named[0]) or ""
            year = YEAR.search(mentioned)
            name = " ".join(YEAR.sub("", mentioned).split())
            item_id = next((by_name.get((f, year.group(1))) for f in title_forms(mentioned) if year), None)
            if item_id is None or not name:
                continue
            line = html.unescape(MARKER.sub(name, message["text"]))
            liked = labels.get(named[0], {}).get("liked", 2) if isinstance(labels, dict) else 2
            found.append((line, item_id, liked))
    return found


def redial_figures(session: ChatSession, lines: list[tuple[str, str, int]]) -> dict:
    linked = stance_errors = judged = 0
    for line, item_id, liked in lines:
        mention = next((m for m in session.read(line).mentions if m.kind == "item" and m.key == item_id), None)
        if mention is None:
            continue
        linked += 1
        if liked in (0, 1):
            judged += 1
            stance_errors += mention.stance == ("disliked" if liked == 1 else "liked")
    return {
        "dev_lines": len(lines),
        "dev_linked": round(linked / max(len(lines), 1), 4),
        "dev_stance_errors": round(stance_errors / max(judged, 1), 4),
        "dev_stance_judged": judged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ml-latest-small"))
    parser.add_argument("--redial", default=str(ROOT.parent / "shared" / "data" / "redial-dev"))
    parser.add_argument("--store", default=None, help="an ingested store to reuse (default: ingest --data)")
    args = parser.parse_args()
    console = Console(stderr=True)
    started = time.perf_counter()
    tp = Tasteprint(store=Path(args.store or tempfile.mkdtemp(prefix="bench-chat-")))
    if args.store is None:
        tp.ingest(args.data)
    session = ChatSession(tp, rerank=False, router="auto")
    titles = {i: item.title for i, item in tp.db.items().items()}
    figures = paraphrase_figures(session, titles)
    read_started = time.perf_counter()
    lines = redial_lines(Path(args.redial), titles)
    figures |= redial_figures(session, lines)
    figures["ms_per_line"] = round(1000 * (time.perf_counter() - read_started) / max(len(lines), 1), 1)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    table = Table(title="chat understanding")
    table.add_column("intent")
    table.add_column("accuracy", justify="right")
    table.add_column("confused with")
    for intent, row in figures["per_intent"].items():
        table.add_row(intent, f"{row['accuracy']:.3f}", ", ".join(f"{k} {v}" for k, v in row["confused_with"].items()))
    console.print(table)
    console.print({k: v for k, v in figures.items() if k != "per_intent"})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
