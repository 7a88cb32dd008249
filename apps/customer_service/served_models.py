"""Which intent model and answer adapter the bot serves: the active refreshed version, else the defaults.

``aigc support refresh`` keeps every retrained version in one registry
(:class:`core.model_versions.ModelRegistry` under ``$AIGC_DATA_DIR/support/models``) and moves its
``active`` pointer only when a candidate passes the guard. The bot, the API and the chat page ask this
module where their models are, in this order:

* intent classifier: ``bot.intent_model`` when configured; else the active version's ``intents/``;
  else ``$AIGC_DATA_DIR/support/intents`` (``aigc support train-intents``), as before refreshes existed;
* answer adapter: ``answer.adapter`` when configured; else the active version's ``adapter/`` when it
  was trained on the configured answer model; else none (the base model).

A configured path always wins, so nothing changes for a deployment that names its models, and a data
directory that was never refreshed keeps loading what it loaded before. Only the pointer is read
here (no hashing): :meth:`ModelRegistry.activate` checked the version's files when it was switched to.

:func:`list_versions` and :func:`switch_version` (``aigc support versions``, ``aigc support refresh
--to VERSION``, the versions page) list the versions and move the pointer by hand (roll back, or
promote a version the guard refused).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.generation.adapters import adapter_base_model
from core.model_versions import RECORD_FILE, Activation, ModelRegistry, RegistryError
from core.paths import data_dir

logger = logging.getLogger(__name__)

#: Artifact kind of a version directory of the support models.
KIND = "support-model-version"
INTENTS_PART = "intents"
ADAPTER_PART = "adapter"


def registry_dir() -> Path:
    """Where the refreshed versions live: ``$AIGC_DATA_DIR/support/models``."""
    return data_dir() / "support" / "models"


def support_registry(root: str | Path | None = None) -> ModelRegistry:
    """The registry of the support models (default :func:`registry_dir`)."""
    return ModelRegistry(root or registry_dir(), KIND)


def default_intent_path() -> Path:
    """Where ``aigc support train-intents`` saves by default (served when nothing was refreshed)."""
    return data_dir() / "support" / "intents"


def active_version(root: str | Path | None = None) -> str | None:
    """Name of the active version (``None`` before the first promotion or when unreadable)."""
    try:
        return support_registry(root).active_name()
    except ValueError as err:
        logger.warning("Model registry pointer unreadable", extra={"error": str(err)})
        return None


def intent_model_path(configured: str | Path | None = None, root: str | Path | None = None) -> Path:
    """The intent classifier directory to load (it may not exist: then the bot runs without one)."""
    if configured:
        return Path(configured)
    return support_registry(root).active_path(INTENTS_PART) or default_intent_path()


def answer_adapter_path(
    configured: str | Path | None, model: str | None, root: str | Path | None = None
) -> str | None:
    """The answer adapter to load with base ``model``, or ``None`` for the base model alone.

    The active version's adapter is used only when it was trained on ``model`` (recorded in its
    ``aigc_adapter.json``): an adapter of another base would not fit the configured model.
    """
    if configured:
        return str(configured)
    path = support_registry(root).active_path(ADAPTER_PART)
    if path is None:
        return None
    try:
        base = adapter_base_model(path)
    except (OSError, ValueError):
        base = None
    if model is not None and base != model:
        logger.warning(
            "Active answer adapter not used: trained on another base model",
            extra={"adapter": str(path), "base_model": base, "model": model},
        )
        return None
    return str(path)


# ------------------------------------------------------------------------------ versions, switch
def list_versions(registry: ModelRegistry | None = None) -> list[dict[str, Any]]:
    """Every committed version, oldest first: held-out scores (served before and the version's own),
    whether it passed the guard, what it was trained on, and which one is active."""
    registry = registry or support_registry()
    rows = []
    for info in registry.versions():
        record = info.record
        _check_record(info.path / RECORD_FILE, record)
        decision = record.get("decision", {})
        rows.append(
            {
                "version": info.name,
                "active": info.active,
                "created_at": record.get("created_at"),
                "parent": record.get("parent"),
                "promoted": bool(decision.get("promote")),
                "components": {k: v.get("status") for k, v in record.get("components", {}).items()},
                "scores": record.get("scores", {"old": {}, "new": {}}),
                "worse": decision.get("worse", {}),
                "data": record.get("data", {}),
            }
        )
    return rows


def _check_record(path: Path, record: dict[str, Any]) -> None:
    """Refuse a ``record.json`` whose parts :func:`list_versions` reads have the wrong shape (edited by hand).

    Raises:
        RegistryError: Naming the file and the key.
    """

    def bad(key: str, expected: str) -> RegistryError:
        return RegistryError(f"{path}: {key!r} must be {expected}; the version's record is damaged")

    if not isinstance(record.get("created_at"), str | None):
        raise bad("created_at", "a date-time text")
    for key in ("decision", "components", "scores", "data"):
        if not isinstance(record.get(key, {}), dict):
            raise bad(key, "an object")
    if not all(isinstance(v, dict) for v in record.get("components", {}).values()):
        raise bad("components", "an object of objects")
    if not isinstance(record.get("decision", {}).get("worse", {}), dict):
        raise bad("decision.worse", "an object")
    scores = record.get("scores", {"old": {}, "new": {}})
    for side in ("old", "new"):
        values = scores.get(side)
        if not isinstance(values, dict):
            raise bad(f"scores.{side}", "an object")
        for metric, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise bad(f"scores.{side}.{metric}", "a number or null")


def switch_version(
    version: str, *, actor: str | None = None, registry: ModelRegistry | None = None
) -> Activation:
    """Serve a committed version: a ``rollback`` when older than the active one, else a ``promote``.

    Its files are checked against its manifest first; the switch is kept in the pointer's history.

    Raises:
        RegistryError: Unknown, malformed or damaged version; the active one already; or another
            refresh is running.
    """
    registry = registry or support_registry()
    with registry.lock():
        info = registry.get(version)
        current = registry.active()
        if current is not None and current.name == info.name:
            raise RegistryError(f"version {info.name} is the active version already")
        action = "rollback" if current is not None and info.number < current.number else "promote"
        details = {"scores": info.record.get("scores", {}).get("new", {}), "manual": True}
        return registry.activate(info.name, action=action, actor=actor, details=details)


__all__ = [
    "ADAPTER_PART",
    "INTENTS_PART",
    "KIND",
    "active_version",
    "answer_adapter_path",
    "default_intent_path",
    "intent_model_path",
    "list_versions",
    "registry_dir",
    "support_registry",
    "switch_version",
]
