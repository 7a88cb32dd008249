"""PhraseBank errors by annotator agreement: per-tier scores and the plot."""

from __future__ import annotations

from collections import Counter

import pytest
from sklearn.metrics import f1_score

from bench.finance_agreement import TIER_CONFIDENCE, by_tier, plot, with_agreement_confidence
from bench.finance_common import DATA


def test_errors_are_counted_per_tier_and_fixing_a_tier_gives_its_f1():
    labels = ["positive", "neutral", "negative", "neutral", "positive", "neutral"]
    predicted = ["neutral", "neutral", "negative", "positive", "positive", "neutral"]
    tiers = ["50-65%", "50-65%", "100%", "66-74%", "100%", "100%"]
    classes = ["negative", "neutral", "positive"]
    result = by_tier(labels, predicted, tiers, classes)
    assert {k: v for k, v in result["50-65%"].items() if k != "weighted_f1_if_all_right"} == {
        "rows": 2,
        "accuracy": 0.5,
        "errors": 1,
    }
    assert result["100%"]["accuracy"] == 1.0 and result["100%"]["errors"] == 0
    assert result["75-99%"]["rows"] == 0 and result["75-99%"]["accuracy"] is None
    # fixing a tier: its rows take their true labels, the others keep the predictions
    fixed_low = ["positive", "neutral", "negative", "positive", "positive", "neutral"]
    expected = round(f1_score(labels, fixed_low, labels=classes, average="weighted"), 4)
    assert result["50-65%"]["weighted_f1_if_all_right"] == expected
    as_is = round(f1_score(labels, predicted, labels=classes, average="weighted"), 4)
    assert result["100%"]["weighted_f1_if_all_right"] == result["75-99%"]["weighted_f1_if_all_right"] == as_is
    assert as_is < expected < 1.0


def test_the_plot_is_a_png(tmp_path):
    tiers = {t: {"rows": 3, "accuracy": 0.5, "errors": 2} for t in ("50-65%", "66-74%", "75-99%", "100%")}
    plot({"runs": ["a", "b"], "weighted_f1": 0.86, "tiers": tiers}, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(
    not (DATA / "financial_phrasebank").is_dir(), reason="needs ../shared/data/finance/financial_phrasebank"
)
def test_agreement_confidence_gives_each_phrasebank_sentence_its_tier():
    from bench.finance_phrasebank import load

    train, _, _ = load()
    data = with_agreement_confidence(train.subset(range(400)))
    counts = Counter(data.confidence)
    assert set(counts) == set(TIER_CONFIDENCE.values()) and sum(counts.values()) == 400
    # most PhraseBank sentences are unanimous; the split votes are the smallest tier
    assert counts[1.0] == max(counts.values()) and counts[0.58] < counts[1.0]
    assert data.texts == train.texts[:400] and data.labels == train.labels[:400]
