"""A model zip split over part packages: built here as real (tiny) installed distributions on sys.path."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import model_archives, models
from core.failpoints import ENV_VAR, EXIT_CODE
from core.io.artifacts import verify_artifact
from core.model_archives import ArchiveError, ArchivePart, MissingPartsError, SplitArchive

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "config.json": b'{"hidden_size": 8}',
    "model.safetensors": bytes(range(256)) * 300,
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}
# Assembles the archive described by a JSON file; run in a subprocess for the kill and concurrency tests.
SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from core.model_archives import ArchivePart, SplitArchive, ensure_assembled
spec = json.loads(open(sys.argv[1]).read())
spec["parts"] = tuple(ArchivePart(**p) for p in spec["parts"])
print(ensure_assembled(SplitArchive(**spec), timeout=60))
"""


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiny-model/", b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _install_parts(site: Path, blob: bytes, count: int = 3, skip: int | None = None) -> SplitArchive:
    """Cut ``blob`` into ``count`` parts, each installed as a distribution the way pip lays one out."""
    step = -(-len(blob) // count)
    parts = []
    for n in range(1, count + 1):
        chunk = blob[(n - 1) * step : n * step]
        dist, folder = f"tiny-model-part-{n:03d}", f"tiny-model-part_{n:03d}"
        rel = f"{folder}/input/tiny-model.zip.{n:03d}"
        parts.append(ArchivePart(dist, rel, len(chunk), hashlib.sha256(chunk).hexdigest()))
        if n == skip:
            continue
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(chunk)
        info = site / f"tiny_model_part_{n:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{rel},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return SplitArchive(
        name="tiny-model",
        parts=tuple(parts),
        sha256=hashlib.sha256(blob).hexdigest(),
        root="tiny-model",
        install_hint="`pip install -e '.[tiny]'`",
    )


def _blob() -> bytes:
    members = {f"tiny-model/{name}": data for name, data in FILES.items()}
    return _zip({**members, "tiny-model/desktop.ini": b"[.ShellClassInfo]", "README-outside.md": b"x"})


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A site-packages directory on sys.path, and a model cache of this test's own."""
    monkeypatch.setenv("AIGC_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def _leftovers(archive: SplitArchive) -> list[str]:
    target = model_archives.assembled_dir(archive)
    return sorted(p.name for p in target.parent.glob(f".{target.name}.*") if p.is_dir())


def _run_script(archive: SplitArchive, site: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    spec = site.parent / "archive.json"
    spec.write_text(json.dumps(dataclasses.asdict(archive)))
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)]), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(spec)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_parts_are_assembled_once_into_a_verified_directory(site, caplog):
    archive = _install_parts(site, _blob())
    assert model_archives.state(archive) == "parts-installed"
    with caplog.at_level(logging.INFO, logger="core.model_archives"):
        path = model_archives.ensure_assembled(archive)
        assert model_archives.ensure_assembled(archive) == path
    assert [r.message for r in caplog.records].count("Assembling packaged model once") == 1
    assert path == model_archives.assembled_dir(archive) and path.name.startswith("tiny-model-")
    for name, data in FILES.items():
        assert (path / name).read_bytes() == data
    # Only the model folder of the zip, without Windows folder settings; nothing else is left behind.
    assert not (path / "desktop.ini").exists() and not (path / "README-outside.md").exists()
    assert not list(path.glob("*.zip")) and _leftovers(archive) == []
    manifest = verify_artifact(path, kinds=(model_archives.KIND,))
    assert set(manifest["files"]) == {*FILES, "source.json"}
    assert model_archives.state(archive) == "assembled"


def test_an_assembled_model_no_longer_needs_its_parts_but_a_damaged_one_is_rebuilt(site):
    archive = _install_parts(site, _blob())
    path = model_archives.ensure_assembled(archive)
    (path / "model.safetensors").write_bytes(b"truncated")  # a size that differs from the recorded one
    assert model_archives.state(archive) == "parts-installed"
    assert model_archives.ensure_assembled(archive) == path
    assert (path / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_missing_parts_name_the_packages_and_the_install_command(site):
    archive = _install_parts(site, _blob(), skip=2)
    assert model_archives.state(archive) == "missing"
    with pytest.raises(MissingPartsError) as err:
        model_archives.ensure_assembled(archive)
    message = str(err.value)
    assert "1 of its 3 part packages" in message and "tiny-model-part-002" in message
    assert "`pip install -e '.[tiny]'`" in message and "\n" not in message
    assert not model_archives.assembled_dir(archive).exists() and _leftovers(archive) == []


def test_a_corrupt_part_is_refused_and_nothing_is_written(site):
    archive = _install_parts(site, _blob())
    part = site / archive.parts[1].file
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF  # same size, other content: only the hash tells
    part.write_bytes(bytes(data))
    assert model_archives.state(archive) == "parts-installed"  # sizes are all state() checks
    with pytest.raises(ArchiveError, match="tiny-model-part-002.*--force-reinstall --no-deps") as err:
        model_archives.ensure_assembled(archive)
    assert "\n" not in str(err.value)
    assert not model_archives.assembled_dir(archive).exists() and _leftovers(archive) == []

    part.write_bytes(bytes(data[:-1]))  # a truncated part is caught without reading it
    with pytest.raises(ArchiveError, match="bytes, not the"):
        model_archives.ensure_assembled(archive)


def test_parts_joined_in_the_wrong_order_fail_the_zip_checksum(site):
    archive = _install_parts(site, _blob())
    swapped = dataclasses.replace(archive, parts=(archive.parts[1], archive.parts[0], archive.parts[2]))
    with pytest.raises(ArchiveError, match="joined do not match the recorded sha256"):
        model_archives.ensure_assembled(swapped)


def test_a_member_outside_the_archive_is_refused(site):
    archive = _install_parts(site, _zip({"tiny-model/config.json": b"{}", "tiny-model/../../evil": b"x"}))
    with pytest.raises(ArchiveError, match="escapes the archive"):
        model_archives.ensure_assembled(archive)
    assert not (site.parent / "evil").exists() and not model_archives.assembled_dir(archive).exists()


def test_a_killed_assembly_leaves_no_model_and_the_next_use_completes(site):
    archive = _install_parts(site, _blob())
    killed = _run_script(archive, site, {ENV_VAR: "models.during_assembly"})
    _, stderr = killed.communicate(timeout=60)
    assert killed.returncode == EXIT_CODE, stderr
    assert not model_archives.assembled_dir(archive).exists()
    assert len(_leftovers(archive)) == 1  # the staging directory, extracted but never swapped in
    assert model_archives.state(archive) == "parts-installed"

    path = model_archives.ensure_assembled(archive)
    assert (path / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert _leftovers(archive) == []


def test_concurrent_first_uses_assemble_once_and_share_the_result(site):
    archive = _install_parts(site, _blob())
    target = model_archives.assembled_dir(archive)
    # Hold the lock while both start, so that they really contend for it.
    with model_archives._assembly_lock(target, timeout=5):
        procs = [_run_script(archive, site) for _ in range(2)]
        with pytest.raises(subprocess.TimeoutExpired):
            procs[0].wait(timeout=1.0)  # waits for the lock rather than failing
        assert not target.exists()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(target)}
    assert sum("Assembling packaged model once" in err for _, err in outputs) == 1
    verify_artifact(target, kinds=(model_archives.KIND,))


def test_a_registered_split_model_resolves_and_explains_what_to_install(site, monkeypatch):
    archive = _install_parts(site, _blob())
    known = models.PackagedModel(
        name="tiny-split",
        package="",
        distribution="tiny-model-part-001..003",
        subdir="",
        kind="encoder",
        install_hint="pip install -e '.[tiny]'",
        description="a tiny split model",
        archive=archive,
        optional=True,
    )
    monkeypatch.setitem(models.KNOWN_MODELS, "tiny-split", known)
    rows = {row["name"]: row for row in models.list_models()}
    assert rows["tiny-split"]["status"] == "not assembled" and rows["tiny-split"]["optional"] is True
    resolved = models.resolve("tiny-split")
    assert resolved.source == "package" and Path(resolved.path) == model_archives.assembled_dir(archive)
    assert {row["name"]: row for row in models.list_models()}["tiny-split"]["status"] == "installed"

    mpnet = models.KNOWN_MODELS["mpnet-base"]
    gone = dataclasses.replace(
        mpnet.archive,
        parts=tuple(dataclasses.replace(p, distribution=p.distribution + "-absent") for p in archive.parts),
        sha256="0" * 64,  # never assembled in this test's cache
    )
    monkeypatch.setitem(models.KNOWN_MODELS, "mpnet-base", dataclasses.replace(mpnet, archive=gone))
    with pytest.raises(models.ModelNotFoundError) as err:
        models.resolve("sentence-transformers/all-mpnet-base-v2")
    assert "pip install -e '.[accurate]'" in str(err.value) and "\n" not in str(err.value)
    from core.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output  # an optional model that is missing fails nothing
    listed = {row["name"]: row for row in json.loads(result.stdout)}
    assert listed["mpnet-base"]["status"] == "missing"
    assert "pip install -e '.[accurate]'" in listed["mpnet-base"]["path"]
