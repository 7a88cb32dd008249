"""A fair sample of asked questions to label (`aigc support sample-questions`), and reading it back."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from apps.customer_service.cli import app
from apps.customer_service.errors import SourceError
from apps.customer_service.eval_queries import read_queries
from apps.customer_service.question_sample import sample_questions, write_question_sample
from apps.customer_service.storage import SupportStore
from core.auth import audit_events
from tests.apps.customer_service.test_storage import answer

runner = CliRunner()
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def asked(question: str, minutes: int, retrieved: list[str] | None = None) -> dict:
    return {
        "question": question,
        "asked_at": T0 + timedelta(minutes=minutes),
        "conversation_id": "c",
        "route": "faq",
        "retrieved": retrieved or [],
    }


def test_the_sample_is_uniform_over_distinct_questions_seeded_and_oldest_first():
    rows = [asked(f"question {i}", i) for i in range(50)] + [asked("  Question 7 ", 60)]  # a repeat
    first = sample_questions(rows, 10, seed=1)
    assert len(first) == 10 and first == sample_questions(rows, 10, seed=1)
    assert first != sample_questions(rows, 10, seed=2)
    assert [r["asked_at"] for r in first] == sorted(r["asked_at"] for r in first)
    everything = sample_questions(rows, 500)
    assert len(everything) == 50  # the repeat counts once (its latest asking)
    assert sum(r["question"].strip().lower() == "question 7" for r in everything) == 1
    # uniform: over many seeds every question is drawn about equally often (10 of 50: 20 % each)
    counts = {r["question"]: 0 for r in everything}
    for seed in range(400):
        for r in sample_questions(rows, 10, seed=seed):
            counts[r["question"]] += 1
    assert min(counts.values()) > 50 and max(counts.values()) < 115  # expected 80 each
    with pytest.raises(ValueError, match="must be >= 1"):
        sample_questions(rows, 0)


def test_the_labelling_file_reads_back_as_a_judge_once_labelled(tmp_path):
    rows = [
        asked("how do i return shoes", 1, ["ret-01", "ret-03"]),
        asked('=HYPERLINK("http://x.example","refund")', 2, ["ret-03"]),
        asked("what is the capital of peru", 3),
    ]
    out = write_question_sample(rows, tmp_path / "sample.csv")
    with out.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["query", "gold_ids", "retrieved", "route", "asked_at"]
    assert [r["gold_ids"] for r in table] == ["", "", ""] and table[0]["retrieved"] == "ret-01;ret-03"
    assert table[1]["query"].startswith("'=HYPERLINK")  # opened in a spreadsheet: text, not a formula
    assert table[0]["asked_at"] == "2026-12-01 09:01:00"
    with pytest.raises(SourceError, match=r"line 2\), field .gold_ids.: is empty"):
        read_queries(out)  # an unlabelled file is no evaluation set
    table[0]["gold_ids"] = "ret-01"  # the team labels what it can; peru stays empty
    table[1]["gold_ids"] = "ret-03"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    judged = read_queries(out, kb={"ret-01", "ret-03"}, skip_unlabelled=True)
    assert [(q.query, q.gold_ids) for q in judged][0] == ("how do i return shoes", ("ret-01",))
    assert len(judged) == 2
    with pytest.raises(ValueError, match=r"\.csv"):
        write_question_sample(rows, tmp_path / "sample.json")


def test_cli_draws_from_the_kb_of_the_conversations_and_audits_the_export(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    store = SupportStore()
    conv = store.start_conversation("t", kb=kb)
    for i in range(6):
        store.add_exchange(conv, f"when do i get refund number {i}", answer("Within 5 days."))
    elsewhere = store.start_conversation("o", kb=tmp_path / "other")
    store.add_exchange(elsewhere, "not this KB", answer("Yes."))
    store.engine.dispose()
    out = tmp_path / "label-me.csv"
    result = runner.invoke(
        app, ["sample-questions", "--kb-dir", str(kb), "-n", "4", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"rows": 4, "asked": 6, "path": str(out)}
    with out.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and all(r["query"].startswith("when do i get refund") for r in table)
    assert all(r["retrieved"] == "ret-03;ret-01" and r["route"] == "faq" for r in table)
    exported = [e for e in audit_events() if e["action"] == "questions_export"]
    assert exported and exported[0]["details"]["rows"] == 4

    result = runner.invoke(app, ["sample-questions", "--kb-dir", str(kb), "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2 and ".csv" in result.output and not (tmp_path / "x.xlsx").exists()
    result = runner.invoke(
        app, ["sample-questions", "--kb-dir", str(kb), "--out", str(out), "--since", "soon"]
    )
    assert result.exit_code == 2 and "not a date" in result.output
