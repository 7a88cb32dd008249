"""The saved recommender (train -> save -> load -> recommend) and the train/eval commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from apps.recommender.cli import app
from apps.recommender.model import OUTPUT_COLUMNS, ModelError, ModelLoader, RecommenderModel

WORDS = {
    "sea": ["sailing boats", "ocean waves", "harbour lights", "coral reefs", "lighthouses", "tides", "gulls"],
    "space": [
        "rocket launch",
        "moon landing",
        "space stations",
        "galaxies",
        "mars rovers",
        "comets",
        "stars",
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """Generic items/interactions CSVs: 60 users who each stay within one topic; one never-rated item."""
    items = [
        {"item_id": f"{t}{i}", "title": f"A book about {w}"}
        for t, ws in WORDS.items()
        for i, w in enumerate(ws)
    ]
    items.append({"item_id": "new1", "title": "A book about deep sea divers"})
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        topic = list(WORDS)[u % 2]
        for t, i in enumerate(rng.permutation(7)[:5]):
            rows.append(
                {
                    "user_id": f"u{u}",
                    "item_id": f"{topic}{i}",
                    "timestamp": 1_600_000_000 + 3600 * (u + 60 * t),
                }
            )
    items_path, inter_path = tmp_path / "items.csv", tmp_path / "interactions.csv"
    pd.DataFrame(items).to_csv(items_path, index=False)
    pd.DataFrame(rows).to_csv(inter_path, index=False)
    return items_path, inter_path


def _settings(encoder: Path) -> list[str]:
    options = {
        "encoder.model": str(encoder),
        "encoder.max_length": 16,
        "finetune.epochs": 1,
        "finetune.batch_size": 4,
        "finetune.max_query_length": 32,
        "finetune.max_item_length": 16,
        "finetune.head_epochs": 3,
        "finetune.head_batch_size": 8,
        "ranker.cold.first_slot": 3,
        "ranker.cold.every": 3,
    }
    return [arg for key, value in options.items() for arg in ("--set", f"{key}={value}")]


def test_train_save_load_recommend(files, tiny_encoder_dir, tmp_path):
    items, interactions = files
    out = tmp_path / "model"
    args = ["train", "--items", str(items), "--interactions", str(interactions), "--out", str(out)]
    result = CliRunner().invoke(app, args + _settings(tiny_encoder_dir))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    # The default fine-tuning method is the head over the frozen encoder (configs/recommender.yaml).
    assert (
        manifest["encoder"]["adapter"] == "encoder"
        and (out / "encoder" / "projection.safetensors").is_file()
        and "+head:" in manifest["encoder"]["model_id"]
    )
    # Tuned twice: on the validation split's training part (the ranker's rows, the validation
    # metrics) and on all interactions (the encoder served and saved).
    encoder = manifest["metrics"]["encoder"]
    assert "validation_text_only" in encoder
    assert encoder["served"]["model_id"] == manifest["encoder"]["model_id"]
    assert encoder["model_id"] != encoder["served"]["model_id"]
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))

    model = ModelLoader(out)()
    recs = model.recommend(["u0", "stranger"], k=6)
    seen = set(model.history("u0")["item_id"])
    assert len(recs[0]) == 6 and not {item for item, _, _ in recs[0]} & seen
    assert [s for _, s, _ in recs[0]] == sorted((s for _, s, _ in recs[0]), reverse=True)
    assert all(reason for _, _, reason in recs[0]) and len(recs[1]) == 6  # unknown user: popular items
    assert recs[0][2][0] == "new1" and "new item" in recs[0][2][2]  # the cold slot at position 3
    chunk = model.recommend_chunk(["u0", "u1"], 4)
    assert tuple(chunk.columns) == OUTPUT_COLUMNS and chunk["rank"].tolist() == [1, 2, 3, 4] * 2
    assert model.similar_items("sea0", 3)["item_id"].str.startswith("sea").sum() >= 1
    with pytest.raises(ValueError, match="excludes"):
        model.recommend(["u0"], exclude_seen=False)
    # The adapted encoder reproduces the stored item vectors.
    vectors = model.embedder().encode(model.items["text"].tolist()[:3])
    np.testing.assert_allclose(
        vectors, model.index.get_vectors(model.items["item_id"].tolist()[:3]), atol=1e-5
    )

    again = RecommenderModel.load(out)
    reloaded = again.recommend(["u0"], k=6)[0]
    assert [(i, r) for i, _, r in reloaded] == [(i, r) for i, _, r in recs[0]]
    assert [s for _, s, _ in reloaded] == pytest.approx([s for _, s, _ in recs[0]], abs=1e-5)
    assert ModelLoader(out).fingerprint() == again.fingerprint()


def test_corrupt_or_missing_model_is_a_model_error(files, tiny_encoder_dir, tmp_path):
    items, interactions = files
    out = tmp_path / "model"
    args = ["train", "--items", str(items), "--interactions", str(interactions), "--out", str(out)]
    assert (
        CliRunner()
        .invoke(app, args + _settings(tiny_encoder_dir) + ["--set", "finetune.enabled=false"])
        .exit_code
        == 0
    )
    assert json.loads((out / "manifest.json").read_text())["encoder"]["adapter"] is None
    ranker = out / "ranker.json"
    ranker.write_text(ranker.read_text().replace('"intercept"', '"intercept" ', 1))
    with pytest.raises(ModelError, match="checksum"):
        RecommenderModel.load(out)
    with pytest.raises(ModelError, match="no such model directory"):
        RecommenderModel.load(tmp_path / "nowhere")
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt manifest"):
        RecommenderModel.load(out)


def test_eval_json_report(files, tiny_encoder_dir, tmp_path):
    items, interactions = files
    args = ["eval", "--items", str(items), "--interactions", str(interactions), "--json"]
    args += ["--models", "popularity,itemknn,text,text_ft,hybrid", "--out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, args + _settings(tiny_encoder_dir))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((tmp_path / "r.json").read_text())
    assert set(report) >= {"protocol", "models", "cold_start", "encoder"}
    assert report["protocol"]["user_tags"] is False  # eval leaves tags out unless --tags
    assert list(report["models"]) == ["popularity", "itemknn", "text", "text_ft", "hybrid"]
    for metrics in report["models"].values():
        assert {"hr@10", "ndcg@10", "recall@50", "mrr", "coverage"} <= set(metrics)
        assert 0 <= metrics["ndcg@10"] <= metrics["hr@10"] <= 1
    assert report["models"]["hybrid"]["n_users"] == 60
    assert report["encoder"]["text_ndcg@10"]["fine_tuned"] == report["models"]["text_ft"]["ndcg@10"]
    assert set(report["cold_start"]["models"]) == set(report["models"])
    # Each split tunes the encoder on its training part (text_ft, the hybrid's served vectors) and on
    # that part without each user's last item (the hybrid ranker's training rows).
    splits = [run["split"] for run in report["encoder"]["runs"]]
    assert len(splits) == 4 and sum(s.endswith(":train:train") for s in splits) == 1


def test_bad_input_exits_2_with_a_clear_message(files, tmp_path):
    items, interactions = files
    frame = pd.read_csv(interactions)
    frame.loc[3, "item_id"] = "ghost"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--items", str(items), "--interactions", str(bad), "--json"])
    assert result.exit_code == 2 and "bad.csv" in result.output and "ghost" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["eval", "--items", str(items)])
    assert result.exit_code == 2 and "--interactions" in result.output
    result = runner.invoke(
        app, ["train", "--movielens", str(tmp_path / "none"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and not (tmp_path / "m").exists()


def test_a_model_saved_before_artifact_manifests_is_checked_against_its_own_hashes(
    tmp_path, tmp_path_factory, sample_dataset, sample_minilm_vectors
):
    import shutil

    from tests.apps.recommender.sample_model import saved_sample_model

    path = tmp_path / "legacy"
    shutil.copytree(
        saved_sample_model(tmp_path_factory.mktemp("rec"), sample_dataset, sample_minilm_vectors), path
    )
    # The layout older versions wrote: file hashes in manifest.json, no artifact.json.
    artifact = json.loads((path / "artifact.json").read_text())
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in artifact["files"].items() if k != "manifest.json"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "artifact.json").unlink()
    assert RecommenderModel.load(path).user_ids() == [str(u) for u in sample_dataset.user_ids]
    ranker = path / "ranker.json"
    ranker.write_text(ranker.read_text() + " ")
    with pytest.raises(ModelError, match=r"ranker.json does not match the checksum in .*manifest.json"):
        RecommenderModel.load(path)


def test_loading_reads_itemknn_and_ease_back_and_equals_the_fit(
    tmp_path, sample_dataset, sample_minilm_vectors, monkeypatch
):
    from apps.recommender.baselines import EASEScorer, ItemKNNScorer
    from apps.recommender.candidates import build_item_index
    from apps.recommender.hybrid import HybridScorer
    from apps.recommender.model import COLLABORATIVE_FILE, EncoderInfo

    vectors, model_id = sample_minilm_vectors
    index = build_item_index(sample_dataset, vectors, model_id)
    fitted = HybridScorer(vectors, index=index).fit(sample_dataset)
    path = RecommenderModel(fitted, EncoderInfo(model_id=model_id), index).save(tmp_path / "model")
    assert (path / COLLABORATIVE_FILE).is_file()

    def refuse(self, train):
        raise AssertionError(f"{type(self).__name__} was fitted while loading a saved model")

    with monkeypatch.context() as patch:
        patch.setattr(ItemKNNScorer, "_fit", refuse)
        patch.setattr(EASEScorer, "_fit", refuse)
        loaded = RecommenderModel.load(path)
    before, after = fitted.generator, loaded.scorer.generator
    assert (before.cf.similarity != after.cf.similarity).nnz == 0 and after.cf.similarity.nnz > 0
    np.testing.assert_array_equal(before.ease.items, after.ease.items)
    np.testing.assert_array_equal(before.ease.weights, after.ease.weights)
    users = [*sample_dataset.user_ids[:30].tolist(), "nobody"]
    pd.testing.assert_frame_equal(loaded.recommend_frame(users, 25), fitted.recommend_with_reasons(users, 25))

    # A model saved before the file existed (no file, no hash of it) fits both again on load.
    artifact = json.loads((path / "artifact.json").read_text())
    del artifact["files"][COLLABORATIVE_FILE]
    (path / "artifact.json").write_text(json.dumps(artifact))
    (path / COLLABORATIVE_FILE).unlink()
    older = RecommenderModel.load(path)
    assert (older.scorer.generator.cf.similarity != before.cf.similarity).nnz == 0
    np.testing.assert_allclose(older.scorer.generator.ease.weights, before.ease.weights, atol=1e-5)


def test_a_damaged_collaborative_file_fails_the_load_with_one_checksum_error(
    tmp_path, tmp_path_factory, sample_dataset, sample_minilm_vectors
):
    """The largest file is hashed on a thread while the rest loads; a damaged one still fails the load."""
    import shutil
    import threading

    from apps.recommender.model import COLLABORATIVE_FILE
    from tests.apps.recommender.sample_model import saved_sample_model

    path = tmp_path / "model"
    shutil.copytree(
        saved_sample_model(tmp_path_factory.mktemp("rec"), sample_dataset, sample_minilm_vectors), path
    )
    loaded = RecommenderModel.load(path)
    weights = loaded.scorer.generator.ease.weights
    assert not weights.flags.writeable  # a view of the mapped file, not a copy
    collaborative = path / COLLABORATIVE_FILE
    data = collaborative.read_bytes()
    expected = loaded.recommend(["U0001"], k=5)
    for position in (len(data) - 5, 20):  # in the weights, then in the header
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        (path / "damaged").write_bytes(bytes(damaged))
        (path / "damaged").replace(collaborative)  # replaced, not rewritten in place
        with pytest.raises(ModelError, match=r"collaborative.safetensors does not match the checksum"):
            RecommenderModel.load(path)
        assert not [t for t in threading.enumerate() if t.name == "aigc-verify"]
    collaborative.unlink()
    with pytest.raises(ModelError, match="collaborative.safetensors is missing.*Train the model again"):
        RecommenderModel.load(path)
    # The model loaded before is unaffected: its arrays map the file it was loaded from.
    assert loaded.recommend(["U0001"], k=5) == expected


def test_sparse_ease_weights_round_trip(sample_dataset):
    from apps.recommender.baselines import EASEScorer

    ease = EASEScorer(l2=50.0, keep=20).fit(sample_dataset)
    assert ease.weights.getnnz(axis=0).max() == 20
    tensors, settings = ease.to_tensors()
    again = EASEScorer.from_tensors(sample_dataset, tensors, settings)
    assert again.keep == 20 and (again.weights != ease.weights).nnz == 0
    np.testing.assert_array_equal(again.score(["U0001"]), ease.score(["U0001"]))
    with pytest.raises(ValueError, match="do not form"):
        EASEScorer.from_tensors(sample_dataset, {**tensors, "indptr": tensors["indptr"][:-1]}, settings)
