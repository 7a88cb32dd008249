"""TextClassifier: batching, heads, temperature scaling and save/load round trips (tiny BERT and MiniLM)."""

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.classification import TextClassifier, fit_temperature
from core.finetune import ClassifierTrainConfig, fit_classifier
from core.lora import LoraSettings

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "The phone was good.",
    "bad",
    "",
    "A much longer sentence about shoes that were delivered late and fell apart after a week of use.",
    "Short one",
    "good good good",
    "The food tasted bad and arrived cold, which was not what we expected from this place at all.",
]


def _randomise(clf: TextClassifier, seed: int = 0) -> TextClassifier:
    """Give the (zero-initialised) LoRA B matrices and heads random values, so they change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in clf.named_parameters():
            if "lora_B" in name or name.startswith("heads."):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return clf


@pytest.fixture()
def lora_clf(tiny_encoder_dir) -> TextClassifier:
    torch.manual_seed(0)  # LoRA A initialisation
    clf = TextClassifier(str(tiny_encoder_dir), ["neg", "neu", "pos"], lora=LoraSettings(r=4, alpha=8))
    return _randomise(clf)


def test_fit_temperature_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 4)) * 3
    scaled = logits / 2.5
    probs = np.exp(scaled) / np.exp(scaled).sum(1, keepdims=True)
    targets = (rng.random((len(probs), 1)) > probs.cumsum(1)).sum(1)  # one categorical draw per row
    assert fit_temperature(logits, targets) == pytest.approx(2.5, abs=0.25)
    # Under-confident logits (the truth is logits / 0.5 here) need T < 1.
    assert fit_temperature(logits / 5, targets) == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="match one to one"):
        fit_temperature(logits, targets[:-1])
    with pytest.raises(ValueError, match="targets must lie"):
        fit_temperature(logits[:2], [0, 4])


def test_predictions_do_not_depend_on_batching(lora_clf):
    full = lora_clf.predict_proba(TEXTS, batch_size=64)
    one_by_one = lora_clf.predict_proba(TEXTS, batch_size=1)
    assert full.shape == (len(TEXTS), 3) and full.dtype == np.float32
    np.testing.assert_allclose(full, one_by_one, atol=1e-5)
    np.testing.assert_allclose(full.sum(1), 1.0, atol=1e-6)
    assert lora_clf.predict(TEXTS, batch_size=2) == [lora_clf.labels()[i] for i in full.argmax(1)]
    assert np.ptp(full, axis=0).max() > 1e-3  # the probabilities really depend on the text
    assert lora_clf.predict([]) == [] and lora_clf.predict_proba([]).shape == (0, 3)


def test_bad_arguments_raise_clear_errors(tiny_encoder_dir, lora_clf):
    with pytest.raises(ValueError, match="list of strings"):
        lora_clf.predict("just one text")
    with pytest.raises(ValueError, match="Unknown head 'topic'"):
        lora_clf.predict(["x"], head="topic")
    with pytest.raises(ValueError, match="at least two distinct"):
        TextClassifier(str(tiny_encoder_dir), {"label": ["only"]})
    with pytest.raises(ValueError, match="pooling"):
        TextClassifier(str(tiny_encoder_dir), ["a", "b"], pooling="max")
    two = TextClassifier(str(tiny_encoder_dir), {"sentiment": ["neg", "pos"], "topic": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="several heads; pass head="):
        two.predict(["x"])
    with pytest.raises(ValueError, match="not labels of head"):
        two.calibrate_temperature(["x", "y"], ["neg", "great"], head="sentiment")


def test_lora_save_load_round_trip_is_identical(lora_clf, tiny_encoder_dir, tmp_path):
    lora_clf.temperatures["label"] = 1.7
    lora_clf.metrics = {"best_metric": 0.9}
    expected = lora_clf.predict_proba(TEXTS)
    out = lora_clf.save_pretrained(tmp_path / "clf")
    assert {p.name for p in out.iterdir()} == {
        "artifact.json",
        "config.json",
        "adapter_config.json",
        "adapter_model.safetensors",
        "heads.safetensors",
        "metrics.json",
    }
    config = json.loads((out / "config.json").read_text())
    assert config["base_model"] == str(tiny_encoder_dir)
    assert config["heads"] == {"label": ["neg", "neu", "pos"]}
    assert config["temperatures"] == {"label": 1.7}
    assert config["lora"]["r"] == 4 and config["lora"]["target_modules"] == ["query", "value"]

    merged = TextClassifier.from_pretrained(out, precision="fp32")  # LoRA merged in
    unmerged = TextClassifier.from_pretrained(out, merge=False)
    np.testing.assert_allclose(merged.predict_proba(TEXTS), expected, atol=1e-5)
    np.testing.assert_allclose(unmerged.predict_proba(TEXTS), expected, atol=1e-5)
    assert merged.metrics == {"best_metric": 0.9} and merged.temperatures == {"label": 1.7}
    # The adapter matters: the same heads on the bare encoder predict differently.
    bare = TextClassifier(str(tiny_encoder_dir), ["neg", "neu", "pos"])
    bare.heads.load_state_dict(lora_clf.heads.state_dict())
    assert np.abs(bare.predict_proba(TEXTS) - expected).max() > 1e-3

    # A merged classifier re-saves its adapter unchanged (e.g. after calibration in an app).
    merged.temperatures["label"] = 0.8
    again = TextClassifier.from_pretrained(merged.save_pretrained(tmp_path / "resaved"), precision="fp32")
    assert again.temperatures == {"label": 0.8}
    np.testing.assert_allclose(again.logits(TEXTS), lora_clf.logits(TEXTS), atol=1e-5)


def test_bf16_inference_keeps_the_labels(lora_clf, tmp_path):
    out = lora_clf.save_pretrained(tmp_path / "clf")
    exact = TextClassifier.from_pretrained(out, precision="fp32")
    fast = TextClassifier.from_pretrained(out, precision="bf16")
    assert next(fast.encoder.parameters()).dtype == torch.bfloat16
    assert next(fast.heads.parameters()).dtype == torch.float32
    proba = fast.predict_proba(TEXTS)
    assert proba.dtype == np.float32
    reference = exact.predict_proba(TEXTS)
    np.testing.assert_allclose(proba, reference, atol=0.05)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 0.05  # bf16 may flip near-ties only
    assert clear.any()
    assert (proba.argmax(1) == reference.argmax(1))[clear].all()
    unmerged = TextClassifier.from_pretrained(out, merge=False, precision="bf16")
    assert next(unmerged.encoder.parameters()).dtype == torch.float32  # trainable: stays fp32


def test_parallel_forward_passes_give_the_same_logits(lora_clf):
    texts = TEXTS * 5
    one = lora_clf.logits(texts, batch_size=2)
    lora_clf.inference_workers = 3
    try:
        np.testing.assert_allclose(lora_clf.logits(texts, batch_size=2), one, atol=1e-6)
        assert not torch.is_inference_mode_enabled()
    finally:
        lora_clf.inference_workers = 1


def test_int8_inference_quantises_the_encoder_and_keeps_clear_labels(lora_clf, tmp_path):
    out = lora_clf.save_pretrained(tmp_path / "clf")
    exact = TextClassifier.from_pretrained(out, precision="fp32")
    small = TextClassifier.from_pretrained(out, precision="int8")
    quantised = [
        m
        for m in small.encoder.modules()
        if type(m).__name__ == "Linear" and "quantized" in type(m).__module__
    ]
    assert quantised and not any(type(m) is torch.nn.Linear for m in small.encoder.modules())
    assert type(small.heads["label"]) is torch.nn.Linear  # heads stay fp32
    proba, reference = small.predict_proba(TEXTS), exact.predict_proba(TEXTS)
    np.testing.assert_allclose(proba, reference, atol=0.1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 0.2
    assert (proba.argmax(1) == reference.argmax(1))[clear].all()
    with pytest.raises(ValueError, match="precision"):
        TextClassifier.from_pretrained(out, precision="int4")  # type: ignore[arg-type]


def test_frozen_encoder_classifier_saves_heads_only(tiny_encoder_dir, tmp_path):
    clf = _randomise(TextClassifier(str(tiny_encoder_dir), ["a", "b"], pooling="cls", max_length=16))
    out = clf.save_pretrained(tmp_path / "probe")
    assert not (out / "adapter_model.safetensors").exists()
    loaded = TextClassifier.from_pretrained(out, precision="fp32")
    assert loaded.lora is None and loaded.pooling == "cls" and loaded.max_length == 16
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)


def test_from_pretrained_rejects_missing_or_corrupt_directories(lora_clf, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextClassifier.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a saved TextClassifier"):
        TextClassifier.from_pretrained(tmp_path / "empty")
    out = lora_clf.save_pretrained(tmp_path / "clf")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    data = bytearray((broken / "heads.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (broken / "heads.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="heads.safetensors does not match the checksum"):
        TextClassifier.from_pretrained(broken)
    (broken / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors is missing"):
        TextClassifier.from_pretrained(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TextClassifier.from_pretrained(broken)


def _reviews(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Texts whose sentiment is the word good/bad and whose topic is the product named."""
    rng = random.Random(seed)
    topics = {"phone": ["phone"], "shoes": ["shoes"], "food": ["pizza"]}
    rows = []
    for i in range(n):
        topic = list(topics)[i % 3]
        sentiment = "good" if (i // 3) % 2 == 0 else "bad"
        thing = rng.choice(topics[topic])
        rows.append(
            (
                rng.choice(["the {} was {}", "{} : really {}", "my {} is {} today"]).format(thing, sentiment),
                sentiment,
                topic,
            )
        )
    return rows


def test_multi_head_classifier_learns_both_tasks_and_round_trips(tiny_encoder_dir, tmp_path):
    rows = _reviews(90, seed=0)
    torch.manual_seed(0)  # LoRA A initialisation
    clf = TextClassifier(
        str(tiny_encoder_dir),
        {"sentiment": ["bad", "good"], "topic": ["food", "phone", "shoes"]},
        lora=LoraSettings(r=4, alpha=8),
    )
    config = ClassifierTrainConfig(epochs=12, batch_size=8, lr=1e-2, head_lr=5e-2, show_progress_bar=False)
    report = fit_classifier(clf, rows, tmp_path / "run", config, label_columns=["sentiment", "topic"])
    assert report["best_metric"] >= 0.95, report["history"][-1]
    assert {"val_sentiment/macro_f1", "val_topic/accuracy"} <= set(report["history"][-1])

    held_out = _reviews(30, seed=1)
    texts = [t for t, _, _ in held_out]
    predicted = clf.predict_all(texts)
    assert predicted["sentiment"] == [s for _, s, _ in held_out]
    assert np.mean([p == t for p, (_, _, t) in zip(predicted["topic"], held_out, strict=True)]) >= 0.9
    assert clf.predict(texts, head="topic") == predicted["topic"]

    loaded = TextClassifier.from_pretrained(clf.save_pretrained(tmp_path / "model"), precision="fp32")
    assert (
        loaded.head_names == ["sentiment", "topic"] and loaded.metrics["best_epoch"] == report["best_epoch"]
    )
    for head in ("sentiment", "topic"):
        np.testing.assert_allclose(
            loaded.predict_proba(texts, head=head), clf.predict_proba(texts, head=head), atol=1e-5
        )

    temperature = loaded.calibrate_temperature(texts, [s for _, s, _ in held_out], head="sentiment")
    assert loaded.temperatures["sentiment"] == temperature != 1.0
    logits = torch.from_numpy(loaded.logits(texts, head="sentiment"))
    expected = torch.softmax(logits / temperature, dim=-1).numpy()
    np.testing.assert_allclose(loaded.predict_proba(texts, head="sentiment"), expected, atol=1e-6)


def test_minilm_lora_classifier_trains_and_reloads_identically(tmp_path):
    torch.manual_seed(0)
    clf = TextClassifier("minilm-l6", ["negative", "positive"], lora=LoraSettings())
    config = ClassifierTrainConfig(epochs=1, show_progress_bar=False)
    report = fit_classifier(clf, ROOT / "samples" / "reviews.csv", tmp_path / "run", config)
    assert report["epochs_run"] == 1 and report["train_size"] + report["val_size"] == 40
    texts = ["The strap snapped on day one.", "Works great, arrived early.", "Battery died after two days."]
    loaded = TextClassifier.from_pretrained(clf.save_pretrained(tmp_path / "model"), precision="fp32")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["base_model"] == "minilm-l6"
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    assert loaded.predict(texts) == clf.predict(texts)


def test_full_finetune_trains_every_encoder_weight_and_round_trips(tiny_encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="cannot be combined with lora"):
        TextClassifier(str(tiny_encoder_dir), ["a", "b"], lora=LoraSettings(r=4), full_finetune=True)
    rows = [(t, s) for t, s, _ in _reviews(60, seed=0)]
    clf = TextClassifier(str(tiny_encoder_dir), ["bad", "good"], full_finetune=True)
    before = {k: v.clone() for k, v in clf.encoder.state_dict().items()}
    config = ClassifierTrainConfig(epochs=6, batch_size=8, lr=1e-3, head_lr=5e-2, show_progress_bar=False)
    report = fit_classifier(clf, rows, tmp_path / "run", config)
    assert report["best_metric"] >= 0.9, report["history"][-1]
    after = clf.encoder.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2  # not just a head: the encoder itself moved

    out = clf.save_pretrained(tmp_path / "model")
    assert (out / "encoder.safetensors").is_file() and not (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["encoder_weights"] == "encoder.safetensors"
    texts = [t for t, _, _ in _reviews(20, seed=1)]
    loaded = TextClassifier.from_pretrained(out, precision="fp32")
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    assert not any(p.requires_grad for p in loaded.encoder.parameters())
    trainable = TextClassifier.from_pretrained(out, merge=False)
    assert all(p.requires_grad for p in trainable.encoder.parameters())
    # The saved encoder is what predicts: the base encoder with the same heads does not.
    bare = TextClassifier(str(tiny_encoder_dir), ["bad", "good"])
    bare.heads.load_state_dict(clf.heads.state_dict())
    assert np.abs(bare.predict_proba(texts) - clf.predict_proba(texts)).max() > 1e-3

    (out / "encoder.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="encoder.safetensors"):
        TextClassifier.from_pretrained(out)


def test_train_classifier_full_finetune_leaves_a_lean_model_directory(tiny_encoder_dir, tmp_path):
    from core.finetune import train_classifier

    rows = [(t, s) for t, s, _ in _reviews(40, seed=3)]
    out = tmp_path / "model"
    report = train_classifier(
        rows, out, model=str(tiny_encoder_dir), epochs=2, lr=1e-3, full_finetune=True, show_progress_bar=False
    )
    assert report["epochs_run"] == 2
    assert (out / "encoder.safetensors").is_file() and not (out / "checkpoint").exists()
    loaded = TextClassifier.from_pretrained(out, precision="fp32")
    assert loaded.full_finetune and loaded.labels() == ["bad", "good"]


def test_layer_lr_decay_gives_each_encoder_block_its_rate(tiny_encoder_dir):
    from core.finetune import classifier_task, layer_lr_groups
    from core.finetune.data import read_labelled_texts

    clf = TextClassifier(str(tiny_encoder_dir), ["bad", "good"], full_finetune=True)
    named = list(clf.encoder.named_parameters())
    depth = 1 + max(int(n.split("layer.")[1].split(".")[0]) for n, _ in named if "layer." in n)
    groups = layer_lr_groups(named, lr=1e-3, decay=0.5)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(named)  # every weight once
    for name, param in named:
        if f"layer.{depth - 1}." in name:
            assert rate[id(param)] == 1e-3, name  # the top block trains at lr
        elif "layer.0." in name:
            assert rate[id(param)] == pytest.approx(1e-3 * 0.5 ** (depth - 1)), name
        elif "embeddings" in name:
            assert rate[id(param)] == pytest.approx(1e-3 * 0.5**depth), name
    assert [len(g["params"]) for g in layer_lr_groups(named, 1e-3, 1.0)] == [
        len(named)
    ]  # no decay: one group
    named[0][1].requires_grad_(False)
    assert sum(len(g["params"]) for g in layer_lr_groups(named, 1e-3, 0.5)) == len(named) - 1

    rows = [(t, s) for t, s, _ in _reviews(20, seed=0)]
    config = ClassifierTrainConfig(lr=1e-3, head_lr=5e-2, layer_lr_decay=0.5, full_finetune=True)
    task = classifier_task(clf, read_labelled_texts(rows, "text", ["label"]), config)
    assert task.param_groups[-1]["lr"] == 5e-2  # the heads keep head_lr
    assert len(task.param_groups) == depth + 2  # embeddings, one group per block, the heads
    with pytest.raises(ValueError, match="layer_lr_decay"):
        ClassifierTrainConfig(layer_lr_decay=0.0)
