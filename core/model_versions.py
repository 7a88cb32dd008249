"""Versioned models with one active version: candidates built aside, committed whole, switched atomically.

A closed training loop (retrain on new data, evaluate, promote only if not worse) needs three things
that no single model directory gives: every trained version kept side by side, a pointer saying which
one is served, and a record of each switch. :class:`ModelRegistry` holds them under one root::

    root/
      versions/v0001/   one artifact directory per version (core.io.artifacts: manifest with kind
      versions/v0002/   and file hashes, built in a temporary sibling and renamed into place)
        record.json     what the caller recorded about it (scores, data counts, the decision)
      active.json       {"version": "v0002", "history": [...]}: the served version and every switch,
                        replaced in one rename (a reader sees the old pointer or the new one)
      .lock             held while a version is built or activated (one writer at a time)

A version becomes visible only once complete (:meth:`ModelRegistry.build` commits through
:func:`core.io.artifacts.open_artifact`); a process killed while building leaves the active pointer
and the committed versions as they were, and its leftovers are removed by the next build. Activating
checks the version's file hashes first, so a damaged version is never served.

:func:`compare_scores` is the guard: a candidate is promoted only if it is not worse than the served
version on every metric (by more than a tolerance).

Example:
    >>> registry = ModelRegistry("models", kind="support-models")
    >>> with registry.lock(), registry.build() as candidate:
    ...     train_into(candidate.path)
    ...     candidate.write_record({"scores": {...}})
    >>> if compare_scores(old, new).promote:
    ...     registry.activate(candidate.name, action="promote", actor="cli:ana")
    >>> registry.active_path("intents")
    PosixPath('models/versions/v0001/intents')
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import write_json_atomic
from core.failpoints import failpoint
from core.io.artifacts import ArtifactError, open_artifact, verify_artifact

logger = logging.getLogger(__name__)

VERSIONS_DIR = "versions"
ACTIVE_FILE = "active.json"
RECORD_FILE = "record.json"
LOCK_FILE = ".lock"
#: Version names: ``v`` and at least four digits, numbered from 1 in build order.
VERSION_PATTERN = re.compile(r"v(\d{4,})")
#: Scores closer than this count as equal (they are rounded by the evaluations anyway).
EPSILON = 1e-9


class RegistryError(ValueError):
    """An unknown or malformed version name, a damaged version, or a registry that is busy."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionInfo:
    """A committed version: its name, directory and record, and whether it is the active one."""

    name: str
    path: Path
    record: dict[str, Any]
    active: bool = False

    @property
    def number(self) -> int:
        """The version's number (``v0003`` -> 3)."""
        return version_number(self.name)


@dataclass
class Candidate:
    """A version being built: fill :attr:`path`, then :meth:`write_record`; committed on leaving the block."""

    name: str
    path: Path
    record: dict[str, Any] = field(default_factory=dict)

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Write ``record.json`` (JSON-serialisable facts about this version) into the build."""
        self.record = {"version": self.name, "created_at": _now(), **dict(record)}
        write_json_atomic(self.path / RECORD_FILE, self.record)


@dataclass(frozen=True)
class Activation:
    """One switch of the active pointer (also kept in ``active.json``'s history)."""

    version: str
    previous: str | None
    action: str
    actor: str | None
    at: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "version": self.version,
            "previous": self.previous,
            "action": self.action,
            "actor": self.actor,
            "at": self.at,
            "details": self.details,
        }


def version_number(name: str) -> int:
    """The number of a version name (``"v0003"`` -> 3; ``"3"`` is accepted too).

    Raises:
        RegistryError: Not a version name.
    """
    text = name.strip()
    match = VERSION_PATTERN.fullmatch(text) or re.fullmatch(r"v?(\d{1,9})", text)
    if match is None or int(match.group(1)) < 1:
        raise RegistryError(f"{name!r} is not a version name; versions look like v0001 (or 1)")
    return int(match.group(1))


def version_name(number: int) -> str:
    """``3`` -> ``"v0003"``."""
    return f"v{number:04d}"


class ModelRegistry:
    """Versions of one kind of model under ``root``, and which one is active.

    Args:
        root: The registry directory (created on first build).
        kind: Artifact kind of each version directory (checked when a version is activated).
    """

    def __init__(self, root: str | Path, kind: str) -> None:
        self.root = Path(root)
        self.kind = kind

    @property
    def versions_dir(self) -> Path:
        """Where the version directories live."""
        return self.root / VERSIONS_DIR

    # ------------------------------------------------------------------------------- read
    def _names(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        names = [
            p.name
            for p in self.versions_dir.iterdir()
            if VERSION_PATTERN.fullmatch(p.name) and p.is_dir() and (p / "artifact.json").is_file()
        ]
        return sorted(names, key=version_number)

    def _pointer(self) -> dict[str, Any]:
        path = self.root / ACTIVE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": None, "history": []}
        except (OSError, ValueError) as err:
            raise RegistryError(
                f"{path} is not a valid pointer file ({err}); restore it or roll back"
            ) from err
        if not isinstance(data, dict) or not isinstance(data.get("history", []), list):
            raise RegistryError(f"{path} is not a valid pointer file; restore it or roll back")
        return data

    def active_name(self) -> str | None:
        """The active version's name, or ``None`` before the first promotion."""
        name = self._pointer().get("version")
        return str(name) if name else None

    def history(self) -> list[dict[str, Any]]:
        """Every switch of the active pointer, oldest first (see :class:`Activation`)."""
        return list(self._pointer().get("history", []))

    def _info(self, name: str, active: str | None) -> VersionInfo:
        path = self.versions_dir / name
        try:
            record = json.loads((path / RECORD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        return VersionInfo(name, path, record if isinstance(record, dict) else {}, name == active)

    def versions(self) -> list[VersionInfo]:
        """Committed versions, oldest first (a build still in progress or killed is not listed)."""
        active = self.active_name()
        return [self._info(name, active) for name in self._names()]

    def get(self, name: str) -> VersionInfo:
        """The committed version called ``name`` (``v0003``, or ``3``).

        Raises:
            RegistryError: Malformed name, or no such committed version (the message lists them).
        """
        wanted = version_name(version_number(name))
        names = self._names()
        if wanted not in names:
            known = ", ".join(names) or "none yet"
            raise RegistryError(f"no version {name!r} in {self.versions_dir} (versions: {known})")
        return self._info(wanted, self.active_name())

    def active(self) -> VersionInfo | None:
        """The active version, or ``None`` before the first promotion."""
        name = self.active_name()
        return None if name is None else self._info(name, name)

    def active_path(self, part: str | None = None) -> Path | None:
        """Directory of the active version (or of ``part`` inside it), ``None`` when absent.

        Cheap (reads the pointer, checks the path exists, hashes nothing): for loaders that run often.
        """
        try:
            name = self.active_name()
        except RegistryError as err:
            logger.warning("Model registry pointer unreadable", extra={"error": str(err)})
            return None
        if name is None:
            return None
        path = self.versions_dir / name
        if part is not None:
            path = path / part
        return path if path.exists() else None

    # ------------------------------------------------------------------------------ write
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the registry's lock (non-blocking): one build or activation at a time.

        Raises:
            RegistryError: Another process holds it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RegistryError(
                    f"another process is building or activating a version in {self.root}; wait for it"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def next_name(self) -> str:
        """The name the next build gets (one past the highest committed version)."""
        names = self._names()
        return version_name(version_number(names[-1]) + 1 if names else 1)

    @contextmanager
    def build(self) -> Iterator[Candidate]:
        """Yield a :class:`Candidate` to fill; on leaving the block it is committed as a new version.

        The caller should hold :meth:`lock`. On an exception (or a kill) nothing becomes visible and
        the active pointer is untouched; leftovers of a killed build are removed by the next build.
        """
        name = self.next_name()
        target = self.versions_dir / name
        with open_artifact(target, self.kind) as staging:
            candidate = Candidate(name, staging)
            yield candidate
            failpoint("versions.before_commit")
        logger.info("Committed model version", extra={"root": str(self.root), "version": name})

    def activate(
        self,
        name: str,
        *,
        action: str = "promote",
        actor: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Activation:
        """Make ``name`` the active version after checking its files against its manifest.

        The pointer file (with the switch appended to its history) is replaced in one rename.

        Args:
            name: A committed version.
            action: Why: ``promote`` (a candidate passed the guard), ``rollback``, ...
            actor: Who (a user name, ``cli:<login>``).
            details: JSON-serialisable facts kept with the switch (scores, the reason).

        Raises:
            RegistryError: Unknown version, or its files fail the manifest.
        """
        info = self.get(name)
        try:
            verify_artifact(info.path, kinds=(self.kind,))
        except (ArtifactError, FileNotFoundError) as err:
            raise RegistryError(f"version {info.name} is damaged and cannot be activated: {err}") from err
        pointer = self._pointer()
        switch = Activation(info.name, pointer.get("version"), action, actor, _now(), dict(details or {}))
        history = [*pointer.get("history", []), switch.to_dict()]
        failpoint("versions.before_activate")
        write_json_atomic(self.root / ACTIVE_FILE, {"version": info.name, "history": history})
        logger.info(
            "Activated model version",
            extra={
                "root": str(self.root),
                "version": info.name,
                "previous": switch.previous,
                "action": action,
            },
        )
        return switch


@dataclass(frozen=True)
class Comparison:
    """The guard's verdict on a candidate's scores against the served version's.

    Attributes:
        promote: Not worse on any compared metric.
        compared: Metrics both sides have (only these can block promotion).
        worse: ``{metric: (old, new)}`` for each metric where the candidate is worse by more than
            the tolerance (``new`` is ``None`` when the candidate has no score for it).
        tolerance: ``{metric: allowed drop}``.
    """

    promote: bool
    compared: list[str]
    worse: dict[str, tuple[float, float | None]]
    tolerance: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "promote": self.promote,
            "compared": self.compared,
            "worse": {k: list(v) for k, v in self.worse.items()},
            "tolerance": self.tolerance,
        }


def compare_scores(
    old: Mapping[str, float | None],
    new: Mapping[str, float | None],
    tolerance: float | Mapping[str, float] = 0.0,
) -> Comparison:
    """Whether ``new`` is not worse than ``old`` on each metric (higher is better for all).

    A metric the old version has no score for (nothing was served) cannot block; one the candidate
    lacks while the old version has it counts as worse.

    Args:
        old: The served version's scores.
        new: The candidate's scores on the same data.
        tolerance: The drop allowed per metric (one number for all, or per metric; default 0:
            equal passes, any drop fails).

    Raises:
        ValueError: A negative tolerance.
    """
    metrics = sorted(set(old) | set(new))
    allowed = {
        m: float(tolerance.get(m, 0.0) if isinstance(tolerance, Mapping) else tolerance) for m in metrics
    }
    if any(v < 0 for v in allowed.values()):
        raise ValueError(f"tolerance must be 0 or more, got {tolerance!r}")
    compared, worse = [], {}
    for metric in metrics:
        before, after = old.get(metric), new.get(metric)
        if before is None:
            continue
        compared.append(metric)
        if after is None or after < before - allowed[metric] - EPSILON:
            worse[metric] = (float(before), None if after is None else float(after))
    return Comparison(not worse, compared, worse, allowed)


__all__ = [
    "ACTIVE_FILE",
    "RECORD_FILE",
    "Activation",
    "Candidate",
    "Comparison",
    "ModelRegistry",
    "RegistryError",
    "VersionInfo",
    "compare_scores",
    "version_name",
    "version_number",
]
