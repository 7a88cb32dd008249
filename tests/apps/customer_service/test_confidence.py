"""Confidence, thresholds and the answer gate (hand-off / verbatim FAQ / generation), and calibration."""

from __future__ import annotations

import json

import pytest

from apps.customer_service.confidence import (
    CALIBRATION_FILE,
    Calibration,
    _best_cut,
    calibrate,
    margin,
    read_out_of_scope,
)
from apps.customer_service.errors import SourceError
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from apps.customer_service.retrieval_eval import read_queries
from tests.apps.customer_service.bot_fixtures import make_hit
from tests.apps.customer_service.conftest import SAMPLE_DIR


def test_confidence_grows_with_the_best_cosine():
    cal = Calibration(weight=10, bias=-5)
    low = cal.confidence([make_hit("a", cosine=0.2)])
    high = cal.confidence([make_hit("a", cosine=0.8)])
    assert 0 < low < 0.5 < high < 1
    assert cal.confidence([]) == 0.0
    # after fusion the best cosine may sit lower in the list; it still counts
    assert cal.confidence([make_hit("a", cosine=0.2), make_hit("b", cosine=0.8, rank=2)]) == pytest.approx(
        high
    )


def test_route_hands_off_below_threshold_and_quotes_a_clear_faq_winner():
    cal = Calibration(weight=10, bias=-5, handoff_threshold=0.5, verbatim_margin=0.25)
    clear = [make_hit("faq-1", score=1.0), make_hit("faq-2", score=0.6, rank=2)]
    close = [make_hit("faq-1", score=1.0), make_hit("faq-2", score=0.9, rank=2)]
    doc = [make_hit("doc#a", score=1.0, kind="doc"), make_hit("faq-2", score=0.2, rank=2)]
    assert margin(clear) == pytest.approx(0.4)
    assert cal.route(clear, 0.49) == "handoff"
    assert cal.route([], 0.9) == "handoff"
    assert cal.route(clear, 0.6) == "faq"
    assert cal.route(close, 0.99) == "extract"
    assert cal.route(doc, 0.99) == "extract"  # only curated FAQ answers are quoted verbatim


def test_margin_skips_other_answers_to_the_same_question():
    same = "How do I export my contacts?"
    hits = [
        make_hit("t1-a", score=1.0, question=same),
        make_hit("t1-b", score=0.97, rank=2, question="how do I  export my contacts?"),
        make_hit("t2-a", score=0.5, rank=3),
    ]
    # The runner-up is another answer to the same question, not a competitor: the lead is over t2-a.
    assert margin(hits) == pytest.approx(0.5)
    cal = Calibration(weight=10, bias=-5, handoff_threshold=0.5, verbatim_margin=0.25)
    assert cal.route(hits, 0.9) == "faq"
    assert margin(hits[:2]) == pytest.approx(1.0)  # nothing else competes
    other = [make_hit("t1-a", score=1.0, question=same), make_hit("t3-a", score=0.97, rank=2)]
    assert margin(other) == pytest.approx(0.03)
    assert cal.route(other, 0.9) == "extract"


def test_best_cut_separates_the_classes():
    import numpy as np

    conf = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    positive = np.array([False, False, False, True, True, True])
    cut = _best_cut(conf, positive)
    assert 0.3 < cut < 0.7


def test_calibration_round_trips_and_rejects_a_corrupt_file(tmp_path):
    cal = Calibration(11.0, -4.0, 0.6, 0.3, True, {"in_scope": 3})
    cal.save(tmp_path)
    assert Calibration.load(tmp_path) == cal
    assert Calibration.load(tmp_path / "nowhere") is None
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"weight": 1, "colour": "red"}))
    with pytest.raises(ValueError, match="not a valid calibration"):
        Calibration.load(tmp_path)


def test_out_of_scope_file_errors_name_row_and_field(tmp_path):
    path = tmp_path / "oos.csv"
    path.write_text("query\nwhat is the capital of peru\n \n", encoding="utf-8")
    assert read_out_of_scope(path) == ["what is the capital of peru"]
    path.write_text("query,note\nfine,a\n,b\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"row 1.*field 'query'"):
        read_out_of_scope(path)
    path.write_text("question\nx\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"line 1, field 'query': missing column\(s\) \['query'\]"):
        read_out_of_scope(path)


def test_calibration_on_the_sample_separates_in_scope_from_out_of_scope(sample_kb_dir, minilm):
    kb = KnowledgeBase.load(sample_kb_dir)
    retriever = Retriever(kb, embedder=minilm)
    cal = calibrate(
        retriever,
        read_queries(SAMPLE_DIR / "queries.csv", kb),
        read_out_of_scope(SAMPLE_DIR / "out_of_scope.csv"),
    )
    report = cal.report
    assert cal.fitted and cal.weight > 0
    assert report["in_scope"] == 38 and report["out_of_scope"] == 30
    assert report["handoff_rate_out_of_scope"] >= 0.9
    assert report["answerable_answered"] >= 0.9
    assert report["verbatim_top1_precision"] >= 0.95
    assert 0 < report["verbatim_rate_in_scope"] < 1
