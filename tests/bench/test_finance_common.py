"""The finance benchmarks' runner: settings resolution (``--patience``) and epoch log lines."""

from __future__ import annotations

import argparse
import json

from bench import finance_common
from bench.finance_common import _row, _rows_in, _settings, _write_results


def _args(**given: object) -> argparse.Namespace:
    names = ("model", "epochs", "batch_size", "lr", "max_length", "patience", "warmup_ratio")
    names += ("weight_decay", "layer_lr_decay", "label_smoothing", "tag", "max_train", "no_test")
    names += ("split_seed",)
    return argparse.Namespace(**{name: given.get(name) for name in names})


def test_command_line_beats_the_configuration_which_beats_the_defaults():
    assert "patience" not in _settings("preset-accurate", _args(), 3)  # the loop's default applies
    settings = _settings("preset-accurate", _args(epochs=3, patience=1), 3)
    assert settings["model"] == "mpnet-base" and settings["full_finetune"]
    assert settings["epochs"] == 3 and settings["patience"] == 1
    assert _settings("lora-attn", _args(), 4)["epochs"] == 4
    swept = _settings("preset-accurate", _args(lr=5e-5, layer_lr_decay=0.9, warmup_ratio=0.06), 3)
    assert swept["lr"] == 5e-5 and swept["layer_lr_decay"] == 0.9 and swept["warmup_ratio"] == 0.06
    assert "weight_decay" not in swept  # not given: the loop's default
    assert "split_seed" not in swept  # not given: the carve-out follows --seed
    assert _settings("preset-accurate", _args(split_seed=42), 3)["split_seed"] == 42
    assert _settings("preset-accurate", _args(label_smoothing=0.1), 3)["label_smoothing"] == 0.1


def test_a_validation_only_row_names_its_variant_and_the_epoch_validation_chose():
    args = _args(lr=5e-5, tag="lr5e-5", no_test=True)
    settings = _settings("preset-accurate", args, 3)
    history = [
        {"epoch": 1, "train_loss": 0.5, "val_macro_f1": 0.85, "val_accuracy": 0.86},
        {"epoch": 2, "train_loss": 0.2, "val_macro_f1": 0.87, "val_accuracy": 0.88},
    ]
    report = {"epochs_run": 2, "resumed": False, "best_epoch": 2, "train_size": 90, "val_size": 10}
    report.update(wall_time_s=5.0, samples_per_s=3.0, history=history)
    row = _row("preset-accurate", settings, args, report, 6.0, 40)
    assert row["tag"] == "lr5e-5" and row["overrides"]["lr"] == 5e-5 and row["epochs"] == 2
    assert (row["val_macro_f1"], row["val_accuracy"]) == (0.87, 0.88) and row["test_scored"] is False
    assert "weighted_f1" not in row and row["calibration"] is None


def _row_of(tag: str, **fields: object) -> dict:
    return {"config": "preset-accurate", "epochs": 2, "max_train": None, "tag": tag, **fields}


def test_a_run_keeps_the_rows_other_runs_wrote_while_it_trained(tmp_path, monkeypatch):
    """Two seeds trained side by side: the one that finishes last used to drop the other's row."""
    monkeypatch.setattr(finance_common, "RESULTS", tmp_path)
    out = tmp_path / "finance_pb.json"
    _write_results(out, {"benchmark": "pb", "runs": [_row_of("old")]}, set())
    # run "s7" read the file above when it started; then "s42" finished and wrote its row
    _write_results(
        out, {"benchmark": "pb", "runs": [_row_of("s42", val=0.8)]}, {("preset-accurate", 2, None, "s42")}
    )
    # "s7" finishes: its write keeps "old" and "s42", and replaces its own validation-only row
    _write_results(
        out, {"benchmark": "pb", "runs": [_row_of("s7", val=0.7)]}, {("preset-accurate", 2, None, "s7")}
    )
    _write_results(
        out,
        {"benchmark": "pb", "runs": [_row_of("s7", val=0.7, test=0.9)]},
        {("preset-accurate", 2, None, "s7")},
    )
    saved = json.loads(out.read_text())
    assert [r["tag"] for r in saved["runs"]] == ["s7"] and saved["runs"][0]["test"] == 0.9
    assert sorted(r["tag"] for r in saved["earlier_runs"]) == ["old", "s42"]
    assert len(_rows_in(out)) == 3 and _rows_in(tmp_path / "none.json") == []
