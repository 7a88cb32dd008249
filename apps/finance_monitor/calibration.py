"""Probability calibration of the finance classifiers: temperature scaling on the validation split.

A fine-tuned classifier is usually over-confident: its softmax says 0.99 where it is right 90 %
of the time. Temperature scaling (Guo et al., 2017) divides the logits by one number ``T`` per
head, fitted to minimise the negative log-likelihood on held-out data; the argmax (and so the
accuracy) is unchanged, only the confidences move. The fitted ``T`` goes into the classifier's
``config.json`` (``temperatures``), which :meth:`core.classification.TextClassifier.predict_proba`
applies, and the fit is recorded in ``calibration.json`` beside it::

    {"sentiment": {"temperature": 1.7, "n": 72, "nll_before": 0.61, "nll_after": 0.52,
                   "ece_before": 0.09, "ece_after": 0.03, "accuracy": 0.86}}

``ece`` is the expected calibration error: the mean gap between confidence and accuracy over 10
equal-width confidence bins, weighted by the share of examples in each bin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.classification import TextClassifier, fit_temperature
from core.config import write_json_atomic

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` (float64)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, targets: Sequence[int], bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence over ``bins`` equal-width bins.

    Args:
        probs: ``(n, n_classes)`` probabilities.
        targets: True class index per row.
        bins: Number of confidence bins on ``[0, 1]``.

    Returns:
        ``sum_b |acc_b - conf_b| * n_b / n``; 0 for empty input.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(targets)
    if len(probs) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += abs(correct[mask].mean() - conf[mask].mean()) * mask.sum()
    return float(total / len(probs))


def negative_log_likelihood(probs: np.ndarray, targets: Sequence[int]) -> float:
    """Mean ``-log p(true class)`` (probabilities clipped at 1e-12)."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def calibration_stats(logits: np.ndarray, targets: Sequence[int], temperature: float) -> dict[str, float]:
    """NLL and ECE before (``T = 1``) and after scaling by ``temperature``, and the accuracy."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "temperature": float(temperature),
        "n": len(targets),
        "nll_before": negative_log_likelihood(before, targets),
        "nll_after": negative_log_likelihood(after, targets),
        "ece_before": expected_calibration_error(before, targets),
        "ece_after": expected_calibration_error(after, targets),
        "accuracy": float((np.asarray(logits).argmax(axis=1) == np.asarray(targets)).mean()),
    }


def calibrate(
    classifier: TextClassifier,
    texts: Sequence[str],
    labels: Sequence[str],
    head: str | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Fit the temperature of ``head`` on held-out ``texts`` and store it in ``classifier``.

    Args:
        classifier: A trained classifier (its temperature for ``head`` is replaced).
        texts: Validation texts (never the training texts: on those the model is over-confident).
        labels: Their true labels (labels of the head).
        head: Head name; may be omitted for a one-head classifier.
        batch_size: Texts per forward pass.

    Returns:
        The fit's statistics (see :func:`calibration_stats`).

    Raises:
        ValueError: No texts, mismatched lengths, or a label the head does not know.
    """
    name = head or classifier.head_names[0]
    if not texts:
        raise ValueError("calibration needs at least one held-out text")
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels; they must match one to one")
    index = {label: i for i, label in enumerate(classifier.labels(name))}
    unknown = sorted({str(y) for y in labels} - set(index))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not labels of head {name!r}: {list(index)}")
    targets = [index[str(y)] for y in labels]
    logits = classifier.logits(list(texts), name, batch_size)
    temperature = fit_temperature(logits, targets)
    classifier.temperatures[name] = temperature
    stats = calibration_stats(logits, targets, temperature)
    logger.info("Calibrated", extra={"head": name, **stats})
    return stats


def save_calibration(directory: str | Path, stats: dict[str, dict[str, Any]]) -> Path:
    """Write ``{head: stats}`` to ``directory/calibration.json`` atomically."""
    path = Path(directory) / CALIBRATION_FILE
    write_json_atomic(path, stats)
    return path


def load_calibration(directory: str | Path) -> dict[str, dict[str, Any]]:
    """The ``calibration.json`` of a model directory, or ``{}`` when it was not calibrated."""
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def apply_temperature(logits: torch.Tensor | np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / T)`` as float32."""
    return softmax(np.asarray(logits), temperature).astype(np.float32)
