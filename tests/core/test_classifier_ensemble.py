"""ClassifierEnsemble: averaged calibrated probabilities, the saved layout and its integrity checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.classification import TextClassifier
from core.classifier_ensemble import (
    ENSEMBLE_FILE,
    ClassifierEnsemble,
    is_ensemble,
    load_classifier,
    read_ensemble,
    write_ensemble,
)

TEXTS = ["Profit fell sharply.", "Shares rose after the results.", "The AGM is on Friday.", ""]
HEADS = {"sentiment": ["negative", "neutral", "positive"], "topic": ["earnings", "macro"]}


def _member(encoder: Path, seed: int, temperature: float, heads=HEADS) -> TextClassifier:
    """A tiny classifier whose heads have seeded random weights (so members disagree)."""
    torch.manual_seed(seed)
    clf = TextClassifier(str(encoder), heads, max_length=32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in clf.named_parameters():
            if name.startswith("heads."):
                param.copy_(torch.randn(param.shape, generator=gen) * 3)
    clf.temperatures = {h: temperature for h in clf.head_labels}
    return clf


@pytest.fixture()
def ensemble_dir(tiny_encoder_dir, tmp_path) -> Path:
    out = tmp_path / "model"
    for seed, temperature in ((1, 0.5), (2, 2.0), (3, 1.0)):
        _member(tiny_encoder_dir, seed, temperature).save_pretrained(out / "members" / f"s{seed}")
    write_ensemble(out, ["members/s1", "members/s2", "members/s3"], {"seeds": [1, 2, 3]})
    return out


def test_text_classifier_head_probabilities_match_predict_proba(tiny_encoder_dir):
    clf = _member(tiny_encoder_dir, 5, 0.7)
    probs = clf.head_probabilities(TEXTS, batch_size=2)
    assert set(probs) == set(HEADS)
    for head in HEADS:
        np.testing.assert_allclose(probs[head], clf.predict_proba(TEXTS, head), atol=1e-6)
        assert probs[head].dtype == np.float32 and probs[head].shape == (len(TEXTS), len(HEADS[head]))


def test_the_ensemble_averages_each_members_calibrated_probabilities(ensemble_dir):
    model = load_classifier(ensemble_dir, precision="fp32")
    assert isinstance(model, ClassifierEnsemble) and len(model.members) == 3
    members = [
        TextClassifier.from_pretrained(ensemble_dir / "members" / f"s{s}", precision="fp32")
        for s in (1, 2, 3)
    ]
    assert [m.temperatures["sentiment"] for m in members] == [0.5, 2.0, 1.0]
    probs = model.head_probabilities(TEXTS)
    for head in HEADS:
        expected = np.mean([m.predict_proba(TEXTS, head) for m in members], axis=0)
        np.testing.assert_allclose(probs[head], expected, atol=1e-6)
        np.testing.assert_allclose(probs[head].sum(axis=1), 1.0, atol=1e-5)
        labels = model.labels(head)
        assert model.predict(TEXTS, head) == [labels[i] for i in expected.argmax(axis=1)]
        np.testing.assert_allclose(model.predict_proba(TEXTS, head), expected, atol=1e-6)
    assert model.predict_all(TEXTS)["topic"] == model.predict(TEXTS, "topic")
    assert model.head_names == ["sentiment", "topic"]
    # the members disagree somewhere, so the average is not any one member's
    assert any(not np.allclose(m.predict_proba(TEXTS, "sentiment"), probs["sentiment"]) for m in members)
    model.inference_workers = 2
    assert all(m.inference_workers == 2 for m in model.members)
    with pytest.raises(ValueError, match="several heads"):
        model.predict(TEXTS)


def test_one_directory_loads_as_a_classifier_and_an_ensemble_as_an_ensemble(ensemble_dir, tiny_encoder_dir):
    assert is_ensemble(ensemble_dir) and not is_ensemble(ensemble_dir / "members" / "s1")
    single = load_classifier(ensemble_dir / "members" / "s1")
    assert isinstance(single, TextClassifier)
    manifest = read_ensemble(ensemble_dir)
    assert [m["path"] for m in manifest["members"]] == ["members/s1", "members/s2", "members/s3"]
    assert manifest["seeds"] == [1, 2, 3] and manifest["heads"] == HEADS


def test_a_replaced_or_missing_member_is_refused(ensemble_dir, tiny_encoder_dir):
    # another classifier saved over member s2: its config.json no longer matches ensemble.json
    _member(tiny_encoder_dir, 9, 1.0).save_pretrained(ensemble_dir / "members" / "s2")
    with pytest.raises(ValueError, match="not the member recorded"):
        load_classifier(ensemble_dir)
    (ensemble_dir / "members" / "s2" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="s2"):
        load_classifier(ensemble_dir)


def test_a_bad_manifest_is_refused(ensemble_dir):
    path = ensemble_dir / ENSEMBLE_FILE
    manifest = json.loads(path.read_text())
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_classifier(ensemble_dir)
    path.write_text(json.dumps({**manifest, "kind": "text-classifier"}))
    with pytest.raises(ValueError, match="does not describe"):
        load_classifier(ensemble_dir)
    path.write_text(json.dumps({**manifest, "members": []}))
    with pytest.raises(ValueError, match="non-empty list"):
        load_classifier(ensemble_dir)


def test_members_must_share_heads_and_stay_inside(tiny_encoder_dir, tmp_path):
    out = tmp_path / "model"
    _member(tiny_encoder_dir, 1, 1.0).save_pretrained(out / "members" / "a")
    other = {"sentiment": ["negative", "positive"]}
    _member(tiny_encoder_dir, 2, 1.0, heads=other).save_pretrained(out / "members" / "b")
    with pytest.raises(ValueError, match="heads"):
        write_ensemble(out, ["members/a", "members/b"])
    with pytest.raises(ValueError, match="not inside"):
        write_ensemble(out, ["../elsewhere"])
    with pytest.raises(FileNotFoundError, match="not a saved classifier"):
        write_ensemble(out, ["members/none"])
    with pytest.raises(ValueError, match="at least one"):
        write_ensemble(out, [])
    with pytest.raises(ValueError, match="share heads"):
        ClassifierEnsemble(
            [_member(tiny_encoder_dir, 1, 1.0), _member(tiny_encoder_dir, 2, 1.0, heads=other)]
        )
    assert not (out / ENSEMBLE_FILE).exists()
