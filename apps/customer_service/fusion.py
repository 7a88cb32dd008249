"""Score arithmetic of hybrid retrieval: field combination, normalisation and rank/score fusion.

* :func:`combine_fields` merges an entry's question-field and content-field scores (max, or a
  weighted sum).
* :func:`reciprocal_rank_fusion` (Cormack et al., SIGIR 2009): ``sum_i w_i / (k + rank_i(d))``
  with 1-based ranks; a list that does not contain ``d`` adds nothing. Only ranks matter, so
  retrievers with incomparable score scales fuse without calibration.
* :func:`score_fusion`: each retriever's scores are normalised over the candidate pool
  (:func:`normalize`: min-max to [0, 1], or z-scores) and summed with weights. It keeps the
  size of score gaps that RRF throws away. A candidate missing from a retriever's scores gets
  that retriever's lowest normalised value.

All functions are pure and deterministic; ties are broken by the order ids were first seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

FieldCombine = Literal["max", "weighted"]
Normalization = Literal["minmax", "zscore"]


def combine_fields(
    question: np.ndarray, content: np.ndarray, method: FieldCombine = "max", question_weight: float = 0.5
) -> np.ndarray:
    """Per-entry score from its question-field and content-field scores.

    Args:
        question: Scores against the question field.
        content: Scores against the content field (same shape).
        method: ``max`` (the better-matching field wins) or ``weighted``
            (``question_weight * question + (1 - question_weight) * content``).
        question_weight: Weight of the question field for ``weighted``, in [0, 1].

    Returns:
        The combined scores, float32.

    Raises:
        ValueError: Shapes differ, unknown method, or weight outside [0, 1].
    """
    question = np.asarray(question, dtype=np.float32)
    content = np.asarray(content, dtype=np.float32)
    if question.shape != content.shape:
        raise ValueError(f"field score shapes differ: {question.shape} vs {content.shape}")
    if method == "max":
        return np.maximum(question, content)
    if method == "weighted":
        if not 0.0 <= question_weight <= 1.0:
            raise ValueError(f"question_weight must be in [0, 1], got {question_weight}")
        return (question_weight * question + (1.0 - question_weight) * content).astype(np.float32)
    raise ValueError(f"field combination must be 'max' or 'weighted', got {method!r}")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = 60, weights: Sequence[float] | None = None
) -> dict[str, float]:
    """Fuse ranked id lists by reciprocal rank.

    Args:
        rankings: One list of ids per retriever, best first.
        k: Smoothing constant (60 in the original paper); larger flattens the rank differences.
        weights: One weight per ranking (default all 1).

    Returns:
        ``{id: score}`` in descending score order.

    Raises:
        ValueError: ``k`` below 1, a weights list of the wrong length, or a repeated id in a ranking.
    """
    if k < 1:
        raise ValueError(f"RRF k must be at least 1, got {k}")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"got {len(weights)} weights for {len(rankings)} rankings")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if len(set(ranking)) != len(ranking):
            raise ValueError("a ranking lists the same id twice")
        for rank, id_ in enumerate(ranking, start=1):
            fused[id_] = fused.get(id_, 0.0) + weight / (k + rank)
    return _sorted(fused)


def normalize(scores: Mapping[str, float], method: Normalization = "minmax") -> dict[str, float]:
    """Normalise one retriever's scores over a candidate pool.

    Args:
        scores: ``{id: raw score}``.
        method: ``minmax`` maps to [0, 1]; ``zscore`` subtracts the mean and divides by the
            (population) standard deviation.

    Returns:
        ``{id: normalised score}``. Without spread (all scores equal), min-max gives 1 to
        positive scores and 0 otherwise (a retriever that matched nothing adds nothing), and
        z-scores are 0.

    Raises:
        ValueError: Unknown method or a non-finite score.
    """
    if method not in ("minmax", "zscore"):
        raise ValueError(f"normalization must be 'minmax' or 'zscore', got {method!r}")
    if not scores:
        return {}
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if not np.isfinite(values).all():
        raise ValueError("cannot normalise non-finite scores")
    if method == "minmax":
        low, high = float(values.min()), float(values.max())
        if math.isclose(high, low, rel_tol=1e-9, abs_tol=1e-12):
            return {id_: 1.0 if high > 0 else 0.0 for id_ in scores}
        return {id_: (float(v) - low) / (high - low) for id_, v in zip(scores, values, strict=True)}
    mean, std = float(values.mean()), float(values.std())
    if std < 1e-12:
        return dict.fromkeys(scores, 0.0)
    return {id_: (float(v) - mean) / std for id_, v in zip(scores, values, strict=True)}


def score_fusion(
    score_maps: Sequence[Mapping[str, float]],
    weights: Sequence[float] | None = None,
    method: Normalization = "minmax",
) -> dict[str, float]:
    """Weighted sum of per-retriever normalised scores.

    Args:
        score_maps: One ``{id: raw score}`` per retriever, over its candidates.
        weights: One weight per retriever (default all 1).
        method: Normalisation (see :func:`normalize`).

    Returns:
        ``{id: fused score}`` over the union of ids, in descending score order.

    Raises:
        ValueError: A weights list of the wrong length, or see :func:`normalize`.
    """
    weights = [1.0] * len(score_maps) if weights is None else list(weights)
    if len(weights) != len(score_maps):
        raise ValueError(f"got {len(weights)} weights for {len(score_maps)} score lists")
    normalised = [normalize(scores, method) for scores in score_maps]
    ids = list(dict.fromkeys(id_ for scores in score_maps for id_ in scores))
    fused = dict.fromkeys(ids, 0.0)
    for scores, weight in zip(normalised, weights, strict=True):
        floor = min(scores.values(), default=0.0)
        for id_ in ids:
            fused[id_] += weight * scores.get(id_, floor)
    return _sorted(fused)


def _sorted(scores: dict[str, float]) -> dict[str, float]:
    # sorted() is stable: equal scores keep first-seen order.
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


__all__ = [
    "FieldCombine",
    "Normalization",
    "combine_fields",
    "normalize",
    "reciprocal_rank_fusion",
    "score_fusion",
]
