"""The product benchmark's bootstrap interval of an ensemble's test score (the test split's own noise)."""

from __future__ import annotations

import numpy as np

from bench.finance_product import bootstrap_interval

CLASSES = ["negative", "neutral", "positive"]


def _members(labels: list[str], right: float, seed: int) -> np.ndarray:
    """One member's one-hot probabilities: the label on a share ``right`` of the rows, else the next class."""
    rng = np.random.default_rng(seed)
    index = [CLASSES.index(label) for label in labels]
    chosen = [i if rng.random() < right else (i + 1) % 3 for i in index]
    return np.eye(3)[chosen]


def test_the_interval_brackets_the_score_and_narrows_with_more_rows():
    rng = np.random.default_rng(3)
    small = list(rng.choice(CLASSES, 300))
    large = list(rng.choice(CLASSES, 3000))
    a = bootstrap_interval([_members(small, 0.88, 1)], small, CLASSES, resamples=500)
    b = bootstrap_interval([_members(large, 0.88, 1)], large, CLASSES, resamples=500)
    for result in (a, b):
        assert result["low"] < result["weighted_f1"] < result["high"]
        assert 0.0 < result["share_at_target"] < 1.0  # a score near 0.88 falls on both sides of it
    assert b["high"] - b["low"] < (a["high"] - a["low"]) * 0.6  # ~1/sqrt(10) as wide, with slack


def test_the_interval_is_of_the_averaged_members_and_certain_when_every_row_is_right():
    labels = ["negative", "neutral", "positive"] * 40
    right = np.eye(3)[[CLASSES.index(y) for y in labels]]
    wrong = np.roll(right, 1, axis=1) * 0.4 + right * 0.3  # every row wrong, but less sure than `right`
    assert bootstrap_interval([wrong], labels, CLASSES, resamples=200)["weighted_f1"] == 0.0
    both = bootstrap_interval([right, wrong], labels, CLASSES, resamples=200)
    assert (both["weighted_f1"], both["low"], both["high"], both["share_at_target"]) == (1.0, 1.0, 1.0, 1.0)
