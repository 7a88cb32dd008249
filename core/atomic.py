"""Atomic outputs: readers see the old file or directory or the new one, never a half-written mix."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.failpoints import failpoint


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` to fill; on success it replaces ``target``.

    On an exception the temporary directory is removed and ``target`` is left as it was. An existing
    ``target`` is moved aside, the new one renamed into place, then the old one deleted (during the
    swap the path is briefly absent); if the rename fails, the old directory is put back.

    Example::

        with atomic_directory("runs/index") as tmp:
            (tmp / "manifest.json").write_text("{}")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        swap_directory(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def swap_directory(new: Path, target: Path) -> None:
    """Replace ``target`` by ``new`` (both on one file system), restoring ``target`` if that fails."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        failpoint("index.between_renames")  # the path is absent here; core.io.artifacts.recover puts it back
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def default_file_mode() -> int:
    """The mode a plain ``open()`` gives a new file: ``0o666`` less the umask (mkstemp creates 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it is renamed over ``path``.

    The file gets the mode a plain ``open()`` would give it. On an exception the temporary file is
    removed and ``path`` is left as it was; a killed process leaves ``.NAME.XXXX<suffix>`` beside it
    (give a ``suffix`` such as ``".tmp"`` so the caller can find and remove such leftovers).

    Example::

        with atomic_path("out/results.parquet", suffix=".tmp") as tmp:
            pyarrow.parquet.write_table(table, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, default_file_mode())
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes, suffix: str = "") -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename, with the usual file mode.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    with atomic_path(path, suffix) as tmp:
        tmp.write_bytes(data)
