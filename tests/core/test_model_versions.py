"""The versioned model registry: builds committed whole, the active pointer, rollback, the guard, kills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.failpoints import EXIT_CODE
from core.model_versions import (
    ACTIVE_FILE,
    ModelRegistry,
    RegistryError,
    compare_scores,
    version_name,
    version_number,
)

ROOT = Path(__file__).resolve().parents[2]
KIND = "test-models"


def build(registry: ModelRegistry, weights: str, score: float) -> str:
    with registry.lock(), registry.build() as candidate:
        (candidate.path / "model").mkdir()
        (candidate.path / "model" / "weights.txt").write_text(weights, encoding="utf-8")
        candidate.write_record({"scores": {"new": {"accuracy": score}}})
    return candidate.name


def test_an_empty_registry_has_no_versions_and_nothing_active(tmp_path):
    registry = ModelRegistry(tmp_path / "models", KIND)
    assert registry.versions() == [] and registry.active() is None and registry.active_name() is None
    assert registry.active_path("model") is None and registry.history() == []
    assert registry.next_name() == "v0001"


def test_builds_are_numbered_committed_whole_and_activated(tmp_path):
    registry = ModelRegistry(tmp_path / "models", KIND)
    first, second = build(registry, "w1", 0.8), build(registry, "w2", 0.9)
    assert (first, second) == ("v0001", "v0002")
    assert [v.name for v in registry.versions()] == ["v0001", "v0002"]
    assert registry.get("2").record["scores"] == {"new": {"accuracy": 0.9}}
    assert registry.get("v0002").record["created_at"].endswith("+00:00")
    assert registry.active() is None  # building does not activate

    switch = registry.activate("v0001", actor="ana", details={"why": "first"})
    assert (switch.version, switch.previous, switch.action, switch.actor) == ("v0001", None, "promote", "ana")
    assert registry.active_path("model").joinpath("weights.txt").read_text() == "w1"
    registry.activate("v0002")
    back = registry.activate("v0001", action="rollback", actor="cli:ops")
    assert back.previous == "v0002" and registry.active_name() == "v0001"
    assert [h["action"] for h in registry.history()] == ["promote", "promote", "rollback"]
    assert [v.active for v in registry.versions()] == [True, False]
    pointer = json.loads((registry.root / ACTIVE_FILE).read_text())
    assert pointer["version"] == "v0001" and pointer["history"][0]["details"] == {"why": "first"}


def test_a_failed_build_leaves_nothing_visible(tmp_path):
    registry = ModelRegistry(tmp_path / "models", KIND)
    build(registry, "w1", 0.8)
    registry.activate("v0001")
    with pytest.raises(RuntimeError), registry.lock(), registry.build() as candidate:
        (candidate.path / "half.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("training crashed")
    assert [v.name for v in registry.versions()] == ["v0001"] and registry.active_name() == "v0001"
    assert not list(registry.versions_dir.glob(".v0002*"))
    assert build(registry, "w2", 0.9) == "v0002"  # the number is reused, not skipped


def test_bad_names_unknown_versions_and_damaged_versions_are_refused(tmp_path):
    registry = ModelRegistry(tmp_path / "models", KIND)
    build(registry, "w1", 0.8)
    assert version_number("v0012") == 12 and version_number(" 7 ") == 7 and version_name(3) == "v0003"
    for bad in ("latest", "v0", "-1", "v12a"):
        with pytest.raises(RegistryError, match="not a version name"):
            registry.get(bad)
    with pytest.raises(RegistryError, match=r"no version 'v9' .*\(versions: v0001\)"):
        registry.activate("v9")
    (registry.versions_dir / "v0001" / "model" / "weights.txt").write_text("tampered")
    with pytest.raises(RegistryError, match="v0001 is damaged and cannot be activated"):
        registry.activate("v0001")
    assert registry.active_name() is None


def test_a_corrupt_pointer_is_reported_and_loaders_fall_back(tmp_path):
    registry = ModelRegistry(tmp_path / "models", KIND)
    build(registry, "w1", 0.8)
    registry.activate("v0001")
    (registry.root / ACTIVE_FILE).write_text("{not json")
    with pytest.raises(RegistryError, match="not a valid pointer file"):
        registry.active_name()
    assert registry.active_path("model") is None  # the bot then loads its default paths


def test_one_writer_at_a_time(tmp_path):
    registry = ModelRegistry(tmp_path / "models", KIND)
    script = (
        "import sys, time\nfrom core.model_versions import ModelRegistry\n"
        f"r = ModelRegistry({str(registry.root)!r}, {KIND!r})\n"
        "with r.lock():\n    print('locked', flush=True)\n    time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RegistryError, match="another process is building or activating"), registry.lock():
            pass
    finally:
        holder.kill()
        holder.wait()
    with registry.lock():  # the kernel released the killed holder's lock
        pass


@pytest.mark.parametrize(
    ("point", "visible", "active"),
    [
        ("versions.before_commit", ["v0001"], "v0001"),
        ("versions.before_activate", ["v0001", "v0002"], "v0001"),
    ],
)
def test_a_kill_leaves_the_active_version_and_no_half_written_one(tmp_path, point, visible, active):
    registry = ModelRegistry(tmp_path / "models", KIND)
    build(registry, "w1", 0.8)
    registry.activate("v0001")
    script = (
        "from core.model_versions import ModelRegistry\n"
        f"r = ModelRegistry({str(registry.root)!r}, {KIND!r})\n"
        "with r.lock(), r.build() as c:\n"
        "    (c.path / 'model').mkdir()\n    (c.path / 'model' / 'weights.txt').write_text('w2')\n"
        "    c.write_record({'scores': {'new': {'accuracy': 0.9}}})\n"
        "r.activate(c.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIGC_FAILPOINT": point}
    killed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert killed.returncode == EXIT_CODE, killed.stderr
    assert [v.name for v in registry.versions()] == visible and registry.active_name() == active
    assert registry.active_path("model").joinpath("weights.txt").read_text() == "w1"
    if point == "versions.before_commit":
        assert list(registry.versions_dir.glob(".v0002.tmp-*")), "the killed build's staging is left"
        assert build(registry, "w2", 0.9) == "v0002"
        assert not list(registry.versions_dir.glob(".v0002.tmp-*")), "and removed by the next build"
    else:  # committed whole but never served: it can be activated by hand
        assert registry.get("v0002").record["scores"]["new"]["accuracy"] == 0.9
        registry.activate("v0002")


def test_compare_scores_promotes_only_when_not_worse():
    old = {"accuracy": 0.80, "f1": 0.70}
    assert compare_scores(old, {"accuracy": 0.80, "f1": 0.70}).promote  # equal passes
    assert compare_scores(old, {"accuracy": 0.90, "f1": 0.75}).promote
    verdict = compare_scores(old, {"accuracy": 0.95, "f1": 0.69})
    assert not verdict.promote and verdict.worse == {"f1": (0.70, 0.69)}
    assert compare_scores(old, {"accuracy": 0.95, "f1": 0.69}, tolerance=0.02).promote
    assert not compare_scores(old, {"accuracy": 0.95, "f1": 0.69}, tolerance={"accuracy": 0.5}).promote
    fresh = compare_scores({"accuracy": None}, {"accuracy": 0.1})  # nothing served: nothing to beat
    assert fresh.promote and fresh.compared == []
    missing = compare_scores(old, {"accuracy": 0.9})
    assert not missing.promote and missing.worse == {"f1": (0.70, None)}
    assert json.dumps(missing.to_dict())  # strict JSON: no NaN
    with pytest.raises(ValueError, match="tolerance must be 0 or more"):
        compare_scores(old, old, tolerance=-0.1)
