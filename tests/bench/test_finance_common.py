"""The finance benchmarks' runner: settings resolution (``--patience``) and epoch log lines."""

from __future__ import annotations

import argparse
import json
import logging

from bench.finance_common import _FieldsFormatter, _settings


def _args(**given: object) -> argparse.Namespace:
    names = ("model", "epochs", "batch_size", "lr", "max_length", "patience")
    return argparse.Namespace(**{name: given.get(name) for name in names})


def test_command_line_beats_the_configuration_which_beats_the_defaults():
    assert "patience" not in _settings("preset-accurate", _args(), 3)  # the loop's default applies
    settings = _settings("preset-accurate", _args(epochs=3, patience=1), 3)
    assert settings["model"] == "mpnet-base" and settings["full_finetune"]
    assert settings["epochs"] == 3 and settings["patience"] == 1
    assert _settings("lora-attn", _args(), 4)["epochs"] == 4


def test_epoch_log_lines_carry_the_metrics_given_as_fields():
    formatter = _FieldsFormatter("%(name)s %(message)s")
    record = logging.makeLogRecord(
        {"name": "core.finetune.loop", "msg": "Epoch done", "epoch": 2, "val_macro_f1": 0.85}
    )
    text = formatter.format(record)
    head, _, fields = text.partition(" {")
    assert head == "core.finetune.loop Epoch done"
    assert json.loads("{" + fields) == {"epoch": 2, "val_macro_f1": 0.85}
    plain = logging.makeLogRecord({"name": "x", "msg": "no fields"})
    assert formatter.format(plain) == "x no fields"
