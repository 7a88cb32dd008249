"""Artifact directories: guard, atomic replace, leftovers, recovery after a kill, verify on load."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from core.io.artifacts import (
    ARTIFACT_FILE,
    ArtifactError,
    artifact_kind,
    check_target,
    open_artifact,
    recover,
    verify_artifact,
    verifying_artifact,
)


def _build(target: Path, kind: str = "demo", text: str = "v1", **kwargs) -> Path:
    with open_artifact(target, kind, **kwargs) as tmp:
        (tmp / "data.txt").write_text(text)
        (tmp / "sub").mkdir(exist_ok=True)
        (tmp / "sub" / "part.bin").write_bytes(text.encode() * 3)
    return target


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_build_writes_manifest_with_kind_and_hashes_and_leaves_nothing_beside(tmp_path):
    target = _build(tmp_path / "out", version=3)
    manifest = json.loads((target / ARTIFACT_FILE).read_text())
    assert manifest["kind"] == "demo" and manifest["format_version"] == 3
    assert set(manifest["files"]) == {"data.txt", "sub/part.bin"}
    assert verify_artifact(target, kinds=("demo",)) == manifest
    assert _siblings(target) == ["out"]


def test_replace_of_own_kind_is_whole_and_failure_keeps_the_old(tmp_path):
    target = _build(tmp_path / "out")
    with pytest.raises(RuntimeError, match="boom"), open_artifact(target, "demo") as tmp:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("boom")
    assert (target / "data.txt").read_text() == "v1" and _siblings(target) == ["out"]
    _build(target, text="v2")
    assert (target / "data.txt").read_text() == "v2"
    assert verify_artifact(target) is not None


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda p: p.write_text("x"), "is a file, not a directory"),
        (lambda p: (p.mkdir(), (p / "thesis.txt").write_text("keep")), "holds no aigc artifact"),
        (lambda p: _build(p, kind="aigc-support-kb"), "kind 'aigc-support-kb', not 'demo'"),
        (
            lambda p: (p.mkdir(), (p / "manifest.json").write_text('{"format": "aigc-support-kb"}')),
            "kind 'aigc-support-kb', not 'demo'",
        ),
    ],
)
def test_guard_refuses_files_other_kinds_and_foreign_folders(tmp_path, setup, match):
    target = tmp_path / "out"
    setup(target)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(ArtifactError, match=match):
        _build(target)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, no lock left


def test_guard_accepts_missing_empty_own_and_legacy_kinds(tmp_path):
    check_target(tmp_path / "missing", "demo")
    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty", "demo")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text('{"kind": "text-classifier"}')
    assert artifact_kind(legacy) == "text-classifier"
    _build(legacy, legacy=("text-classifier",))
    assert artifact_kind(legacy) == "demo"
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArtifactError, match="f is a file"):
        check_target(tmp_path / "f" / "out", "demo")


def test_leftovers_of_killed_builds_are_cleaned_by_the_next_run(tmp_path):
    target = _build(tmp_path / "kb")
    for name in (".kb.tmp-dead1", ".kb.old-dead2", ".kb-tmp-dead3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "junk").write_text("x")
    _build(target, text="v2")
    assert _siblings(target) == ["kb"]


def test_a_kill_between_the_two_renames_is_undone_on_load(tmp_path):
    target = _build(tmp_path / "kb", text="old")
    # State after a kill at index.between_renames: target moved aside, the complete new build beside it.
    os.rename(target, tmp_path / ".kb.old-1234")
    new = tmp_path / ".kb.tmp-5678"
    _build(tmp_path / "new", text="new")
    os.rename(tmp_path / "new", new)
    assert verify_artifact(target) is not None
    assert (target / "data.txt").read_text() == "new"
    # Only the old copy is left, and the next build removes it.
    assert _siblings(target) == [".kb.old-1234", "kb"]
    _build(target, text="newer")
    assert _siblings(target) == ["kb"]


def test_without_a_complete_new_build_the_old_one_is_put_back(tmp_path):
    target = _build(tmp_path / "kb", text="old")
    os.rename(target, tmp_path / ".kb.old-1234")
    (tmp_path / ".kb.tmp-5678").mkdir()  # unfinished: no artifact.json
    assert recover(target) == tmp_path / ".kb.old-1234"
    assert (target / "data.txt").read_text() == "old"


def test_verify_detects_altered_files_and_wrong_kind(tmp_path):
    target = _build(tmp_path / "out")
    with pytest.raises(ArtifactError, match="not 'other'"):
        verify_artifact(target, kinds=("other",))
    (target / "sub" / "part.bin").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="part.bin does not match the checksum"):
        verify_artifact(target)
    (target / "sub" / "part.bin").unlink()
    with pytest.raises(FileNotFoundError, match="part.bin is missing"):
        verify_artifact(target)


def _hashing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aigc-verify"]


def test_background_files_are_hashed_on_a_thread_and_a_mismatch_raises_from_wait(tmp_path):
    target = _build(tmp_path / "out")
    with verifying_artifact(target, kinds=("demo",), background=("sub/part.bin", "absent")) as check:
        assert check.background == ("sub/part.bin",) and check.manifest["kind"] == "demo"
        check.wait()
    (target / "sub" / "part.bin").write_bytes(b"tampered")
    with verifying_artifact(target, background=("sub/part.bin",)) as check:
        assert (target / "data.txt").read_text() == "v1"  # the other files were checked on entry
        with pytest.raises(ArtifactError, match="part.bin does not match the checksum"):
            check.wait()
    assert check.waited and not _hashing_threads()
    # A block that never waits still gets the mismatch when it ends: it is never lost.
    with (
        pytest.raises(ArtifactError, match="part.bin does not match"),
        verifying_artifact(target, background=("sub/part.bin",)),
    ):
        pass
    (target / "sub" / "part.bin").unlink()
    with (
        pytest.raises(FileNotFoundError, match="part.bin is missing"),
        verifying_artifact(target, background=("sub/part.bin",)) as check,
    ):
        check.wait()


def test_foreground_mismatches_raise_on_entry_and_the_blocks_own_error_stands(tmp_path):
    target = _build(tmp_path / "out")
    (target / "data.txt").write_text("tampered")
    with (
        pytest.raises(ArtifactError, match="data.txt does not match the checksum"),
        verifying_artifact(target, background=("sub/part.bin",)),
    ):
        raise AssertionError("the block must not run")
    assert not _hashing_threads()
    target = _build(tmp_path / "again")
    (target / "sub" / "part.bin").write_bytes(b"tampered")
    with (
        pytest.raises(KeyError, match="parse error"),
        verifying_artifact(target, background=("sub/part.bin",)),
    ):
        raise KeyError("parse error")
    assert not _hashing_threads()
    with (
        pytest.raises(ArtifactError, match="not 'other'"),
        verifying_artifact(target, kinds=("other",), background=("sub/part.bin",)),
    ):
        pass
    (tmp_path / "legacy").mkdir()
    with verifying_artifact(tmp_path / "legacy", background=("x",)) as check:  # no manifest: nothing
        assert check.manifest is None and check.background == ()


def test_unhashed_sidecars_may_change_after_the_build(tmp_path):
    target = tmp_path / "kb"
    with open_artifact(target, "demo", unhashed=("calibration.json",)) as tmp:
        (tmp / "data.txt").write_text("x")
    (target / "calibration.json").write_text("{}")
    assert "calibration.json" not in verify_artifact(target)["files"]


def test_nested_writes_go_into_the_outer_build_which_records_its_own_kind(tmp_path):
    target = tmp_path / "app-model"
    with open_artifact(target, "app-model", embeds=("core-model",)) as outer:
        _build(outer, kind="core-model")  # in place, no manifest of its own
        _build(outer / "part", kind="core-part")  # a nested artifact keeps its manifest
        (outer / "app.json").write_text("{}")
    assert artifact_kind(target) == "app-model" and artifact_kind(target / "part") == "core-part"
    # Saving the embedded kind into it later updates it in place and keeps the app's files and kind.
    _build(target, kind="core-model", text="v2")
    assert (target / "app.json").is_file() and (target / "data.txt").read_text() == "v2"
    assert artifact_kind(target) == "app-model" and verify_artifact(target) is not None


def test_a_second_writer_of_the_same_directory_is_refused(tmp_path):
    target = tmp_path / "out"
    with open_artifact(target, "demo") as tmp:
        (tmp / "data.txt").write_text("x")
        with pytest.raises(ArtifactError, match="another process is writing"):
            _build(target)
    assert (target / "data.txt").read_text() == "x"
    assert _siblings(target) == ["out"]


def test_resumable_build_survives_an_error_and_is_adopted_on_resume(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), open_artifact(target, "demo", resumable=("checkpoint",)) as tmp:
        (tmp / "checkpoint").mkdir()
        (tmp / "checkpoint" / "state.json").write_text('{"epoch": 1}')
        raise KeyboardInterrupt
    (leftover,) = tmp_path.glob(".run.tmp-*")
    with open_artifact(target, "demo", resumable=("checkpoint",), resume=True) as tmp:
        assert tmp == leftover and (tmp / "checkpoint" / "state.json").is_file()
        (tmp / "model.bin").write_bytes(b"m")
    assert _siblings(target) == ["run"] and (target / "checkpoint" / "state.json").is_file()
    # A failed build without a checkpoint is deleted; a new (not resumed) run cleans a resumable one.
    with pytest.raises(ValueError), open_artifact(target, "demo", resumable=("checkpoint",)) as tmp:
        raise ValueError("nothing to resume")
    assert _siblings(target) == ["run"]
