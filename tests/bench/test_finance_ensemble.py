"""Seed ensembles of the finance benchmarks: probabilities averaged per row, size chosen on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import finance_common
from bench.finance_ensemble import fixed_size, load_part, score, validation_table

CLASSES = ["negative", "neutral", "positive"]


def test_the_mean_of_two_members_can_beat_both_and_validation_chooses_it():
    labels = ["negative", "neutral", "positive", "positive"]
    # each member is unsure and wrong on one row where the other is sure and right: the mean fixes both
    a = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.5, 0.4]])
    b = np.array([[0.3, 0.4, 0.3], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [0.0, 0.1, 0.9]])
    assert score([a], labels, CLASSES)["accuracy"] == 0.75
    assert score([a, b], labels, CLASSES) == {"accuracy": 1.0, "macro_f1": 1.0, "weighted_f1": 1.0}
    table = validation_table([a, b], labels, CLASSES)
    assert set(table["subsets"]) == {(0,), (1,), (0, 1)}
    assert table["sizes"][1]["accuracy"] == 0.75 and table["chosen_size"] == 2
    # equal scores: the smaller ensemble
    assert validation_table([a, a], labels, CLASSES)["chosen_size"] == 1


def test_saved_probabilities_round_trip_and_other_validation_rows_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(finance_common, "RESULTS", tmp_path)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    part = {"probs": probs, "labels": ["negative", "positive"], "rows": [4, 9], "classes": CLASSES}
    first = finance_common._save_probabilities("pb", "preset-accurate", "s1", {"val": part})
    assert first == "finance_pb_probs/preset-accurate-s1.json"
    # a later --test-only run adds the test part and keeps the validation part
    finance_common._save_probabilities("pb", "preset-accurate", "s1", {"test": part})
    path = tmp_path / "finance_pb_probs" / "preset-accurate-s1.json"
    assert set(json.loads(path.read_text())) == {"val", "test"}
    loaded, labels, classes = load_part([path, path], "val")
    assert np.allclose(loaded[0], probs) and labels == ["negative", "positive"] and classes == CLASSES
    other = tmp_path / "finance_pb_probs" / "preset-accurate-s2.json"
    finance_common._save_probabilities("pb", "preset-accurate", "s2", {"val": {**part, "rows": [4, 8]}})
    with pytest.raises(SystemExit, match="split-seed"):
        load_part([path, other], "val")


def test_a_fixed_size_averages_the_first_runs_on_the_test_part(tmp_path, monkeypatch):
    """Refit runs have no validation part: the size is given, and only the test part is read."""
    monkeypatch.setattr(finance_common, "RESULTS", tmp_path)
    labels = ["negative", "neutral", "positive", "positive"]
    a = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.5, 0.4]])
    b = np.array([[0.3, 0.4, 0.3], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [0.0, 0.1, 0.9]])
    paths = []
    for tag, probs in (("r1", a), ("r2", b), ("r3", b)):
        part = {"probs": probs, "labels": labels, "rows": [1, 2, 3, 4], "classes": CLASSES}
        finance_common._save_probabilities("pb", "preset-accurate", tag, {"test": part})
        paths.append(tmp_path / "finance_pb_probs" / f"preset-accurate-{tag}.json")
    result = fixed_size("pb", ["r1", "r2", "r3"], paths, 2)
    assert result["chosen_runs"] == ["r1", "r2"] and result["test_rows"] == 4
    assert result["chosen_test"] == {"accuracy": 1.0, "macro_f1": 1.0, "weighted_f1": 1.0}
    assert [m["accuracy"] for m in result["members_test"]] == [0.75, 0.75]
    with pytest.raises(SystemExit, match="between 1 and 3"):
        fixed_size("pb", ["r1", "r2", "r3"], paths, 4)
