"""Reasons of recommendations, built as Arrow string arrays from arrays of numbers.

A reason names the most similar item of the user's history and the features that lift the item
most above the user's average candidate (coefficient x standardised value, minus its mean over the
user's candidates)::

    similar to 'Heat (1995)' (0.87); fits the items you chose (+1.79); popular lately (+0.18)

An item the ranker did not score reads ``new item, no interactions yet`` (a reserved cold slot) or
``popular item`` (a list filled beyond the candidates), after the similar item when there is one.

A batch of a hundred thousand rows is formatted without a Python loop over rows: numbers are
formatted once per distinct rounded value (:func:`format_fixed`) and the parts are joined by
Arrow's string kernels (:func:`reason_strings`). The text equals Python's ``"; ".join`` of
f-strings character for character (``tests/apps/recommender/test_reasons.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

FEATURE_LABELS = {
    "text_sim": "matches your history's text",
    "text_sim_max": "close to an item you chose",
    "cf_score": "chosen with items you chose",
    "popularity": "popular",
    "recent_popularity": "popular lately",
    "trend_popularity": "trending now",
    "ease_score": "fits the items you chose",
    "user_activity": "fits your activity level",
    "item_age": "item age",
}
# Features that are constant per user or binary flags explain nothing about one item against another.
REASON_FEATURES = (
    "text_sim",
    "text_sim_max",
    "cf_score",
    "ease_score",
    "popularity",
    "recent_popularity",
    "trend_popularity",
    "item_age",
)
# A feature is named in a reason only when it lifts the item at least this much (shown as +0.01 or
# more): smaller lifts are float noise, e.g. for a user whose candidates all share one value.
MIN_LIFT = 0.005
COLD_ITEM = "new item, no interactions yet"
POPULAR_ITEM = "popular item"


def format_fixed(values: np.ndarray, signed: bool = False) -> pa.StringArray:
    """``f"{v:.2f}"`` of every value (``f"{v:+.2f}"`` when ``signed``), as an Arrow string array.

    Python formats each distinct rounded value once. A value within a billionth of a rounding
    boundary (where float64 arithmetic could round differently from Python's exact decimal
    rounding, e.g. 0.125), and any non-finite one, is formatted by Python itself, so the output
    equals the f-string exactly.
    """
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return pa.array([], pa.string())
    finite = np.isfinite(v)
    scaled = np.where(finite, np.abs(v) * 100.0, 0.0)
    cents = np.floor(scaled + 0.5)
    clear = finite & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-9 * np.maximum(scaled, 1.0))
    keys = cents.astype(np.int64) * 2 + np.signbit(v)
    odd = np.flatnonzero(~clear)
    keys[odd] = -1 - np.arange(len(odd))
    unique, inverse = np.unique(keys, return_inverse=True)
    plus = "+" if signed else ""
    texts = []
    for key in unique.tolist():
        if key < 0:
            value = float(v[odd[-1 - key]])
            texts.append(f"{value:+.2f}" if signed else f"{value:.2f}")
        else:
            amount, negative = divmod(key, 2)
            texts.append(f"{'-' if negative else plus}{amount // 100}.{amount % 100:02d}")
    return pa.array(texts, pa.string()).take(pa.array(inverse.astype(np.int64)))


def _scatter(values: pa.Array, mask: np.ndarray) -> pa.Array:
    """A full-length array: ``values`` in order at the true positions of ``mask``, null elsewhere."""
    index = np.cumsum(mask) - 1
    return values.take(pa.array(index, mask=~mask))


def reason_strings(
    similar: np.ndarray,
    similarity: np.ndarray,
    titles: pa.Array,
    labels: Sequence[str],
    scored: np.ndarray,
    top: np.ndarray,
    lifts: np.ndarray,
    cold: np.ndarray,
) -> pa.StringArray:
    """The reason of each recommended row.

    Args:
        similar: Per row, the most similar history item (item index), -1 for none.
        similarity: Its cosine (ignored where ``similar`` is -1).
        titles: Item titles by item index.
        labels: Label of each reason feature.
        scored: Per row, whether the ranker scored it (``top`` and ``lifts`` hold one row per true).
        top: ``(n_scored, n_reasons)`` feature positions in ``labels``, largest lift first.
        lifts: The lifts of those features.
        cold: Per row, whether it fills a reserved cold slot.

    Returns:
        One string per row: ``"; "``-joined lead (``similar to 'T' (0.87)``) and the features with a
        lift of at least :data:`MIN_LIFT`; an unscored row ends with :data:`COLD_ITEM` or
        :data:`POPULAR_ITEM`; a row with neither part reads :data:`POPULAR_ITEM`.
    """
    has = np.asarray(similar) >= 0
    lead = pc.binary_join_element_wise(
        "similar to '",
        titles.take(pa.array(np.asarray(similar)[has])),
        "' (",
        format_fixed(np.asarray(similarity)[has]),
        ")",
        "",
    )
    lead = _scatter(lead, has)
    label_array = pa.array(list(labels), pa.string())
    factors: pa.Array | None = None
    for column in range(top.shape[1]):
        named = lifts[:, column] >= MIN_LIFT
        piece = pc.binary_join_element_wise(
            label_array.take(pa.array(top[named, column])),
            " (",
            format_fixed(lifts[named, column], signed=True),
            ")",
            "",
        )
        piece = _scatter(piece, named)
        # Lifts are sorted, so a named piece always follows named ones: join, or keep what is there.
        factors = (
            piece
            if factors is None
            else pc.coalesce(pc.binary_join_element_wise(factors, piece, "; "), factors)
        )
    fallback = pa.array([POPULAR_ITEM, COLD_ITEM], pa.string()).take(
        pa.array(np.asarray(cold, dtype=np.int64))
    )
    scored = np.asarray(scored)
    if factors is None:
        factors = pa.nulls(int(scored.sum()), pa.string())
    factors = pc.if_else(pa.array(scored), _scatter(factors, scored), fallback)
    joined = pc.binary_join_element_wise(lead, factors, "; ")
    return pc.coalesce(joined, lead, factors, POPULAR_ITEM)
