import json

import numpy as np
import pytest

from apps.customer_service import knowledge_base as kb_module
from apps.customer_service.config import KBConfig
from apps.customer_service.errors import KBFormatError, SourceError
from apps.customer_service.knowledge_base import KnowledgeBase, load_config, read_manifest
from core.embeddings import Embedder

FAQ = (
    "id,question,answer\n"
    "ship,How long is delivery?,Three to five days.\n"
    "ret,Can I return it?,Within 30 days.\n"
)
DOC = "# Warranty\n\n## Cover\n\nTwo years against defects.\n\n## Claims\n\nUse the order page.\n"


@pytest.fixture
def sources(tmp_path):
    folder = tmp_path / "src"
    (folder / "docs").mkdir(parents=True)
    (folder / "faq.csv").write_text(FAQ, encoding="utf-8")
    (folder / "docs" / "warranty.md").write_text(DOC, encoding="utf-8")
    (folder / "past.jsonl").write_text(
        '{"question": "Parcel late?", "answer": "Ships Monday."}\n', encoding="utf-8"
    )
    return folder


def build(sources, kb_dir, embedder):
    specs = [sources / "faq.csv", sources / "docs", f"dialogue:{sources / 'past.jsonl'}"]
    return KnowledgeBase.build(specs, kb_dir, embedder=embedder)


def test_build_and_load_round_trip(sources, tmp_path, tiny_embedder):
    kb_dir = tmp_path / "kb"
    built = build(sources, kb_dir, tiny_embedder)
    ids = ["ship", "ret", "docs/warranty.md#cover-0", "docs/warranty.md#claims-0", "past.jsonl#0"]
    assert [e.id for e in built.entries] == ids
    assert built.last_build.added == 5 and built.last_build.embedded == 10  # two fields per entry
    assert sorted(p.name for p in kb_dir.iterdir()) == [
        "artifact.json",
        "bm25",
        "dense",
        "entries.jsonl",
        "manifest.json",
        "screen.json",
    ]
    manifest = read_manifest(kb_dir)
    assert manifest["embedding_model"] == tiny_embedder.model_id and manifest["dim"] == 32
    assert manifest["counts"] == {"entries": 5, "faq": 2, "doc": 2, "dialogue": 1}
    assert manifest["hashes"] == {e.id: e.content_hash for e in built.entries}
    assert load_config(manifest) == KBConfig(embedding_model=tiny_embedder.model_id)
    loaded = KnowledgeBase.load(kb_dir)
    assert loaded.entries == built.entries
    assert loaded.get("ret").text == "Within 30 days." and "ship" in loaded and "nope" not in loaded
    for field in ("question", "content"):
        np.testing.assert_allclose(
            loaded.dense[field].get_vectors(ids), built.dense[field].get_vectors(ids), atol=1e-6
        )
    assert loaded.bm25.scores("delivery")["question"].argmax() == 0
    with pytest.raises(KeyError, match="nope"):
        loaded.get("nope")
    # Only the KB directory is left beside it: no temp or old copies, no lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb", "src"]


def test_incremental_reindex(sources, tmp_path, tiny_embedder):
    kb_dir = tmp_path / "kb"
    first = build(sources, kb_dir, tiny_embedder)
    ret_vector = first.dense["content"].get_vectors(["ret"])
    tiny_embedder.calls.clear()
    # Change one FAQ answer, remove one FAQ, add one; edit one document section.
    (sources / "faq.csv").write_text(
        "id,question,answer\nship,How long is delivery?,Two to four days.\nnew,Gift cards?,Valid 3 years.\n"
        "ret,Can I return it?,Within 30 days.\n",
        encoding="utf-8",
    )
    (sources / "docs" / "warranty.md").write_text(
        DOC.replace("Use the order page.", "Call us."), encoding="utf-8"
    )
    second = build(sources, kb_dir, tiny_embedder)
    report = second.last_build
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 2, 0, 3)
    assert sorted(set(tiny_embedder.encoded)) == sorted(
        {"How long is delivery?", "Two to four days.", "Gift cards?", "Valid 3 years.",
         "Warranty › Claims", "Warranty › Claims\nCall us."}
    )  # fmt: skip
    loaded = KnowledgeBase.load(kb_dir)
    np.testing.assert_array_equal(loaded.dense["content"].get_vectors(["ret"]), ret_vector)
    assert loaded.get("ship").text == "Two to four days."
    # Removal: drop the dialogue source.
    tiny_embedder.calls.clear()
    third = KnowledgeBase.build([sources / "faq.csv", sources / "docs"], kb_dir, embedder=tiny_embedder)
    assert (
        third.last_build.removed == 1 and third.last_build.embedded == 0 and tiny_embedder.calls in ([], [[]])
    )
    reloaded = KnowledgeBase.load(kb_dir)
    assert "past.jsonl#0" not in reloaded
    for field in ("question", "content"):
        assert set(reloaded.dense[field].ids) == {e.id for e in reloaded.entries}
    assert reloaded.bm25.n_docs == len(reloaded) == 5


def test_changing_the_embedding_model_re_embeds_everything(sources, tmp_path, tiny_embedder):
    kb_dir = tmp_path / "kb"
    build(sources, kb_dir, tiny_embedder)
    # Same weights under another model id: vectors from another model are never mixed in, so all are redone.
    renamed = Embedder.from_model(tiny_embedder.model, tiny_embedder.tokenizer, model_id="tiny-v2")
    rebuilt = build(sources, kb_dir, renamed)
    assert rebuilt.last_build.embedded == 10 and rebuilt.last_build.unchanged == 0
    assert KnowledgeBase.load(kb_dir).embedding_model == "tiny-v2"


def test_bad_source_leaves_previous_kb_intact(sources, tmp_path, tiny_embedder):
    kb_dir = tmp_path / "kb"
    build(sources, kb_dir, tiny_embedder)
    before = (kb_dir / "manifest.json").read_text()
    (sources / "faq.csv").write_text("question,answer\nQ,\n", encoding="utf-8")
    with pytest.raises(SourceError, match="field 'answer': is empty"):
        build(sources, kb_dir, tiny_embedder)
    assert (kb_dir / "manifest.json").read_text() == before
    assert len(KnowledgeBase.load(kb_dir)) == 5


def test_failure_while_writing_leaves_previous_kb_intact(sources, tmp_path, tiny_embedder, monkeypatch):
    kb_dir = tmp_path / "kb"
    build(sources, kb_dir, tiny_embedder)
    before = {p.relative_to(kb_dir): p.read_bytes() for p in kb_dir.rglob("*") if p.is_file()}
    (sources / "faq.csv").write_text(FAQ.replace("Three to five", "Two"), encoding="utf-8")

    def disk_full(self, directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kb_module.FieldBM25, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build(sources, kb_dir, tiny_embedder)
    after = {p.relative_to(kb_dir): p.read_bytes() for p in kb_dir.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb", "src"]  # temp dir cleaned up
    assert KnowledgeBase.load(kb_dir).get("ship").text == "Three to five days."


def test_refuses_to_replace_a_directory_that_is_not_a_kb(sources, tmp_path, tiny_embedder):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(KBFormatError, match="is not empty and holds no aigc artifact"):
        build(sources, precious, tiny_embedder)
    assert (precious / "thesis.txt").read_text() == "do not delete"
    # An empty directory is fine to build into.
    (tmp_path / "empty").mkdir()
    assert len(build(sources, tmp_path / "empty", tiny_embedder)) == 5


def test_corrupt_parts_are_rebuilt_on_the_next_index(sources, tmp_path, tiny_embedder):
    kb_dir = tmp_path / "kb"
    build(sources, kb_dir, tiny_embedder)
    (kb_dir / "dense" / "content" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(KBFormatError, match="dense index 'content'"):
        KnowledgeBase.load(kb_dir)
    rebuilt = build(sources, kb_dir, tiny_embedder)
    assert rebuilt.last_build.embedded == 10
    assert len(KnowledgeBase.load(kb_dir)) == 5


def corrupt_manifest(kb_dir):
    (kb_dir / "manifest.json").write_text("{not json")


def wrong_format(kb_dir):
    path = kb_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": "something-else"}))


def tamper_entry(kb_dir):
    path = kb_dir / "entries.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[0])
    row["text"] = "tampered"
    path.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")


def drop_entry(kb_dir):
    path = kb_dir / "entries.jsonl"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")


def remove_bm25(kb_dir):
    (kb_dir / "bm25" / "config.json").unlink()


@pytest.mark.parametrize(
    "damage,match",
    [
        (corrupt_manifest, r"manifest.json is not valid JSON"),
        (wrong_format, r"field 'format' must be 'aigc-support-kb'"),
        (tamper_entry, r"entries.jsonl: line 1 is not a valid entry: .*content_hash"),
        (drop_entry, r"disagree on the entries"),
        (remove_bm25, r"BM25 index .*config.json is missing or corrupt"),
    ],
)
def test_load_reports_corruption(sources, tmp_path, tiny_embedder, damage, match):
    kb_dir = tmp_path / "kb"
    build(sources, kb_dir, tiny_embedder)
    damage(kb_dir)
    with pytest.raises(KBFormatError, match=match):
        KnowledgeBase.load(kb_dir)


def test_load_missing_or_unknown_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; build it with `aigc support index"):
        KnowledgeBase.load(tmp_path / "missing")
    with pytest.raises(KBFormatError, match="is not a knowledge base: it has no manifest.json"):
        KnowledgeBase.load(tmp_path)


# --- the answer gate's calibration across rebuilds ---------------------------------------------------


def test_rebuild_keeps_calibration_only_when_entries_are_unchanged(sources, tmp_path, tiny_embedder):
    from apps.customer_service.confidence import Calibration

    kb_dir = tmp_path / "kb"
    assert build(sources, kb_dir, tiny_embedder).last_build.calibration == "none"
    Calibration(handoff_threshold=0.42, fitted=True).save(kb_dir)
    KnowledgeBase.load(kb_dir)  # calibration.json is a sidecar: loading still verifies
    again = build(sources, kb_dir, tiny_embedder)
    assert again.last_build.calibration == "kept"
    assert Calibration.load(kb_dir).handoff_threshold == 0.42
    (sources / "faq.csv").write_text(FAQ + "new,Do you gift wrap?,Yes for 2 EUR.\n", encoding="utf-8")
    changed = build(sources, kb_dir, tiny_embedder)
    assert changed.last_build.calibration == "dropped"
    assert Calibration.load(kb_dir) is None  # fitted on other entries: the gate must be recalibrated
    assert KnowledgeBase.load(kb_dir).last_build.calibration == "dropped"


def test_rebuild_recalibrates_when_labelled_queries_are_configured(sources, tmp_path, tiny_embedder):
    from apps.customer_service.confidence import Calibration, build_and_calibrate

    queries = tmp_path / "queries.csv"
    queries.write_text("query,gold_ids\nHow long is delivery?,ship\nCan I return it?,ret\n")
    oos = tmp_path / "oos.csv"
    oos.write_text("query\nWhat is the weather on Mars?\nWho won the 1954 World Cup?\n")
    kb_dir = tmp_path / "kb"
    build(sources, kb_dir, tiny_embedder)
    Calibration(handoff_threshold=0.42, fitted=True).save(kb_dir)
    (sources / "faq.csv").write_text(FAQ + "new,Do you gift wrap?,Yes for 2 EUR.\n", encoding="utf-8")
    specs = [sources / "faq.csv", sources / "docs", f"dialogue:{sources / 'past.jsonl'}"]
    with pytest.raises(KBFormatError, match="calibration_queries needs calibration_out_of_scope"):
        build_and_calibrate(specs, kb_dir, KBConfig(calibration_queries=str(queries)), embedder=tiny_embedder)
    assert "new" not in KnowledgeBase.load(kb_dir) and Calibration.load(kb_dir).handoff_threshold == 0.42
    config = KBConfig(calibration_queries=str(queries), calibration_out_of_scope=str(oos))
    kb = build_and_calibrate(specs, kb_dir, config, embedder=tiny_embedder)
    assert kb.last_build.calibration == "recalibrated"
    calibration = Calibration.load(kb_dir)
    assert calibration is not None and calibration.fitted and calibration.handoff_threshold != 0.42


# --- kill tests: AIGC_FAILPOINT=index.between_renames ---------------------------------------------


def test_kb_is_loadable_after_a_kill_between_the_renames_and_after_the_rerun(
    sources, tmp_path, tiny_encoder_dir
):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from core.failpoints import ENV_VAR, EXIT_CODE

    root = Path(__file__).resolve().parents[3]
    kb_dir = tmp_path / "kb"
    specs = [str(sources / "faq.csv"), str(sources / "docs"), f"dialogue:{sources / 'past.jsonl'}"]
    command = [sys.executable, "-m", "core.cli", "support", "index", *specs, "--kb-dir", str(kb_dir),
               "--set", f"embedding_model={tiny_encoder_dir}", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop(ENV_VAR, None)
    KnowledgeBase.build(specs, kb_dir, embedder=Embedder(str(tiny_encoder_dir)))
    old_ids = [e.id for e in KnowledgeBase.load(kb_dir).entries]
    (sources / "faq.csv").write_text(FAQ + "new,Do you gift wrap?,Yes for 2 EUR.\n", encoding="utf-8")

    killed = subprocess.run(
        command, env={**env, ENV_VAR: "index.between_renames"}, capture_output=True, text=True, check=False
    )
    assert killed.returncode == EXIT_CODE and "failpoint index.between_renames" in killed.stderr
    assert not kb_dir.exists()  # killed with the old KB moved aside and the new one beside it
    loaded = KnowledgeBase.load(kb_dir)  # the interrupted swap is completed on load
    assert [e.id for e in loaded.entries] == [*old_ids[:2], "new", *old_ids[2:]]

    rerun = KnowledgeBase.build(specs, kb_dir, embedder=Embedder(str(tiny_encoder_dir)))  # a normal rerun
    assert rerun.last_build.embedded == 0  # the recovered KB already holds every entry
    assert len(KnowledgeBase.load(kb_dir)) == len(old_ids) + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb", "src"]  # leftovers cleaned
