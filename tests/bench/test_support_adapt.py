"""The adaptation benchmark's data: validation queries never overlap the test queries."""

from __future__ import annotations

import csv

import pytest

from bench.support_adapt import STACKFAQ, load_covidqa, load_stackfaq, subset


@pytest.mark.skipif(not STACKFAQ.exists(), reason=f"{STACKFAQ} not found (../shared/data)")
def test_stackfaq_validation_is_titles_and_the_first_half_of_paraphrases():
    data = load_stackfaq()
    assert len(data.docs) == 719 and len(data.test) == 624
    assert data.dev[0] == ("Strikethrough with GitHub Markdown", ("t000-a00", "t000-a01"))
    assert data.dev[1][0] == "How to make font strikethrough on github."
    assert not {q for q, _ in data.dev} & {q for q, _ in data.test}
    assert {g for _, gold in data.dev for g in gold} <= set(data.docs)
    small = subset(data, 10)
    assert small.dev and all(set(gold) <= set(small.docs) for _, gold in small.dev)


def test_covidqa_validation_asks_only_for_entries_no_test_query_asks_for(tmp_path):
    faq = [
        {"question": "What is a novel coronavirus?", "answer": "A new coronavirus."},
        {"question": "Can pets spread it?", "answer": "No evidence so far."},
        {"question": "How long does it survive?", "answer": "Hours to days on surfaces."},
    ]
    with (tmp_path / "faq_covidbert.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["question", "answer"])
        writer.writeheader()
        writer.writerows(faq)
    with (tmp_path / "eval_question_similarity_en.csv").open("w", newline="", encoding="utf-8") as fh:
        fh.write("question_1,question_2,similar\n")
        fh.write("What is a novel coronavirus?,What is a new coronavirus?,1\n")
        fh.write("Can pets spread it?,Is the sky blue?,0\n")
    data = load_covidqa(tmp_path)
    assert data.test == [("What is a new coronavirus?", ("faq-000",))]
    assert data.dev == [("Can pets spread it?", ("faq-001",)), ("How long does it survive?", ("faq-002",))]


def test_the_validation_questions_become_a_judge_file_of_every_passage_of_their_documents(tmp_path):
    from types import SimpleNamespace

    from apps.customer_service.retrieval_eval import read_queries
    from bench.support_adapt import DocSet, write_judge

    entries = [
        SimpleNamespace(id=i) for i in ("docs/t000-a00.txt#0", "docs/t000-a00.txt#1", "docs/t001-a00.txt")
    ]
    data = DocSet("x", {}, [], "", dev=[("a question", ("t000-a00",)), ("another", ("t000-a00", "t001-a00"))])
    judge = read_queries(write_judge(SimpleNamespace(entries=entries), data, tmp_path))
    assert [(q.query, q.gold_ids) for q in judge] == [
        ("a question", ("docs/t000-a00.txt#0", "docs/t000-a00.txt#1")),
        ("another", ("docs/t000-a00.txt#0", "docs/t000-a00.txt#1", "docs/t001-a00.txt")),
    ]
