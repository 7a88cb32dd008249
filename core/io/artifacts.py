"""Artifact directories (KB, model, adapter): a manifest, a guard against overwriting, atomic replace.

Every artifact directory holds ``artifact.json``::

    {"kind": "aigc-support-kb", "format_version": 1, "created_at": "...",
     "files": {"entries.jsonl": "<sha256>", ...}, "unhashed": ["calibration.json"]}

:func:`open_artifact` is the one way to write one. It

* refuses (:class:`ArtifactError`, one line) to write into a file, into a directory holding an artifact of
  another kind, or into a non-empty directory that is no artifact at all (a home folder, a dataset);
* builds the new content in a temporary sibling (``.NAME.tmp-XXXX``) and swaps it in with two renames
  (:func:`core.atomic.swap_directory`), so readers see the old directory or the new one, never a mix;
* removes what killed builds left behind (``.NAME.tmp-*``, ``.NAME.old-*``) on its next run, after putting
  back a directory whose swap was interrupted between the two renames (:func:`recover`);
* holds a lock (``.NAME.lock``, removed afterwards) while it builds, so two processes never build the
  same directory at once;
* writes ``artifact.json`` last, with the sha256 of every file, which :func:`verify_artifact` checks on load
  (:func:`verifying_artifact` checks the large files on another thread while the caller reads the others).

Run state that changes after the build (a training run's ``checkpoint/``, a KB's ``calibration.json``) is
named in ``unhashed`` and checked by its own reader.

Calls nest: a command that wraps a core trainer opens the outer artifact (its own kind), and the trainer's
inner :func:`open_artifact` on the staging directory just writes into it.

Example:
    >>> with open_artifact("runs/kb", "aigc-support-kb") as tmp:
    ...     (tmp / "entries.jsonl").write_text(...)
    >>> verify_artifact("runs/kb", kinds=("aigc-support-kb",))
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.atomic import swap_directory

logger = logging.getLogger(__name__)

ARTIFACT_FILE = "artifact.json"
#: Manifests of directories written before ``artifact.json`` existed, read for their ``kind``/``format``.
LEGACY_MANIFESTS = ("manifest.json", "config.json", "aigc_adapter.json")

_ACTIVE: ContextVar[tuple[Path, ...]] = ContextVar("aigc_artifact_staging", default=())


class ArtifactError(ValueError):
    """An output directory that must not be written, or an artifact that fails its manifest."""


# ------------------------------------------------------------------------------------- hashes
def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (recorded in manifests to detect half-written or altered files)."""
    with Path(path).open("rb") as fh:
        # file_digest reads into one reused buffer and hashes without holding the GIL.
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify_files(directory: str | Path, digests: Mapping[str, str], manifest: str) -> None:
    """Check that each file named in ``digests`` exists in ``directory`` with that sha256.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: if a file's content differs from the manifest ``manifest``.
    """
    directory = Path(directory)
    for name, digest in digests.items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the directory is incomplete.")
        if sha256_file(path) != digest:
            raise ValueError(
                f"{path} does not match the checksum in {directory / manifest}: the directory is corrupt "
                "or half-written; save or train it again."
            )


# -------------------------------------------------------------------------------------- guard
def artifact_kind(directory: str | Path) -> str | None:
    """The kind recorded in ``directory``'s ``artifact.json`` (or a legacy manifest), else ``None``."""
    directory = Path(directory)
    for name in (ARTIFACT_FILE, *LEGACY_MANIFESTS):
        try:
            data = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            kind = data.get("kind") if name != "manifest.json" else data.get("kind") or data.get("format")
            if isinstance(kind, str) and kind:
                return kind
    return None


def check_target(target: str | Path, kind: str, legacy: Collection[str] = ()) -> dict[str, Any] | None:
    """Refuse a ``target`` that an artifact of ``kind`` must not replace.

    Args:
        target: The output directory.
        kind: The kind about to be written.
        legacy: Kinds recorded by older versions of the same artifact (replaced like ``kind``).

    Returns:
        The manifest of the artifact in ``target`` when that one embeds ``kind`` (a finance model
        embeds a text classifier): the write then updates a part of it. Else ``None``.

    Raises:
        ArtifactError: ``target`` (or a parent) is a file, holds another kind, or is a non-empty
            directory that is no artifact.
    """
    target = Path(target)
    for parent in (target, *target.parents):
        if parent.exists() and not parent.is_dir():
            raise ArtifactError(f"{parent} is a file, not a directory; choose another output directory")
        if parent.exists():
            break
    if not target.is_dir() or not any(_visible(target)):
        return None
    found = artifact_kind(target)
    if found == kind or found in legacy:
        return None
    manifest = read_artifact_manifest(target)
    if manifest is not None and kind in manifest.get("embeds", ()):
        return manifest
    if found is None:
        raise ArtifactError(
            f"{target} is not empty and holds no aigc artifact ({ARTIFACT_FILE} missing); refusing to "
            f"write an artifact of kind {kind!r} into it: choose another output directory or empty it"
        )
    raise ArtifactError(
        f"{target} holds an artifact of kind {found!r}, not {kind!r}; refusing to overwrite it: "
        "choose another output directory"
    )


def read_artifact_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The parsed ``artifact.json`` of ``directory``, or ``None`` when absent or unreadable."""
    try:
        data = json.loads((Path(directory) / ARTIFACT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _visible(directory: Path) -> Iterator[Path]:
    return (p for p in directory.iterdir() if p.name not in (".DS_Store",))


# --------------------------------------------------------------------------------- leftovers
def _leftovers(target: Path, what: str) -> list[Path]:
    """Siblings a killed build of ``target`` left: ``what`` is ``tmp`` or ``old``; newest first."""
    found = [p for p in target.parent.glob(f".{target.name}.{what}-*") if p.is_dir()]
    if what == "tmp":  # the staging name core.lora used before this module existed
        found += [p for p in target.parent.glob(f".{target.name}-tmp-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def recover(target: str | Path) -> Path | None:
    """Put back ``target`` if a build was killed between the two renames of its swap.

    A complete new build (its ``artifact.json`` is written before the swap) is moved into place; failing
    that, the old directory is moved back. Nothing happens when ``target`` exists.

    Returns:
        The leftover moved into place, or ``None``.
    """
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return None
    complete = [p for p in _leftovers(target, "tmp") if (p / ARTIFACT_FILE).is_file()]
    olds = _leftovers(target, "old")
    for candidate in (*complete, *olds):
        try:
            os.rename(candidate, target)
        except OSError:  # another process put one back first, or no write permission
            continue
        logger.warning("Recovered an interrupted swap", extra={"path": str(target), "from": candidate.name})
        return candidate
    return None


def clean_leftovers(target: str | Path, keep: Path | None = None) -> list[Path]:
    """Delete what killed builds of ``target`` left behind (except ``keep``); returns what was removed."""
    target = Path(target)
    removed = []
    for path in (*_leftovers(target, "tmp"), *_leftovers(target, "old")):
        if keep is not None and path.resolve() == keep.resolve():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        logger.info("Removed leftovers of killed builds", extra={"path": str(target), "count": len(removed)})
    return removed


@contextmanager
def _lock(target: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` (non-blocking flock); the file is removed on release.

    Unlinking while still holding the lock is safe because nobody waits for it: a process that
    opened the old file fails to lock it and refuses, one that comes later creates a new file.
    The kernel drops the lock of a killed process, so a kill never leaves ``target`` locked.
    """
    path = target.parent / f".{target.name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ArtifactError(
            f"another process is writing {target}; wait for it to finish or choose another output directory"
        ) from None
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# ------------------------------------------------------------------------------------- write
def write_manifest(
    directory: str | Path,
    kind: str,
    version: int,
    unhashed: Collection[str] = (),
    embeds: Collection[str] = (),
) -> dict[str, Any]:
    """Write ``artifact.json`` into ``directory`` with the sha256 of every file not under ``unhashed``."""
    directory = Path(directory)
    files = {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and p.relative_to(directory).parts[0] not in unhashed
        and p.relative_to(directory).as_posix() != ARTIFACT_FILE
    }
    manifest = {
        "kind": kind,
        "format_version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
        "unhashed": sorted(unhashed),
        "embeds": sorted(embeds),
    }
    (directory / ARTIFACT_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@contextmanager
def open_artifact(
    target: str | Path,
    kind: str,
    *,
    version: int = 1,
    legacy: Collection[str] = (),
    unhashed: Collection[str] = (),
    carry: Collection[str] = (),
    resumable: Collection[str] = (),
    resume: bool = False,
    update: bool = False,
    embeds: Collection[str] = (),
) -> Iterator[Path]:
    """Yield a private directory to fill; on success it becomes ``target`` with an ``artifact.json``.

    Args:
        target: The artifact directory to create or replace.
        kind: What it is (recorded, and compared by the guard).
        version: Format version of this kind.
        legacy: Kinds of older directories this one may replace (see :func:`check_target`).
        unhashed: Top-level names left out of the manifest's hashes (run state, sidecars).
        carry: Top-level names copied from the existing ``target`` into the new build before it is
            yielded (a training run's checkpoint when resuming, say).
        resumable: Top-level names (a checkpoint) that make an unfinished build worth keeping: a build
            holding one is not deleted when the block raises, so that ``resume`` can pick it up.
        resume: Adopt the newest unfinished build that a killed or failed run left (one holding an
            entry of ``resumable``) instead of starting afresh.
        update: Start from a copy of the existing ``target`` (a model re-saved beside its run state
            and app files) rather than from an empty directory.
        embeds: Kinds of the parts this artifact holds (a finance model embeds a text classifier):
            saving such a part into it updates it in place and keeps its kind.

    Raises:
        ArtifactError: The guard refused ``target``, or another process is writing it. On any other
            exception ``target`` is left as it was and the build is deleted (unless resumable).
    """
    target = Path(target)
    root = _active_root(target)
    if root is not None:  # inside another artifact's build: write in place, the outer one commits
        target.mkdir(parents=True, exist_ok=True)
        yield target
        if target.resolve() != root:
            write_manifest(target, kind, version, unhashed, embeds)
        return
    check_target(target, kind, legacy)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        recover(target)
        outer = check_target(target, kind, legacy)
        if outer is not None:  # a part of a larger artifact: update it in place, keep what it is
            kind, version, update = outer["kind"], outer.get("format_version", version), True
            unhashed = {*unhashed, *outer.get("unhashed", ())}
            embeds = outer.get("embeds", ())
        staging = _adoptable(target, resumable) if resume else None
        clean_leftovers(target, keep=staging)
        if staging is None:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            names = [p.name for p in target.iterdir()] if update and target.is_dir() else carry
            for name in names:
                if name != ARTIFACT_FILE:
                    _copy(target / name, staging / name)
        else:
            logger.info("Resuming an unfinished build", extra={"path": str(target), "build": staging.name})
        token = _ACTIVE.set((*_ACTIVE.get(), staging.resolve()))
        try:
            yield staging
            write_manifest(staging, kind, version, unhashed, embeds)
            swap_directory(staging, target)
        except Exception:
            if not any((staging / name).exists() for name in resumable):
                shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            _ACTIVE.reset(token)
    logger.info("Wrote artifact", extra={"path": str(target), "kind": kind})


def _active_root(target: Path) -> Path | None:
    resolved = target.resolve()
    for root in _ACTIVE.get():
        if resolved == root or root in resolved.parents:
            return root
    return None


def _adoptable(target: Path, resumable: Collection[str]) -> Path | None:
    for path in _leftovers(target, "tmp"):
        if not (path / ARTIFACT_FILE).exists() and any((path / name).exists() for name in resumable):
            return path
    return None


def _copy(source: Path, dest: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, dest)
    elif source.is_file():
        shutil.copy2(source, dest)


# -------------------------------------------------------------------------------------- read
def read_kind_json(path: str | Path, kind: str, version: int) -> dict[str, Any]:
    """A JSON object that names its ``kind`` and ``format_version`` (a classifier's ``config.json``,
    an ``ensemble.json``), checked against ``kind`` and ``version``.

    Raises:
        ValueError: Not valid JSON, not an object of ``kind``, or another format version.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} does not describe a {kind} (kind={found!r}).")
    if data.get("format_version") != version:
        raise ValueError(f"{path}: format_version {data.get('format_version')!r} is not {version}.")
    return data


def verify_artifact(directory: str | Path, kinds: Collection[str] = ()) -> dict[str, Any] | None:
    """Check ``directory`` against its ``artifact.json`` (kind and file hashes) before it is loaded.

    An interrupted swap is put back first (:func:`recover`). Directories written before artifact
    manifests existed have none: ``None`` is returned and their own checks apply.

    Args:
        directory: The artifact directory.
        kinds: Accepted kinds (any when empty).

    Returns:
        The manifest, or ``None`` for a directory without one.

    Raises:
        FileNotFoundError: A file named in the manifest is missing.
        ArtifactError: Unreadable manifest, another kind, or a file altered.
    """
    directory = Path(directory)
    manifest = _checked_manifest(directory, kinds)
    if manifest is not None:
        _verify_or_raise(directory, manifest["files"])
    return manifest


class ArtifactCheck:
    """The file hashes of an artifact that :func:`verifying_artifact` checks on a background thread.

    Attributes:
        manifest: The artifact's manifest (``None`` for a directory written before manifests).
        background: The files being hashed on the thread (the others were checked already).
        waited: Whether :meth:`wait` was called (and so raised any mismatch).
    """

    def __init__(
        self, directory: Path, manifest: dict[str, Any] | None, background: Mapping[str, str]
    ) -> None:
        self.manifest = manifest
        self.background = tuple(background)
        self.waited = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run, args=(directory, dict(background)), name="aigc-verify", daemon=True
            )
            self._thread.start()

    def _run(self, directory: Path, digests: dict[str, str]) -> None:
        try:
            _verify_or_raise(directory, digests)
        except BaseException as err:  # handed to the thread that waits
            self._error = err

    def join(self) -> None:
        """Wait for the background hashes to finish, whatever they found."""
        if self._thread is not None:
            self._thread.join()

    def wait(self) -> None:
        """Wait for the background hashes; call it before reading any of :attr:`background`.

        Raises:
            FileNotFoundError: A file named in the manifest is missing.
            ArtifactError: A file differs from the manifest.
        """
        self.join()
        self.waited = True
        if self._error is not None:
            raise self._error


@contextmanager
def verifying_artifact(
    directory: str | Path, kinds: Collection[str] = (), background: Collection[str] = ()
) -> Iterator[ArtifactCheck]:
    """:func:`verify_artifact`, except that the files in ``background`` are hashed on another thread.

    The thread starts first; every other file is checked meanwhile, before the block starts. The
    block reads those while the thread hashes the large ones (``hashlib`` releases the GIL, so
    this uses a second core), and calls :meth:`ArtifactCheck.wait` before it reads a file of
    ``background``: no file is parsed before its hash matched. Leaving the block waits for the
    thread; a block that ends without error and without calling ``wait`` gets the thread's error
    then, so a mismatch is never lost.

    Example:
        >>> with verifying_artifact(path, ("aigc-recommender",), background=("weights.bin",)) as check:
        ...     small = read_small_files(path)
        ...     check.wait()
        ...     weights = read_weights(path / "weights.bin")

    Args:
        directory: The artifact directory.
        kinds: Accepted kinds (any when empty).
        background: Manifest names (paths relative to ``directory``) to hash on the thread; names the
            manifest does not list are ignored.

    Raises:
        FileNotFoundError: A file named in the manifest is missing.
        ArtifactError: Unreadable manifest, another kind, or a file altered (on entry for the other
            files, from ``wait`` or on exit for those of ``background``).
    """
    directory = Path(directory)
    manifest = _checked_manifest(directory, kinds)
    files: dict[str, str] = manifest["files"] if manifest is not None else {}
    names = set(background)
    later = {name: digest for name, digest in files.items() if name in names}
    check = ArtifactCheck(directory, manifest, later)  # started first: the others are hashed meanwhile
    try:
        _verify_or_raise(directory, {name: digest for name, digest in files.items() if name not in later})
        yield check
    except BaseException:  # the block's own error stands; no hashing thread outlives the block
        check.join()
        raise
    if not check.waited:
        check.wait()


def _checked_manifest(directory: Path, kinds: Collection[str]) -> dict[str, Any] | None:
    """``directory``'s manifest (after :func:`recover`), checked for shape and kind; ``None`` if absent."""
    recover(directory)
    path = directory / ARTIFACT_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path} is not a valid artifact manifest ({err}); build it again") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{path} is not a valid artifact manifest (no 'files'); build it again")
    if kinds and manifest.get("kind") not in kinds:
        wanted = " or ".join(repr(k) for k in sorted(kinds))
        raise ArtifactError(
            f"{directory} holds an artifact of kind {manifest.get('kind')!r}, not {wanted}; check the path"
        )
    return manifest


def _verify_or_raise(directory: Path, digests: Mapping[str, str]) -> None:
    try:
        verify_files(directory, digests, ARTIFACT_FILE)
    except FileNotFoundError:
        raise
    except ValueError as err:
        raise ArtifactError(str(err)) from err


__all__ = [
    "ARTIFACT_FILE",
    "ArtifactCheck",
    "ArtifactError",
    "artifact_kind",
    "check_target",
    "clean_leftovers",
    "open_artifact",
    "read_artifact_manifest",
    "recover",
    "sha256_file",
    "verify_artifact",
    "verify_files",
    "verifying_artifact",
    "write_manifest",
]
