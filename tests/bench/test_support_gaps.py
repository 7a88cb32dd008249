"""The gap benchmark's pure parts: disjoint per-intent splits, the KB files, the scores."""

from __future__ import annotations

import csv

import numpy as np

from bench.support_gaps import score, split_train, write_kb_files


def test_train_parts_are_disjoint_per_intent_and_seeded():
    labels = ["a"] * 10 + ["b"] * 4
    texts = [f"t{i}" for i in range(len(labels))]
    faq, calib, val = split_train(texts, labels, [2, 3, 5], seed=1)
    assert not (set(faq) & set(calib)) and not (set(calib) | set(faq)) & set(val)
    assert [sum(labels[r] == "a" for r in part) for part in (faq, calib, val)] == [2, 3, 5]
    assert [sum(labels[r] == "b" for r in part) for part in (faq, calib, val)] == [2, 2, 0]  # b runs out
    assert split_train(texts, labels, [2, 3, 5], seed=1) == [faq, calib, val]


def test_only_covered_intents_get_faq_entries_the_rest_is_out_of_scope(tmp_path):
    texts = ["card late", "where is card", "top up failed", "top up pending"]
    labels = ["card_arrival", "card_arrival", "top_up_failed", "top_up_failed"]
    faq, calib_in, calib_oos = write_kb_files(tmp_path, texts, labels, [0], [1, 2, 3], {"card_arrival"})
    with faq.open(encoding="utf-8") as fh:
        [entry] = list(csv.DictReader(fh))
    assert entry == {
        "id": "card_arrival-0",
        "question": "card late",
        "answer": "This is our help answer about card arrival.",
        "category": "card_arrival",
    }
    with calib_in.open(encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == [{"query": "where is card", "gold_ids": "card_arrival-0"}]
    with calib_oos.open(encoding="utf-8") as fh:
        assert [r["query"] for r in csv.DictReader(fh)] == ["top up failed", "top up pending"]


def test_scores_count_uncovered_intents_found_as_a_cluster_majority():
    labels = ["x", "x", "y", "y", "z"]
    out = score(labels, np.array([0, 0, 1, 1, -1]), uncovered={"x", "z"})
    assert out["purity"] == 1.0 and out["clusters"] == 2
    assert out["uncovered_intents_present"] == 2 and out["uncovered_intents_found"] == 1
    assert out["covered_share_of_gaps"] == 0.4
