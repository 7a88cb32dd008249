"""Training presets of `aigc finance train --preset fast|accurate|accurate-ensemble`: the settings
they resolve to, their order against the YAML file and `--set`, and one CLI run that trains with the
accurate preset's settings on the tiny encoder (the real mpnet runs are benchmarks:
bench/finance_phrasebank.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from apps.finance_monitor.config import CONFIG_FILE, FinanceTrainConfig, load_train_config
from apps.finance_monitor.presets import DEFAULT_PRESET, TRAIN_PRESETS, preset_overrides
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR
from core.config import ConfigError, load_config
from core.models import KNOWN_MODELS
from tests.cli_run import assert_one_line_error, run_aigc


def test_fast_is_the_default_and_changes_nothing():
    assert DEFAULT_PRESET == "fast"
    shipped = load_config(FinanceTrainConfig, CONFIG_FILE, section="train")
    assert load_train_config(CONFIG_FILE) == shipped
    assert load_train_config(CONFIG_FILE, preset="fast") == shipped
    assert shipped.model == "minilm-l6" and not shipped.full_finetune and shipped.use_lora
    assert load_train_config() == FinanceTrainConfig()


def test_accurate_replaces_the_shipped_files_model_and_lr():
    cfg = load_train_config(CONFIG_FILE, preset="accurate")
    assert cfg.model == "mpnet-base" and cfg.model in KNOWN_MODELS
    assert cfg.full_finetune and cfg.lr == 5e-5 and cfg.layer_lr_decay == 0.9 and cfg.epochs == 2
    assert cfg.max_length == 128 and cfg.batch_size == 16
    # what the preset does not name comes from the file
    shipped = load_config(FinanceTrainConfig, CONFIG_FILE, section="train")
    for name in ("head_lr", "val_fraction", "dedup"):
        assert getattr(cfg, name) == getattr(shipped, name)


def test_accurate_ensemble_is_accurate_three_times_refitted():
    cfg = load_train_config(CONFIG_FILE, preset="accurate-ensemble")
    accurate = load_train_config(CONFIG_FILE, preset="accurate")
    assert cfg.ensemble_seeds == (42, 7, 1234) and cfg.refit
    assert replace(cfg, ensemble_seeds=(), refit=False) == accurate
    one = load_train_config(CONFIG_FILE, ["ensemble_seeds=[]", "refit=false"], preset="accurate-ensemble")
    assert one == accurate  # --set turns the ensemble off again


def test_set_overrides_the_preset(tmp_path):
    config = tmp_path / "finance.yaml"
    config.write_text("train:\n  epochs: 7\n  lr: 0.5\n  head_lr: 0.02\n")
    assert load_train_config(config, preset="accurate").epochs == 2  # the preset beats the file
    cfg = load_train_config(config, ["epochs=3", "lora.r=4"], preset="accurate")
    assert cfg.epochs == 3 and cfg.lora.r == 4  # --set beats the preset
    assert cfg.lr == 5e-5 and cfg.head_lr == 0.02  # the preset beats the file; the file the defaults


def test_presets_are_read_only_and_copied():
    fields = preset_overrides("accurate")
    fields["lr"] = 1.0
    assert TRAIN_PRESETS["accurate"]["lr"] == 5e-5
    with pytest.raises(TypeError):
        TRAIN_PRESETS["accurate"]["lr"] = 1.0  # type: ignore[index]
    # every preset is a valid set of training fields
    for name in TRAIN_PRESETS:
        load_train_config(preset=name)


def test_unknown_preset_is_one_line_naming_the_known_ones(tmp_path):
    with pytest.raises(
        ConfigError, match="unknown preset 'huge'; expected one of accurate, accurate-ensemble, fast"
    ):
        preset_overrides("huge")
    result = run_aigc("finance", "train", "--task", "sentiment", "--preset", "huge",
                      "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv"),
                      "--out", str(tmp_path / "m"))  # fmt: skip
    assert_one_line_error(result, "unknown preset 'huge'", "accurate, accurate-ensemble, fast")
    assert list(tmp_path.iterdir()) == []


def test_cli_trains_with_the_accurate_presets_settings(tmp_path, tiny_encoder_dir):
    """`--preset accurate` with only the encoder swapped for the tiny one: a full fine-tune, 128 tokens."""
    torch.set_num_threads(1)
    out = tmp_path / "sentiment"
    result = run_aigc("finance", "train", "--task", "sentiment", "--preset", "accurate",
                      "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv"), "--out", str(out),
                      "--set", f"model={tiny_encoder_dir}",
                      "--set", "lr=0.005")  # fmt: skip
    assert result.code == 0, result.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["encoder_weights"] == "encoder.safetensors" and config["lora"] is None
    assert (out / "encoder.safetensors").is_file()
    assert config["max_length"] == 128
    assert config["train_config"]["full_finetune"] is True and config["train_config"]["epochs"] == 2
    assert config["train_config"]["layer_lr_decay"] == 0.9  # the tiny encoder's blocks at decayed rates
