"""Label sets and label maps: the default sentiment and topic labels, presets, classes files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apps.finance_monitor.errors import DataError
from core.errors import check_path_kind
from core.io.tables import decode_text

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# twitter-financial-news-sentiment (dataset card): 0 Bearish, 1 Bullish, 2 Neutral; mapped as FinGPT does.
TFNS_LABEL_MAP: dict[str, str] = {"0": "negative", "1": "positive", "2": "neutral"}

# twitter-financial-news-topic: classes.txt order (label id = index); the default topic label set.
TFN_TOPIC_CLASSES: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)

LABEL_MAP_PRESETS: dict[str, dict[str, str]] = {
    "tfns": TFNS_LABEL_MAP,
    "tfn-topic": {str(i): name for i, name in enumerate(TFN_TOPIC_CLASSES)},
}

INT_LABEL = re.compile(r"-?\d+(?:\.0+)?")


def parse_label_map(spec: str | Path | Mapping[Any, str] | None) -> dict[str, str] | None:
    """Turn a label-map spec into ``{raw_label: name}``.

    Args:
        spec: ``None``; a mapping; a preset name (``"tfns"``, ``"tfn-topic"``); the path of a
            classes file (one name per line, id = line index); or ``"0=negative,1=positive"``.

    Returns:
        The map with string keys, or ``None`` when ``spec`` is ``None``.

    Raises:
        ValueError: Malformed spec, empty names, or a key given twice.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        mapping = {str(k).strip(): str(v).strip() for k, v in spec.items()}
    elif str(spec) in LABEL_MAP_PRESETS:
        return dict(LABEL_MAP_PRESETS[str(spec)])
    elif isinstance(spec, Path) or (Path(spec).is_file() and "=" not in str(spec)):
        return {str(i): name for i, name in enumerate(read_label_names(spec))}
    else:
        mapping = {}
        for part in str(spec).split(","):
            if not part.strip():
                continue
            key, sep, name = part.partition("=")
            if not sep or not key.strip() or not name.strip():
                raise ValueError(
                    f"label map {spec!r}: entry {part.strip()!r} is not 'id=name' (e.g. "
                    f"'0=negative,1=positive'), a preset {sorted(LABEL_MAP_PRESETS)} or a classes file"
                )
            if key.strip() in mapping:
                raise ValueError(f"label map {spec!r}: id {key.strip()!r} appears twice")
            mapping[key.strip()] = name.strip()
    if not mapping:
        raise ValueError(f"label map {spec!r} is empty")
    return {normalise_int_label(k): v for k, v in mapping.items()}


def read_label_names(path: str | Path) -> list[str]:
    """Read a classes file: one label name per line, in id order (blank trailing lines ignored).

    Raises:
        FileNotFoundError: No such file.
        DataError: A blank line between names, or a name given twice.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"classes file not found: {path}")
    lines = decode_text(path.read_bytes(), path, error=DataError).replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    names: list[str] = []
    for lineno, name in enumerate(lines, start=1):
        if not name.strip():
            raise DataError(path, "blank line inside the list of class names", line=lineno)
        if name.strip() in names:
            raise DataError(path, f"class name {name.strip()!r} appears twice", line=lineno)
        names.append(name.strip())
    return names


def normalise_int_label(value: str) -> str:
    """``"2.0"`` -> ``"2"`` for integer-like labels (pandas writes ints with NaN as floats); others as is."""
    return str(int(float(value))) if INT_LABEL.fullmatch(value) else value
