"""Typed configuration: frozen dataclasses with defaults, values from YAML, dotted overrides.

Each component declares a dataclass beside its code, with ``field(default=..., metadata={"help": ...})``
(the peft pattern). Values live in ``configs/*.yaml``; the command line overrides single values
with ``--set section.key=value`` (spaCy's ``parse_config_overrides`` pattern). The resolved config
and the seed are saved with every artifact via :func:`save_config`.

Example:
    >>> @dataclass(frozen=True)
    ... class Lora:
    ...     r: int = field(default=8, metadata={"help": "LoRA rank"})
    >>> @dataclass(frozen=True)
    ... class Train:
    ...     lora: Lora = field(default_factory=Lora)
    ...     epochs: int = 3
    >>> load_config(Train, overrides=["lora.r=16"]).lora.r
    16
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.atomic import write_bytes_atomic

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclass."""


def to_dict(obj: Any) -> Any:
    """Convert a (nested) dataclass to plain JSON/YAML-serialisable values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to type ``tp`` (dataclasses, Optional, list, tuple, dict, scalars)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, _prefix=where)
    if origin in (list, Sequence) or tp is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        try:
            converted = tp(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from err
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return converted
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], _prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking names and types.

    Raises:
        ConfigError: on an unknown key or a value of the wrong type, naming the dotted key.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        where = f"{_prefix}." if _prefix else ""
        raise ConfigError(
            f"unknown config key(s) {sorted(where + k for k in unknown)}; known: {sorted(names)}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            where = f"{_prefix}.{f.name}" if _prefix else f.name
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], where)
    return cls(**kwargs)


def _parse_scalar(text: str) -> Any:
    # YAML gives ints, floats, bools, null and [lists] the way people type them.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to a nested dict (a copy is returned).

    Raises:
        ConfigError: when an override has no ``=``.
    """
    result = json.loads(json.dumps(data, default=str))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = _parse_scalar(raw)
    return result


def yaml_error_message(path: str | Path, err: yaml.YAMLError) -> str:
    """One line naming the file, line and column of a YAML syntax error, and what is wrong there."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(err, "problem", None) or " ".join(str(err).split())
    context = getattr(err, "context", None)
    return f"{path}: {where}not valid YAML: {problem}" + (f" ({context})" if context else "")


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    section: str | None = None,
) -> T:
    """Load ``cls`` from defaults, an optional YAML file (or one section of it) and overrides.

    Args:
        cls: The dataclass type.
        path: YAML file; missing keys keep their defaults.
        overrides: ``["lora.r=16", "epochs=2"]``.
        section: Read only this top-level section of the YAML file.

    Raises:
        ConfigError: naming the file and key on any mismatch.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a file; --config takes a YAML file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as err:
            raise ConfigError(f"config file not found: {path}") from err
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from err
        except yaml.YAMLError as err:
            raise ConfigError(yaml_error_message(path, err)) from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        if section is not None:
            loaded = loaded.get(section, {}) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: field {section!r}: expected a mapping")
        data = loaded
    given = data
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        if overrides and _valid(cls, given):  # the file (or the defaults) is fine: a --set value is not
            named = [o for o in overrides if o.split("=", 1)[0].strip() in str(err)] or list(overrides)
            raise ConfigError(f"--set {' '.join(named)}: {err}") from err
        raise ConfigError(f"{path}: {err}" if path else str(err)) from err


def _valid(cls: type[T], data: dict[str, Any]) -> bool:
    """Whether ``data`` loads as ``cls`` (to tell a bad ``--set`` from a bad file)."""
    try:
        from_dict(cls, data)
    except ConfigError:
        return False
    return True


def save_config(obj: Any, path: str | Path, **extra: Any) -> Path:
    """Write the resolved config (plus ``extra`` such as ``seed``) as JSON, atomically."""
    path = Path(path)
    payload = {**to_dict(obj), **to_dict(extra)} if extra else to_dict(obj)
    write_json_atomic(path, payload)
    return path


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (no half-written files)."""
    write_bytes_atomic(path, (json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n").encode())


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(dotted_name, type, default, help)`` rows for every field, for ``--help`` style listings."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += [(f"{f.name}.{n}", t, d, h) for n, t, d, h in describe(tp)]
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((f.name, getattr(tp, "__name__", str(tp)), default, f.metadata.get("help", "")))
    return rows
