"""Per-user rank features: one sort of packed keys equals the three-key lexsort it replaced."""

from __future__ import annotations

import numpy as np

from apps.recommender.features import _rank_within


def _lexsort_ranks(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.lexsort((np.arange(len(values)), -values, group))
    ordered = group[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values)) - np.repeat(starts, np.diff(np.r_[starts, len(values)]))
    return rank


def test_rank_within_equals_the_lexsort_with_ties_signed_zeros_and_infinities():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 3000
        group = rng.integers(0, 30, n) if trial % 2 else np.sort(rng.integers(0, 30, n))
        values = rng.normal(0, 3, n).astype(np.float32)
        values[rng.random(n) < 0.2] = 0.0
        values[rng.random(n) < 0.05] = -0.0
        values[rng.random(n) < 0.01] = np.inf
        values[rng.random(n) < 0.01] = -np.inf
        values = np.where(rng.random(n) < 0.3, np.round(values), values).astype(np.float32)
        np.testing.assert_array_equal(_rank_within(group, values), _lexsort_ranks(group, values))
    assert _rank_within(np.zeros(3, dtype=np.int64), np.array([1.0, np.nan, 2.0])).tolist() == [1, 2, 0]
