"""atomic_directory and write_bytes_atomic: the target is replaced only when the write succeeds."""

from __future__ import annotations

import os

import pytest

from core.atomic import atomic_directory


def test_success_replaces_the_old_directory_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_keeps_the_old_directory(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_bytes_atomic_replaces_whole_file_with_the_usual_mode(tmp_path):
    from core.atomic import default_file_mode, write_bytes_atomic

    path = tmp_path / "sub" / "out.json"
    write_bytes_atomic(path, b"old")
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == default_file_mode()  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temporary left behind


def test_write_bytes_atomic_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    from core import atomic

    path = tmp_path / "out.md"
    path.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk full (test)")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_bytes_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.md"]


def test_atomic_path_renames_on_success_and_removes_the_temp_on_failure(tmp_path):
    from core.atomic import atomic_path, default_file_mode

    path = tmp_path / "out.parquet"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path, suffix=".tmp") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.parquet.") and tmp.suffix == ".tmp"
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert path.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["out.parquet"]
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["out.parquet"]
    assert os.stat(path).st_mode & 0o777 == default_file_mode()
