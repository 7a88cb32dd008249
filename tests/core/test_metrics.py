"""Metrics against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.metrics import (
    accuracy,
    bleu,
    catalogue_coverage,
    classification_report,
    expected_calibration_error,
    f1,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    negative_log_likelihood,
    recall_at_k,
    rouge_l,
    softmax,
)

Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]


def test_classification_report_hand_computed():
    report = classification_report(Y_TRUE, Y_PRED)
    # Correct at positions 0, 1, 3, 5 -> 4 / 6.
    assert report["accuracy"] == pytest.approx(4 / 6)
    # a: tp=2 fp=0 fn=1 -> P=1,   R=2/3, F1 = 2*1*(2/3)/(1+2/3) = 4/5, support 3
    # b: tp=1 fp=1 fn=1 -> P=1/2, R=1/2, F1 = 1/2,                     support 2
    # c: tp=1 fp=1 fn=0 -> P=1/2, R=1,   F1 = 2*(1/2)*1/(3/2) = 2/3,   support 1
    per = report["per_class"]
    assert per["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 4 / 5, "support": 3})
    assert per["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    # macro = (4/5 + 1/2 + 2/3) / 3 = (24 + 15 + 20) / 90 = 59/90
    assert report["macro_f1"] == pytest.approx(59 / 90)
    # weighted = (3*4/5 + 2*1/2 + 1*2/3) / 6 = (72 + 30 + 20) / 30 / 6 = 122/180 = 61/90
    assert report["weighted_f1"] == pytest.approx(61 / 90)
    # rows = true label, columns = predicted label
    assert report["confusion"] == {"labels": ["a", "b", "c"], "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    assert f1(Y_TRUE, Y_PRED, "weighted") == pytest.approx(61 / 90)


def test_classification_report_label_order_and_absent_class():
    # "d" is never true nor predicted: P = R = F1 = 0 (not NaN), support 0; it lowers the macro mean.
    report = classification_report(Y_TRUE, Y_PRED, labels=["c", "b", "a", "d"])
    assert report["confusion"]["labels"] == ["c", "b", "a", "d"]
    assert report["confusion"]["matrix"][0] == [1, 0, 0, 0]  # true c: predicted c once
    assert report["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro over 4 classes = (4/5 + 1/2 + 2/3 + 0) / 4 = 59/120
    assert report["macro_f1"] == pytest.approx(59 / 120)
    with pytest.raises(ValueError, match="not in `labels`"):
        classification_report(Y_TRUE, Y_PRED, labels=["a", "b"])


RANKED = [["d1", "d2", "d3"], ["d4", "d5", "d6"]]
GOLD = [{"d2"}, {"d4", "d6", "d9"}]


def test_recall_mrr_hit_rate_hand_computed():
    # recall@2: q1 {d1,d2} & {d2} -> 1/1; q2 {d4,d5} & {d4,d6,d9} -> 1/3; mean (1 + 1/3)/2 = 2/3
    assert recall_at_k(RANKED, GOLD, 2) == pytest.approx(2 / 3)
    # recall@3: q1 1; q2 {d4,d6} -> 2/3; mean 5/6
    assert recall_at_k(RANKED, GOLD, 3) == pytest.approx(5 / 6)
    # MRR@2: q1 first hit at rank 2 -> 1/2; q2 at rank 1 -> 1; mean 3/4
    assert mrr_at_k(RANKED, GOLD, 2) == pytest.approx(0.75)
    # MRR@1: q1 no hit in top 1 -> 0; q2 -> 1; mean 1/2
    assert mrr_at_k(RANKED, GOLD, 1) == pytest.approx(0.5)
    # HR@1: q1 miss, q2 hit -> 1/2; HR@2: both hit -> 1
    assert hit_rate_at_k(RANKED, GOLD, 1) == pytest.approx(0.5)
    assert hit_rate_at_k(RANKED, GOLD, 2) == pytest.approx(1.0)
    # A single string is one relevant item (not a set of characters).
    assert hit_rate_at_k([["x", "y"]], ["y"], 2) == 1.0


def test_ndcg_hand_computed():
    # k=2. q1: hit at rank 2 -> DCG = 1/log2(3); ideal (1 relevant) = 1/log2(2) = 1 -> 1/log2(3) = 0.6309
    #      q2: hit at rank 1 -> DCG = 1; ideal (min(3, 2) = 2 relevant) = 1 + 1/log2(3) -> 1/1.6309 = 0.6131
    q1 = 1 / math.log2(3)
    q2 = 1 / (1 + 1 / math.log2(3))
    assert ndcg_at_k(RANKED, GOLD, 2) == pytest.approx((q1 + q2) / 2)
    assert ndcg_at_k(RANKED, GOLD, 2) == pytest.approx(0.62204, abs=1e-5)
    # k=3. q2: hits at ranks 1, 3 -> DCG = 1 + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3) + 1/2 = 2.1309 -> 0.7039
    assert ndcg_at_k(RANKED, GOLD, 3) == pytest.approx((q1 + 1.5 / (1.5 + 1 / math.log2(3))) / 2)
    # Perfect ranking -> 1; a duplicated relevant id does not count twice.
    assert ndcg_at_k([["a", "b"]], [{"a", "b"}], 2) == pytest.approx(1.0)
    assert ndcg_at_k([["a", "a"]], [{"a", "b"}], 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_catalogue_coverage():
    # distinct {a, b, c} = 3 of 10 items
    assert catalogue_coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    # top-1 only: {a, b} = 2 of 10
    assert catalogue_coverage([["a", "b"], ["b", "c"]], 10, k=1) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="catalogue_size"):
        catalogue_coverage([["a", "b", "c"]], 2)


def test_bleu_hand_computed():
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat" (6 tokens each, brevity penalty 1):
    #   1-grams: the(min(2,1)=1) cat sat on mat -> 5/6
    #   2-grams: "the cat" "cat sat" "sat on" match, "on the" "the mat" do not -> 3/5
    #   3-grams: "the cat sat" "cat sat on" match -> 2/4
    #   4-grams: "the cat sat on" matches -> 1/3
    #   BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** 0.25 = 0.53728 -> 53.73
    assert bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(100 * (1 / 12) ** 0.25)
    # hyp "the cat sat on" vs ref "the cat sat on the mat": all n-gram precisions 1,
    #   brevity penalty exp(1 - 6/4) = exp(-0.5) = 0.60653 -> 60.65
    assert bleu(["the cat sat on"], ["the cat sat on the mat"]) == pytest.approx(100 * math.exp(-0.5))
    # Two references per hypothesis: the exact one gives 100.
    assert bleu(["the cat sat on"], [["a dog", "the cat sat on"]]) == pytest.approx(100.0)


def test_rouge_l_hand_computed():
    # pair 1: LCS("the cat sat on the mat", "the cat is on the mat") = "the cat on the mat" = 5 tokens
    #   P = 5/6, R = 5/6, F = 5/6
    # pair 2: LCS("a b c d", "a c e") = "a c" = 2; P = 2/4, R = 2/3, F = 2PR/(P+R) = (2/3)/(7/6) = 4/7
    # mean = (5/6 + 4/7) / 2 = (35/42 + 24/42) / 2 = 59/84
    hyps = ["the cat sat on the mat", "a b c d"]
    refs = ["the cat is on the mat", "a c e"]
    assert rouge_l(hyps, refs) == pytest.approx(59 / 84)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: accuracy([], []), "empty"),
        (lambda: classification_report(["a"], ["a", "b"]), "must match"),
        (lambda: recall_at_k(RANKED, GOLD[:1], 2), "must match"),
        (lambda: mrr_at_k(RANKED, GOLD, 0), "k must be"),
        (lambda: ndcg_at_k([["a"]], [set()], 1), r"gold\[0\] is empty"),
        (lambda: catalogue_coverage([], 5), "empty"),
        (lambda: bleu(["a"], ["a", "b"]), "must match"),
        (lambda: bleu(["a", "b"], [["a"], ["b", "c"]]), "same"),
        (lambda: rouge_l("abc", "abc"), "single string"),
        (lambda: f1(["a"], ["a"], average="binary"), "average"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_ece_is_zero_for_perfectly_calibrated_and_large_for_overconfident():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, [0, 1]) == pytest.approx(0.0)
    rng = np.random.default_rng(0)  # logits right 70 % of the time but claiming ~99 %
    y = rng.integers(0, 3, 600)
    logits = rng.normal(0, 0.3, (600, 3))
    logits[np.arange(600), np.where(rng.random(600) < 0.7, y, (y + 1) % 3)] += 6.0
    assert expected_calibration_error(softmax(logits), y) > 0.25

    assert expected_calibration_error(np.zeros((0, 3)), []) == 0.0
    assert negative_log_likelihood(np.array([[0.5, 0.5]]), [1]) == pytest.approx(np.log(2))
