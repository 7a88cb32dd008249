"""Training, calibration, evaluation and loading of the finance classifiers (tiny random encoder)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from apps.finance_monitor.classifiers import (
    VALIDATION_RUN_DIR,
    VALIDATION_SUMMARY,
    evaluate,
    head_probabilities,
    is_model_dir,
    load_model,
    model_version,
    read_meta,
    train,
    train_multitask,
)
from apps.finance_monitor.config import FinanceTrainConfig
from apps.finance_monitor.datasets import load_labelled
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR
from apps.finance_monitor.scoring import Scorer
from core.classification import TextClassifier
from core.classifier_ensemble import ClassifierEnsemble, read_ensemble
from core.finetune import split_indices
from tests.apps.finance_monitor.model_fixtures import copy_model, tiny_config


class _Killed(Exception):
    """Stands in for a kill at the loop's ``train.after_checkpoint`` fault point."""


def test_a_killed_run_resumes_from_its_checkpoint(tiny_encoder_dir, tmp_path, monkeypatch):
    import core.finetune.loop as loop

    def kill_after_epoch_one(name: str) -> None:
        if name == "train.after_checkpoint":
            raise _Killed

    config = tiny_config(tiny_encoder_dir)  # 2 epochs
    data, out = SAMPLE_DATA_DIR / "train_sentiment.csv", tmp_path / "sentiment"
    monkeypatch.setattr(loop, "failpoint", kill_after_epoch_one)
    with pytest.raises(_Killed):
        train("sentiment", data, out, config=config)
    monkeypatch.undo()
    assert not out.exists()  # nothing committed; the unfinished build beside it keeps the checkpoint
    report = train("sentiment", data, out, config=config, resume=True)
    assert report["resumed"] and report["epochs_run"] == 2
    assert [row["epoch"] for row in report["history"]] == [1, 2]  # epoch 1 came from the checkpoint
    assert load_model(out).head_labels == {"sentiment": ["negative", "neutral", "positive"]}
    assert not list(tmp_path.glob(".sentiment.tmp-*"))  # the adopted build became the model


def test_trained_model_is_calibrated_and_recorded(tiny_sentiment_dir):
    model = load_model(tiny_sentiment_dir)
    assert model.head_labels == {"sentiment": ["negative", "neutral", "positive"]}
    calibration = json.loads((tiny_sentiment_dir / "calibration.json").read_text())["sentiment"]
    assert calibration["n"] == 72  # 20 % of the 360 rows (stratified) are the validation split
    assert model.temperatures["sentiment"] == pytest.approx(calibration["temperature"])
    assert calibration["nll_after"] <= calibration["nll_before"] + 1e-9
    meta = read_meta(tiny_sentiment_dir)
    assert meta["tasks"] == ["sentiment"] and meta["data"]["sentiment"]["rows"] == 360


def test_predict_proba_applies_the_temperature(tiny_sentiment_dir):
    model = load_model(tiny_sentiment_dir)
    texts = ["Glenmoor Steel shares plunge after profit warning", "Westgate to hold investor day"]
    logits = model.logits(texts)
    expected = np.exp(logits / model.temperatures["sentiment"])
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(texts), expected, rtol=1e-5)
    np.testing.assert_allclose(head_probabilities(model, texts)["sentiment"], expected, rtol=1e-5)


def test_model_version_changes_with_the_weights(tiny_sentiment_dir, tmp_path):
    version = model_version(tiny_sentiment_dir)
    assert version.startswith("sentiment-") and version == model_version(tiny_sentiment_dir)
    copy = copy_model(tiny_sentiment_dir, tmp_path / "sentiment")
    model = load_model(copy)
    model.temperatures["sentiment"] = 3.0
    model.save_pretrained(copy)
    assert model_version(copy) != version


def test_evaluate_reports_every_metric(tiny_topic_dir):
    report = evaluate(tiny_topic_dir, SAMPLE_DATA_DIR / "train_topic.csv")
    assert set(report) >= {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion"}
    assert report["n"] == 300
    labels = report["confusion"]["labels"]
    assert len(labels) == 6 and np.array(report["confusion"]["matrix"]).sum() == 300
    assert report["accuracy"] > 1 / 6  # trained: better than chance on its own training file


def test_numeric_labels_with_a_label_map(tiny_encoder_dir, tmp_path):
    data = tmp_path / "numeric.csv"
    rows = ["text,label"] + [f"Stock {i} falls sharply,0" for i in range(12)]
    rows += [f"Stock {i} climbs to a record,1" for i in range(12)] + [
        f"Stock {i} holds AGM,2" for i in range(12)
    ]
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "model"
    train("sentiment", data, out, label_map="tfns", config=tiny_config(tiny_encoder_dir))
    assert read_meta(out)["label_map"] == {"0": "negative", "1": "positive", "2": "neutral"}
    report = evaluate(out, data)  # the model's own label map reads the numeric labels
    assert report["n"] == 36


def test_unknown_sentiment_label_names_file_row_and_field(tiny_encoder_dir, tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("text,label\nShares rise,positive\nShares fall,bearish\n")
    with pytest.raises(DataError) as err:
        train("sentiment", data, tmp_path / "m", config=tiny_config(tiny_encoder_dir))
    assert "bad.csv" in str(err.value) and "row 2" in str(err.value) and "label" in str(err.value)
    assert not (tmp_path / "m").exists()


def test_evaluate_rejects_labels_the_model_lacks(tiny_sentiment_dir, tmp_path):
    data = tmp_path / "eval.csv"
    data.write_text("text,label\nShares rise,positive\nRates held,mixed\n")
    with pytest.raises(DataError, match="row 2"):
        evaluate(tiny_sentiment_dir, data)


def test_corrupt_model_directory_is_detected(tiny_sentiment_dir, tmp_path):
    copy = copy_model(tiny_sentiment_dir, tmp_path / "broken")
    (copy / "heads.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError):
        load_model(copy)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere")


def test_an_auxiliary_head_trains_the_encoder_but_is_never_validated_or_calibrated(
    tiny_encoder_dir, tmp_path
):
    """The PhraseBank bench's ``--aux-data``: the topic rows all train; sentiment alone validates."""
    data = {task: load_labelled(SAMPLE_DATA_DIR / f"train_{task}.csv") for task in ("sentiment", "topic")}
    config = replace(tiny_config(tiny_encoder_dir), epochs=1, auxiliary_heads=("topic",))
    report = train_multitask(data, tmp_path / "aux", config=config)
    sentiment_rows = len(data["sentiment"])
    held = round(sentiment_rows * config.val_fraction)
    assert abs(report["val_size"] - held) <= 3  # stratified rounding per label
    assert report["train_size"] == sentiment_rows - report["val_size"] + len(data["topic"])
    assert "topic/macro_f1" not in report["history"][0] and "val_macro_f1" in report["history"][0]
    assert set(json.loads((tmp_path / "aux" / "calibration.json").read_text())) == {"sentiment"}
    assert evaluate(load_model(tmp_path / "aux"), data["sentiment"])["n"] == sentiment_rows


def test_label_confidence_reaches_the_training_targets(tiny_encoder_dir, tmp_path):
    """The PhraseBank bench's ``--agreement-confidence``: each row's confidence becomes its soft target."""
    data = load_labelled(SAMPLE_DATA_DIR / "train_sentiment.csv")
    config = replace(tiny_config(tiny_encoder_dir), epochs=1)
    votes = [1.0] * len(data)
    votes[4] = 0.3  # below 1/3 for three labels: the fifth row's label would not be the most likely
    with pytest.raises(ValueError, match="row 5: confidence 0.3 is below 1/3 for head 'sentiment'"):
        train_multitask({"sentiment": replace(data, confidence=votes)}, tmp_path / "bad", config=config)
    assert not (tmp_path / "bad").exists()
    split_votes = [0.6 if i % 2 else 1.0 for i in range(len(data))]
    part = replace(data, confidence=split_votes).subset([3, 0])
    assert part.confidence == [0.6, 1.0] and data.subset([0]).confidence is None
    report = train_multitask(
        {"sentiment": replace(data, confidence=split_votes)}, tmp_path / "m", config=config
    )
    assert report["epochs_run"] == 1 and evaluate(load_model(tmp_path / "m"), data)["n"] == len(data)


def test_one_encoder_two_heads(tiny_joint_dir):
    model = load_model(tiny_joint_dir)
    assert model.head_names == ["sentiment", "topic"]
    assert set(json.loads((tiny_joint_dir / "calibration.json").read_text())) == {"sentiment", "topic"}
    probs = head_probabilities(model, ["Northwind Energy refinery blast"])
    assert probs["sentiment"].shape == (1, 3) and probs["topic"].shape == (1, 6)
    topic = load_labelled(SAMPLE_DATA_DIR / "train_topic.csv")
    assert evaluate(model, topic, head="topic")["n"] == 300


def test_an_ensemble_trains_one_member_per_seed_on_shared_validation_rows(tiny_encoder_dir, tmp_path):
    data = load_labelled(SAMPLE_DATA_DIR / "train_sentiment.csv")
    config = replace(tiny_config(tiny_encoder_dir), ensemble_seeds=(1, 2))
    out = tmp_path / "sentiment"
    report = train("sentiment", data, out, config=config)
    assert [m["seed"] for m in report["ensemble"]["members"]] == [1, 2]
    assert read_ensemble(out)["seeds"] == [1, 2] and not report["ensemble"]["refit"]
    assert is_model_dir(out) and is_model_dir(out / "members" / "s1") and not is_model_dir(tmp_path)
    model = load_model(out)
    assert isinstance(model, ClassifierEnsemble) and model.head_names == ["sentiment"]
    members = [TextClassifier.from_pretrained(out / "members" / f"s{s}") for s in (1, 2)]
    assert [m.seed for m in members] == [1, 2]
    # every member held out (and was calibrated on) the same 72 rows: the split seed is pinned
    _, val = split_indices(len(data), config.val_fraction, config.val_split_seed, strata=list(data.labels))
    assert [m["calibration"]["sentiment"]["n"] for m in report["ensemble"]["members"]] == [72, 72]
    held_out = evaluate(model, data.subset(val))
    assert report["validation"]["sentiment"]["n"] == len(val) == 72
    assert report["validation"]["sentiment"]["macro_f1"] == pytest.approx(held_out["macro_f1"], abs=1e-4)
    assert report["best_metric"] == report["validation"]["metric"]
    texts = ["Glenmoor Steel shares plunge after profit warning", "Westgate to hold investor day"]
    expected = np.mean([m.predict_proba(texts, "sentiment") for m in members], axis=0)
    np.testing.assert_allclose(head_probabilities(model, texts)["sentiment"], expected, atol=1e-5)
    labels = Scorer.from_dirs(out).label(texts)  # the monitor scores with the ensemble unchanged
    assert [lab.sentiment for lab in labels] == [model.labels("sentiment")[i] for i in expected.argmax(1)]
    version = model_version(out)
    members[1].temperatures["sentiment"] = 5.0  # a recalibrated member is another model version
    members[1].save_pretrained(out / "members" / "s2")
    with pytest.raises(ValueError, match="not the member recorded"):
        load_model(out)
    assert (
        model_version(out) == version
    )  # the version is that of ensemble.json, which still names the old one


def test_refit_trains_on_every_row_with_the_epochs_and_temperature_validation_chose(
    tiny_encoder_dir, tmp_path
):
    data = load_labelled(SAMPLE_DATA_DIR / "train_sentiment.csv")
    config = replace(tiny_config(tiny_encoder_dir), refit=True)
    out = tmp_path / "sentiment"
    report = train("sentiment", data, out, config=config)
    chosen = json.loads((out / VALIDATION_SUMMARY).read_text())
    assert not (out / VALIDATION_RUN_DIR).exists()  # only what it chose is kept
    assert chosen["val_size"] == 72 and chosen["seed"] == config.seed
    assert report["best_metric"] == chosen["best_metric"] and report["best_epoch"] == chosen["best_epoch"]
    assert report["metric"] == chosen["metric"] == "macro_f1"  # not the members' training loss
    member = report["ensemble"]["members"][0]
    assert report["ensemble"]["seeds"] == [config.seed] and report["ensemble"]["refit"]
    assert member["epochs_run"] == chosen["best_epoch"] == report["ensemble"]["epochs"]
    member_report = json.loads((out / "members" / f"s{config.seed}" / "report.json").read_text())
    assert member_report["train_size"] == len(data) and member_report["val_size"] == 0  # every row
    model = load_model(out)
    fitted = chosen["calibration"]["sentiment"]["temperature"]
    assert model.members[0].temperatures["sentiment"] == pytest.approx(fitted)
    assert evaluate(model, data)["n"] == len(data)


def test_a_killed_ensemble_resumes_without_retraining_finished_members(
    tiny_encoder_dir, tmp_path, monkeypatch
):
    import core.finetune.loop as loop

    checkpoints = []

    def kill_in_the_second_member(name: str) -> None:
        if name == "train.after_checkpoint":
            checkpoints.append(name)
            if len(checkpoints) == 3:  # member s1 finished (2 epochs), s2 after its first epoch
                raise _Killed

    config = replace(tiny_config(tiny_encoder_dir), ensemble_seeds=(1, 2))
    data, out = SAMPLE_DATA_DIR / "train_sentiment.csv", tmp_path / "sentiment"
    monkeypatch.setattr(loop, "failpoint", kill_in_the_second_member)
    with pytest.raises(_Killed):
        train("sentiment", data, out, config=config)
    monkeypatch.undo()
    assert not out.exists()
    (build,) = tmp_path.glob(".sentiment.tmp-*")
    first = build / "members" / "s1" / "heads.safetensors"
    stamp = first.stat().st_mtime_ns
    report = train("sentiment", data, out, config=config, resume=True)
    finished = out / "members" / "s1"
    assert (finished / "heads.safetensors").stat().st_mtime_ns == stamp  # kept, not retrained
    resumed = json.loads((out / "members" / "s2" / "report.json").read_text())
    assert resumed["resumed"] and [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert len(report["ensemble"]["members"]) == 2 and isinstance(load_model(out), ClassifierEnsemble)
    assert not list(tmp_path.glob(".sentiment.tmp-*"))


def test_a_member_killed_before_its_calibration_is_not_taken_as_finished(
    tiny_encoder_dir, tmp_path, monkeypatch
):
    import apps.finance_monitor.classifiers as classifiers

    def killed(*args, **kwargs):
        raise _Killed

    config = replace(tiny_config(tiny_encoder_dir), ensemble_seeds=(1, 2))
    data, out = SAMPLE_DATA_DIR / "train_sentiment.csv", tmp_path / "sentiment"
    monkeypatch.setattr(classifiers, "save_calibration", killed)  # member s1 trained, not yet calibrated
    with pytest.raises(_Killed):
        train("sentiment", data, out, config=config)
    monkeypatch.undo()
    (build,) = tmp_path.glob(".sentiment.tmp-*")
    assert (build / "members" / "s1" / "report.json").is_file()  # the training loop's report
    report = train("sentiment", data, out, config=config, resume=True)
    first = report["ensemble"]["members"][0]
    assert first["calibration"]["sentiment"]["n"] == 72  # calibrated this time
    assert json.loads((out / "members" / "s1" / "calibration.json").read_text())["sentiment"]["n"] == 72


def test_a_full_fine_tune_keeps_fp32_weights_through_calibration(tiny_encoder_dir, tmp_path):
    """Calibration re-saves the model; loaded in bf16 (``auto`` on a CPU with AMX) it wrote bf16 weights."""
    from safetensors import safe_open

    config = replace(tiny_config(tiny_encoder_dir), epochs=1, full_finetune=True, lr=1e-4)
    out = tmp_path / "full"
    train("sentiment", SAMPLE_DATA_DIR / "train_sentiment.csv", out, config=config)
    with safe_open(str(out / "encoder.safetensors"), "pt") as weights:
        names = weights.keys()  # safe_open is not iterable
        assert {weights.get_tensor(k).dtype for k in names} == {torch.float32}
    assert json.loads((out / "calibration.json").read_text())["sentiment"]["n"] == 72


def test_ensemble_settings_are_checked():
    with pytest.raises(ValueError, match="repeats a seed"):
        FinanceTrainConfig(ensemble_seeds=(1, 1))
    with pytest.raises(ValueError, match="refit needs a validation split"):
        FinanceTrainConfig(refit=True, val_fraction=0.0)


def test_a_student_distils_from_a_trained_teacher(
    tiny_sentiment_dir, tiny_topic_dir, tiny_encoder_dir, tmp_path
):
    """``teacher``: the teacher scores the training rows once; each ensemble member trains towards it."""
    data = load_labelled(SAMPLE_DATA_DIR / "train_sentiment.csv")
    config = replace(
        tiny_config(tiny_encoder_dir), epochs=1, ensemble_seeds=(1, 2), teacher=str(tiny_sentiment_dir)
    )
    out = tmp_path / "student"
    report = train("sentiment", data, out, config=config)
    taught = report["teacher"]
    assert taught["model_version"] == model_version(tiny_sentiment_dir) and taught["distill_weight"] == 0.5
    # the share of training rows whose most likely teacher label is their label: the teacher's accuracy
    accuracy = evaluate(load_model(tiny_sentiment_dir), data)["accuracy"]
    assert taught["agreement_with_labels"]["sentiment"] == pytest.approx(accuracy)
    assert read_meta(out)["teacher"] == taught
    for seed in (1, 2):
        member = json.loads((out / "members" / f"s{seed}" / "report.json").read_text())
        assert member["distillation"] == {"heads": ["sentiment"], "distill_weight": 0.5}
    assert evaluate(load_model(out), data)["n"] == len(data)

    single = replace(config, ensemble_seeds=())
    with pytest.raises(ValueError, match="is the directory being trained into"):
        train("sentiment", data, tmp_path / "self", config=replace(single, teacher=str(tmp_path / "self")))
    with pytest.raises(ValueError, match=r"has no head \['sentiment'\]"):
        train("sentiment", data, tmp_path / "bad", config=replace(single, teacher=str(tiny_topic_dir)))
    with pytest.raises(ValueError, match="not a trained finance model directory"):
        train("sentiment", data, tmp_path / "bad", config=replace(single, teacher=str(tmp_path)))
    assert not (tmp_path / "bad").exists() and not (tmp_path / "self").exists()


def test_a_transfer_set_joins_the_training_rows_with_the_teachers_labels_only(
    tiny_sentiment_dir, tiny_encoder_dir, tmp_path
):
    """``transfer``: unlabelled texts the teacher labels; repeats of labelled texts are dropped."""
    data = load_labelled(SAMPLE_DATA_DIR / "train_sentiment.csv")
    fresh = ["Acme Corp beats estimates and lifts guidance", "Widget maker warns on margins"]
    file = tmp_path / "transfer.csv"
    pd.DataFrame({"text": [*fresh, f"  {data.texts[0]} ", fresh[0]]}).to_csv(file, index=False)
    config = replace(
        tiny_config(tiny_encoder_dir), epochs=1, teacher=str(tiny_sentiment_dir), transfer=str(file)
    )
    out = tmp_path / "student"
    report = train("sentiment", data, out, config=config)
    # the labelled text (spacing aside) and the repeat are dropped; the validation split is unchanged
    assert report["teacher"]["transfer"] == {"source": str(file), "rows": 2, "already_labelled": 1}
    assert read_meta(out)["teacher"]["transfer"]["rows"] == 2
    plain = train("sentiment", data, tmp_path / "plain", config=replace(config, transfer=None))
    assert report["val_size"] == plain["val_size"] and report["train_size"] == plain["train_size"] + 2

    with pytest.raises(ValueError, match="transfer needs a teacher"):
        replace(config, teacher=None)
    file.write_text("text,source\nfine,wire\n,wire\n")
    with pytest.raises(DataError, match=r"transfer.csv: row 2.*field 'text': empty text"):
        train("sentiment", data, tmp_path / "bad", config=config)
    assert not (tmp_path / "bad").exists()
