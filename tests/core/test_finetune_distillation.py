"""Distillation: a teacher's probabilities as soft targets of a student classifier (tiny random encoder)."""

import numpy as np
import pytest
import torch

from core.classification import TextClassifier
from core.finetune import ClassifierTrainConfig, read_labelled_texts, split_rows, train_classifier
from core.finetune.classifier import classifier_task
from core.finetune.distillation import SoftTargets, agreement, teacher_targets
from tests.core.test_finetune import good_bad


def test_the_loss_mixes_the_teachers_probabilities_with_each_rows_label(tiny_encoder_dir):
    data = read_labelled_texts(good_bad(24, seed=0), "text", ["label"])
    classifier = TextClassifier(str(tiny_encoder_dir), heads={"label": data.label_set("label")}).eval()
    # the teacher's columns in another order than the student's (bad, good); row 3 has no target
    teach = np.array([[0.7, 0.3] if i % 2 else [0.1, 0.9] for i in range(24)], dtype=np.float32)
    teach[3] = np.nan
    soft = {"label": SoftTargets(("good", "bad"), teach)}
    config = ClassifierTrainConfig(val_fraction=0.25, distill_weight=0.4)
    plain = classifier_task(classifier, data, ClassifierTrainConfig(val_fraction=0.25))
    task = classifier_task(classifier, data, config, soft)
    train, _ = split_rows(data.labels, 0.25, config.val_split_seed)
    batch = task.collate(list(range(len(train))))
    assert 3 in train  # the row without a teacher target is in this batch
    with torch.no_grad():
        logp = classifier(batch["input_ids"], batch["attention_mask"])["label"].log_softmax(-1)
        gold = -logp.gather(1, batch["labels"]["label"][:, None]).squeeze(1)
        target = torch.from_numpy(teach[train][:, [1, 0]])  # in the student's order
        taught = -(target * logp).sum(-1)
        expected = torch.where(torch.isnan(taught), gold, 0.4 * taught + 0.6 * gold).mean()
        assert task.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)
        assert plain.loss(plain.collate(list(range(len(train))))).item() == pytest.approx(
            gold.mean().item(), rel=1e-5
        )
        assert task.evaluate() == plain.evaluate()  # validation keeps the labels alone
    with pytest.raises(ValueError, match="distill_weight"):
        ClassifierTrainConfig(distill_weight=1.5)
    with pytest.raises(ValueError, match="2 soft-target rows for 24 data rows"):
        classifier_task(classifier, data, config, {"label": SoftTargets(("good", "bad"), teach[:2])})
    with pytest.raises(ValueError, match="'other', which is not a head"):
        classifier_task(classifier, data, config, {"other": soft["label"]})


def test_soft_targets_follow_the_students_labels():
    targets = SoftTargets(("negative", "neutral", "positive"), np.array([[0.2, 0.6, 0.2], [0.5, 0.0, 0.5]]))
    np.testing.assert_allclose(targets.aligned(["positive", "negative"]), [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(targets.aligned(["neutral", "positive"]), [[0.75, 0.25], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"no probability for labels \['mixed'\]"):
        targets.aligned(["mixed", "positive"])
    with pytest.raises(ValueError, match="one column per label"):
        SoftTargets(("a", "b"), np.zeros((2, 3)))


def test_the_teacher_scores_the_labelled_rows_of_the_heads_it_has(tiny_encoder_dir):
    teacher = TextClassifier(str(tiny_encoder_dir), heads={"label": ["bad", "good"]}).eval()
    rows = good_bad(10, seed=3)
    texts = [t for t, _ in rows]
    labels = {"label": [y if i != 4 else None for i, (_, y) in enumerate(rows)], "topic": ["x"] * 10}
    targets = teacher_targets(teacher, texts, labels, batch_size=4)
    assert set(targets) == {"label"}  # the teacher has no topic head
    probs = targets["label"].probs
    assert np.isnan(probs[4]).all() and not np.isnan(np.delete(probs, 4, axis=0)).any()
    expected = teacher.predict_proba(texts, "label")
    np.testing.assert_allclose(np.delete(probs, 4, axis=0), np.delete(expected, 4, axis=0), atol=1e-5)
    best = ["bad", "good"]
    pairs = zip(expected, labels["label"], strict=True)
    agree = np.mean([best[int(p.argmax())] == y for p, y in pairs if y is not None])
    assert agreement(targets["label"], labels["label"]) == pytest.approx(agree)
    with pytest.raises(ValueError, match=r"none of the heads \['topic'\]"):
        teacher_targets(teacher, texts, {"topic": labels["topic"]})
    with pytest.raises(ValueError, match=r"does not know the label labels \['mixed'\]"):
        teacher_targets(teacher, texts, {"label": ["mixed"] + labels["label"][1:]})


def test_a_student_follows_its_teacher_where_the_two_disagree(tiny_encoder_dir, tmp_path):
    """Labels say good or bad by the text; a teacher that says "good" for everything wins at weight 1."""
    rows = good_bad(80, seed=0)
    teach = np.tile(np.array([[0.05, 0.95]], dtype=np.float32), (len(rows), 1))
    report = train_classifier(
        rows,
        tmp_path / "student",
        model=str(tiny_encoder_dir),
        soft_targets={"label": SoftTargets(("bad", "good"), teach)},
        epochs=3,
        lr=1e-2,
        head_lr=5e-2,
        distill_weight=1.0,
        show_progress_bar=False,
    )
    assert report["distillation"] == {"heads": ["label"], "distill_weight": 1.0}
    student = TextClassifier.from_pretrained(tmp_path / "student")
    held_out = [t for t, _ in good_bad(40, seed=1)]
    assert student.predict(held_out).count("good") >= 36  # the labels alone give 20 of 40


def great_awful(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts whose sentiment words never occur in :func:`good_bad` (a transfer set's vocabulary)."""
    return [(t.replace("good", "great").replace("bad", "awful"), y) for t, y in good_bad(n, seed)]


def test_transfer_rows_train_on_the_teacher_alone_and_are_never_held_out(tiny_encoder_dir):
    labelled = good_bad(16, seed=0)
    transfer = [t for t, _ in great_awful(8, seed=1)]
    frame = [(t, y) for t, y in labelled] + [(t, "") for t in transfer]
    data = read_labelled_texts(frame, "text", ["label"], allow_unlabelled=True)
    classifier = TextClassifier(str(tiny_encoder_dir), heads={"label": data.label_set("label")}).eval()
    teach = np.full((24, 2), np.nan, dtype=np.float32)
    teach[16:] = [[0.8, 0.2], [0.3, 0.7]] * 4  # (bad, good): transfer rows only
    config = ClassifierTrainConfig(val_fraction=0.25, distill_weight=0.5)
    task = classifier_task(classifier, data, config, {"label": SoftTargets(("bad", "good"), teach)})
    train, val = split_rows(data.labels, 0.25, config.val_split_seed)
    # the validation rows are those of the labelled rows alone; every transfer row trains
    assert val == split_rows({"label": [y for _, y in labelled]}, 0.25, config.val_split_seed)[1]
    assert set(range(16, 24)) <= set(train) and task.val_size == len(val) == 4
    batch = task.collate(list(range(len(train))))
    with torch.no_grad():
        logp = classifier(batch["input_ids"], batch["attention_mask"])["label"].log_softmax(-1)
        y = batch["labels"]["label"]
        is_transfer = torch.tensor([i >= 16 for i in train])
        gold = -logp.gather(1, y.clamp(min=0)[:, None]).squeeze(1)
        taught = -(torch.nan_to_num(torch.from_numpy(teach[train])) * logp).sum(-1)
        expected = torch.where(is_transfer, taught, gold).mean()  # labelled rows have no teacher here
        assert task.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)
    untaught = {"label": SoftTargets(("bad", "good"), np.full((24, 2), np.nan))}
    with pytest.raises(
        ValueError, match=r"row 17: no label in any of the columns \['label'\] and no teacher"
    ):
        classifier_task(classifier, data, config, untaught)
    with pytest.raises(ValueError, match="row 17: empty label"):
        read_labelled_texts(frame, "text", ["label"])


def test_the_teacher_scores_transfer_rows_for_every_head(tiny_encoder_dir):
    heads = {"label": ["bad", "good"], "topic": ["a", "b"]}
    teacher = TextClassifier(str(tiny_encoder_dir), heads=heads).eval()
    texts = ["the pizza was good", "the hotel was bad", "what a great phone", "honestly awful"]
    labels = {"label": ["good", None, None, None], "topic": [None, "a", None, None]}
    targets = teacher_targets(teacher, texts, labels, batch_size=2)
    label, topic = np.isnan(targets["label"].probs).any(1), np.isnan(targets["topic"].probs).any(1)
    assert label.tolist() == [False, True, False, False]  # row 1 is labelled for the topic only
    assert topic.tolist() == [True, False, False, False]
    np.testing.assert_allclose(
        targets["label"].probs[2:], teacher.predict_proba(texts[2:], "label"), atol=1e-5
    )


def test_a_student_learns_words_only_its_transfer_set_has(tiny_encoder_dir, tmp_path):
    """Labelled rows say good/bad; the teacher labels great/awful texts; only that student knows them."""
    labelled = good_bad(40, seed=0)
    transfer = great_awful(120, seed=2)
    teach = np.array([[0.05, 0.95] if y == "good" else [0.95, 0.05] for _, y in transfer], np.float32)
    rows = labelled + [(t, "") for t, _ in transfer]
    soft = np.concatenate([np.full((len(labelled), 2), np.nan, np.float32), teach])
    settings = dict(epochs=4, lr=1e-2, head_lr=5e-2, show_progress_bar=False, seed=0)
    train_classifier(
        rows,
        tmp_path / "student",
        model=str(tiny_encoder_dir),
        soft_targets={"label": SoftTargets(("bad", "good"), soft)},
        **settings,
    )
    train_classifier(labelled, tmp_path / "plain", model=str(tiny_encoder_dir), **settings)
    held_out = great_awful(40, seed=3)
    truth = [y for _, y in held_out]

    def right(directory) -> int:
        said = TextClassifier.from_pretrained(directory).predict([t for t, _ in held_out])
        return sum(a == b for a, b in zip(said, truth, strict=True))

    assert right(tmp_path / "student") >= 36
    assert right(tmp_path / "plain") <= 30  # the labelled rows alone do not teach great/awful
