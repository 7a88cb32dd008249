"""Reasons built from arrays equal Python's f-strings and joins, character for character."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from apps.recommender.reasons import COLD_ITEM, MIN_LIFT, POPULAR_ITEM, format_fixed, reason_strings


def test_format_fixed_equals_the_f_string():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.normal(0, 3, 5000),
            rng.normal(0, 0.01, 2000),
            # Exact binary ties (round half to even), values just around a boundary, signed zeros.
            [0.125, 0.375, -0.125, 2.675, 1.005, 0.005, 0.015, -0.004, -0.0, 0.0, 0.0049999, 99.995],
            np.float32(rng.normal(0, 1, 500)).astype(np.float64),
            [np.nan, np.inf, -np.inf, 1e6 + 0.005],
        ]
    )
    assert format_fixed(values).to_pylist() == [f"{v:.2f}" for v in values.tolist()]
    assert format_fixed(values, signed=True).to_pylist() == [f"{v:+.2f}" for v in values.tolist()]
    assert format_fixed(np.array([])).to_pylist() == []


def _reference(similar, similarity, titles, labels, scored, top, lifts, cold):
    """The per-row formatting the hybrid used before reasons were built from arrays."""
    out, s = [], 0
    for r in range(len(similar)):
        lead = f"similar to '{titles[similar[r]]}' ({similarity[r]:.2f})" if similar[r] >= 0 else ""
        if scored[r]:
            factors = "; ".join(
                f"{labels[j]} ({v:+.2f})" for j, v in zip(top[s], lifts[s], strict=True) if v >= MIN_LIFT
            )
            s += 1
        else:
            factors = COLD_ITEM if cold[r] else POPULAR_ITEM
        out.append("; ".join(p for p in (lead, factors) if p) or POPULAR_ITEM)
    return out


def test_reason_strings_equal_the_per_row_joins():
    rng = np.random.default_rng(1)
    n, titles, labels = 3000, [f"Film {i} (19{i % 100:02d})" for i in range(50)], ["a", "b", "c", "d"]
    similar = np.where(rng.random(n) < 0.8, rng.integers(0, 50, n), -1)
    similarity = rng.uniform(-1, 1, n)
    cold = rng.random(n) < 0.1
    scored = ~cold & (rng.random(n) < 0.8)
    m = int(scored.sum())
    lifts = -np.sort(-rng.normal(0, 0.3, (m, 4)), axis=1)[:, :2]
    lifts[:20] = 0.001  # below MIN_LIFT: no feature named
    top = rng.integers(0, 4, (m, 2))
    found = reason_strings(similar, similarity, pa.array(titles), labels, scored, top, lifts, cold)
    expected = _reference(similar, similarity, titles, labels, scored, top, lifts, cold)
    assert found.to_pylist() == expected
    assert POPULAR_ITEM in expected and any(r.startswith("similar to") and COLD_ITEM in r for r in expected)
    # No reason features at all: only leads and fallbacks.
    none = reason_strings(similar, similarity, pa.array(titles), [], scored, top[:, :0], lifts[:, :0], cold)
    assert none.to_pylist() == _reference(
        similar, similarity, titles, [], scored, top[:, :0], lifts[:, :0], cold
    )
