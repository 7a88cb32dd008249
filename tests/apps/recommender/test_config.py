"""The shipped settings file and the code's defaults are one set of defaults."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import yaml

from apps.recommender.config import DEFAULT_CONFIG, RecommenderConfig, load_settings


def _differences(found: object, expected: object, path: str = "") -> list[str]:
    if is_dataclass(found) and is_dataclass(expected):
        out: list[str] = []
        for f in fields(found):
            out += _differences(getattr(found, f.name), getattr(expected, f.name), f"{path}.{f.name}")
        return out
    return [] if found == expected else [f"{path.lstrip('.')}: yaml {found!r}, code {expected!r}"]


def test_shipped_yaml_equals_the_dataclass_defaults():
    # Every value configs/recommender.yaml sets is the code's default too: RecommenderConfig() (what
    # tests and library callers get) and `aigc recommend train/eval` (what reads the file) agree.
    assert yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))  # the file sets values
    assert _differences(load_settings(DEFAULT_CONFIG), RecommenderConfig()) == []
