"""Probability calibration of text classifiers: temperature scaling on a held-out split.

A fine-tuned classifier is usually over-confident: its softmax says 0.99 where it is right 90 %
of the time. Temperature scaling (Guo et al., 2017) divides the logits by one number ``T`` per
head, fitted to minimise the negative log-likelihood on held-out data; the argmax (and so the
accuracy) is unchanged, only the confidences move. The fitted ``T`` goes into the classifier's
``config.json`` (``temperatures``), which :meth:`core.classification.TextClassifier.predict_proba`
applies, and the fit is recorded in ``calibration.json`` beside it::

    {"sentiment": {"temperature": 1.7, "n": 72, "nll_before": 0.61, "nll_after": 0.52,
                   "ece_before": 0.09, "ece_after": 0.03, "accuracy": 0.86}}

``ece`` is the expected calibration error: the mean gap between confidence and accuracy over 10
equal-width confidence bins, weighted by the share of examples in each bin. The metrics themselves
(:func:`core.metrics.expected_calibration_error`, ...) are plain NumPy in :mod:`core.metrics`; this
module is the model side (it runs the classifier to get held-out logits).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.classification import TextClassifier, fit_temperature
from core.config import write_json_atomic
from core.metrics import calibration_stats

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"


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
        The fit's statistics (see :func:`core.metrics.calibration_stats`).

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
