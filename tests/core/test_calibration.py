"""Temperature scaling: fitting on over-confident logits, the JSON record."""

from __future__ import annotations

import numpy as np
import pytest

from core.calibration import load_calibration, save_calibration
from core.classification import fit_temperature
from core.metrics import calibration_stats, softmax


def overconfident(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits right 70 % of the time but scaled to claim ~99 %."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
    logits = rng.normal(0, 0.3, (n, 3))
    logits[np.arange(n), pred] += 6.0
    return logits, y


def test_temperature_fit_cuts_nll_and_ece_but_not_accuracy():
    logits, y = overconfident()
    t = fit_temperature(logits, y.tolist())
    stats = calibration_stats(logits, y, t)
    assert t > 2.0  # over-confidence is undone by a temperature above 1
    assert stats["nll_after"] < stats["nll_before"] * 0.6
    assert stats["ece_after"] < 0.1 < stats["ece_before"]
    assert stats["accuracy"] == pytest.approx(float((logits.argmax(1) == y).mean()))
    assert (softmax(logits, t).argmax(1) == softmax(logits).argmax(1)).all()


def test_calibration_json_round_trip(tmp_path):
    assert load_calibration(tmp_path) == {}
    save_calibration(tmp_path, {"sentiment": {"temperature": 1.5, "n": 10}})
    assert load_calibration(tmp_path)["sentiment"]["temperature"] == 1.5
    (tmp_path / "calibration.json").write_text("{broken")
    with pytest.raises(ValueError, match="calibration.json"):
        load_calibration(tmp_path)
