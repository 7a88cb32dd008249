"""PhraseBank errors by annotator agreement: per-tier scores and the plot."""

from __future__ import annotations

from sklearn.metrics import f1_score

from bench.finance_agreement import by_tier, plot


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
