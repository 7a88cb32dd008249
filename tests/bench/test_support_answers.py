"""Fast checks of the StackFAQ answer benchmark that need no ../shared data."""

from __future__ import annotations

import pytest

from apps.customer_service.confidence import read_out_of_scope
from apps.customer_service.retrieval_eval import EvalQuery
from bench.support_answers import OUT_OF_SCOPE, read_out_of_scope_splits, sample_questions, summarize


def test_out_of_scope_file_has_two_balanced_splits_of_distinct_questions():
    splits = read_out_of_scope_splits()
    assert {name: len(q) for name, q in splits.items()} == {"dev": 20, "test": 20}
    everything = splits["dev"] + splits["test"]
    assert len({q.lower() for q in everything}) == 40
    assert all(q.endswith("?") for q in everything)
    # The app's own reader (used by `aigc support calibrate`) accepts the file as well.
    assert read_out_of_scope(OUT_OF_SCOPE) == everything


def test_out_of_scope_reader_names_the_bad_row(tmp_path):
    path = tmp_path / "oos.csv"
    path.write_text("query,split,topic\nHow do I boil an egg?,dev,cooking\n,test,sports\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 1"):
        read_out_of_scope_splits(path)


def test_sample_is_fixed_and_without_repeats():
    queries = [EvalQuery(f"q{i}", ("a",), i) for i in range(50)]
    first = sample_questions(queries, 10, seed=0)
    assert first == sample_questions(queries, 10, seed=0)
    assert len({q.row for q in first}) == 10
    assert sample_questions(queries, 80) == queries


def test_summary_rates_and_routes():
    rows = [
        {"in_scope": True, "route": "faq", "cites_gold": True, "rouge_l": 1.0, "answer": "a b c"},
        {"in_scope": True, "route": "generate", "cites_gold": False, "rouge_l": 0.2, "answer": "a"},
        {"in_scope": True, "route": "handoff", "cites_gold": False, "rouge_l": None},
        {"in_scope": False, "route": "handoff"},
        {"in_scope": False, "route": "generate"},
    ]
    for i, row in enumerate(rows):
        row |= {"ttft_ms": 10.0 * i, "latency_ms": 20.0 * i, "cpu_ms": 5.0}
    summary = summarize(rows)
    assert summary["gold_citation_rate"] == round(1 / 3, 4)
    assert summary["gold_citation_rate_of_answered"] == 0.5
    assert summary["rouge_l_answered"] == 0.6
    assert summary["answer_words_p50"] == 2.0
    assert summary["handoff_rate_in_scope"] == round(1 / 3, 4)
    assert summary["handoff_rate_out_of_scope"] == 0.5
    assert summary["by_route"]["generate"] == {
        "in_scope": 1,
        "out_of_scope": 1,
        "gold_citation_rate": 0.0,
        "rouge_l": 0.2,
    }
    assert summary["latency"]["all"]["latency_ms"]["p50"] == 40.0
