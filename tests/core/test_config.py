import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from core.config import ConfigError, describe, load_config, save_config, to_dict


@dataclass(frozen=True)
class Lora:
    r: int = field(default=8, metadata={"help": "rank"})
    alpha: float = 16.0
    targets: list[str] = field(default_factory=lambda: ["query", "value"])


@dataclass(frozen=True)
class Train:
    lora: Lora = field(default_factory=Lora)
    epochs: int = 3
    lr: float = 2e-4
    pooling: Literal["mean", "cls"] = "mean"
    out: str | None = None
    shuffle: bool = True


def test_defaults_and_overrides():
    cfg = load_config(
        Train, overrides=["lora.r=16", "epochs=5", "lora.targets=[q_proj, v_proj]", "shuffle=false"]
    )
    assert cfg.lora.r == 16 and cfg.epochs == 5 and cfg.shuffle is False
    assert cfg.lora.targets == ["q_proj", "v_proj"]
    assert cfg.lr == 2e-4 and cfg.out is None


def test_yaml_section_then_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  lora:\n    alpha: 32\n")
    cfg = load_config(Train, path, overrides=["lora.alpha=8"], section="train")
    assert cfg.epochs == 7 and cfg.lora.alpha == 8.0 and cfg.lora.r == 8


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=three", "epochs: expected int"),
        ("lora.rank=4", "lora.rank"),
        ("pooling=max", "not one of"),
        ("epochs", "section.key=value"),
        ("epochs=2.5", "expected int"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Train, overrides=[override])


def test_a_bad_override_blames_the_override_and_a_bad_file_the_file(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("epochs: 7\n")
    bad.write_text("epochs: seven\n")
    with pytest.raises(ConfigError) as err:
        load_config(Train, good, overrides=["lr=0.1", "epochs=three"])
    assert str(err.value).startswith("--set epochs=three: epochs: expected int") and "good.yaml" not in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        load_config(Train, bad, overrides=["lr=0.1"])
    assert str(err.value).startswith(f"{bad}: epochs: expected int")
    with pytest.raises(ConfigError, match=r"^--set nosuch=1: .*nosuch"):
        load_config(Train, good, overrides=["nosuch=1"])


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Train, path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(Train, tmp_path / "missing.yaml")


def test_save_round_trip_with_seed(tmp_path):
    cfg = load_config(Train, overrides=["lora.r=4"])
    path = save_config(cfg, tmp_path / "run" / "config.json", seed=123)
    data = json.loads(path.read_text())
    assert data["seed"] == 123 and data["lora"]["r"] == 4
    data.pop("seed")
    assert load_config(Train, overrides=[]) != cfg
    assert to_dict(cfg) == data
    assert not list((tmp_path / "run").glob(".*")), "temporary file left behind"


def test_describe_lists_dotted_fields_with_help():
    rows = {name: (default, help_) for name, _, default, help_ in describe(Train)}
    assert rows["lora.r"] == (8, "rank")
    assert rows["epochs"][0] == 3


def test_write_json_atomic_leaves_a_readable_file_and_no_temp(tmp_path):
    import json
    import os
    import stat

    from core.config import write_json_atomic

    target = tmp_path / "out" / "report.json"
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_yaml_errors_name_file_line_and_column_on_one_line(tmp_path):
    @dataclass(frozen=True)
    class Small:
        epochs: int = 1

    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1,\n  lr: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(Small, path, section="train")
    message = str(info.value)
    assert message.startswith(f"{path}: line 4, column 1: not valid YAML") and "\n" not in message
    path.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(Small, path, section="train")
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_config(Small, tmp_path, section="train")
