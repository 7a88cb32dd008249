"""The shared fine-tuning loop, data readers, classifier training and causal-LM SFT (tiny random models)."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from core.classification import TextClassifier
from core.finetune import (
    CausalLMTrainConfig,
    ClassifierTrainConfig,
    TrainConfig,
    TrainingTask,
    encode_pair,
    epoch_batches,
    fit,
    fit_causal_lm,
    load_causal_lm_with_adapter,
    read_labelled_texts,
    read_pairs,
    save_causal_lm_adapter,
    split_indices,
    split_rows,
    train_causal_lm,
    train_classifier,
    with_overrides,
)
from core.finetune.classifier import classifier_task
from core.finetune.loop import _optimizer, lr_factor
from core.generation import Generator
from core.lora import LoraSettings, apply_lora
from core.models import load_causal_lm, load_tokenizer
from tests.conftest import lora_with_nonzero_b

REPORT_KEYS = {
    "epochs_run",
    "best_epoch",
    "metric",
    "best_metric",
    "stopped_early",
    "resumed",
    "train_size",
    "val_size",
    "optimizer_steps",
    "wall_time_s",
    "train_time_s",
    "samples_per_s",
    "seed",
    "device",
    "history",
    "config",
}


def good_bad(n: int, seed: int) -> list[tuple[str, str]]:
    """A trivially learnable task: the label is whether the text says good or bad."""
    rng = random.Random(seed)
    things = ["movie", "pizza", "phone", "hotel", "book", "service"]
    templates = ["the {} was {}", "{} , {} overall", "what a {} {} experience", "honestly {} and {}"]
    rows = []
    for i in range(n):
        label = "good" if i % 2 == 0 else "bad"
        rows.append((rng.choice(templates).format(rng.choice(things), label), label))
    return rows


def scalar_tags(run_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return set(events.Tags()["scalars"])


# --- loop pieces ----------------------------------------------------------------------------------


def test_lr_schedule_warms_up_decays_and_never_stalls():
    factors = [lr_factor(step, total=20, warmup=4, kind="linear") for step in range(20)]
    assert factors[:4] == sorted(factors[:4]) and factors[3] < 1.0 and factors[4] == 1.0
    assert factors[4:] == sorted(factors[4:], reverse=True)
    assert min(factors) > 0
    cosine = [lr_factor(step, total=20, warmup=0, kind="cosine") for step in range(20)]
    assert cosine[0] == 1.0 and cosine[10] == pytest.approx(0.5) and min(cosine) > 0
    assert lr_factor(15, total=20, warmup=2, kind="constant") == 1.0


def test_epoch_batches_cover_everything_once_and_group_similar_lengths():
    lengths = [random.Random(i).randint(1, 200) for i in range(100)]
    batches = epoch_batches(lengths, batch_size=8, seed=3, bucket_batches=4)
    assert sorted(i for b in batches for i in b) == list(range(100))
    assert batches == epoch_batches(lengths, batch_size=8, seed=3, bucket_batches=4)
    assert batches != epoch_batches(lengths, batch_size=8, seed=4, bucket_batches=4)
    # Padding waste: sorted chunks pad far less than random batches of the same size.
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    rng = np.random.default_rng(0).permutation(100).tolist()
    random_batches = [rng[i : i + 8] for i in range(0, 100, 8)]
    random_waste = sum(
        max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in random_batches
    )
    assert waste < random_waste / 2


def test_stratified_split_keeps_every_class_in_train_and_is_seeded():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 1
    train, val = split_indices(len(labels), 0.2, seed=7, strata=labels)
    assert sorted(train + val) == list(range(61)) and not set(train) & set(val)
    assert [labels[i] for i in val].count("a") == 10 and [labels[i] for i in val].count("b") == 2
    assert 60 in train  # a class of one stays in training
    assert (train, val) == split_indices(len(labels), 0.2, seed=7, strata=labels)
    assert split_indices(10, 0.0, seed=1) == (list(range(10)), [])


def test_split_seed_fixes_the_validation_rows_across_seeds(tiny_encoder_dir):
    """Runs of several seeds that share split_seed hold out the same rows (a seed ensemble's validation)."""
    assert TrainConfig(seed=3).val_split_seed == 3
    assert TrainConfig(seed=3, split_seed=42).val_split_seed == 42
    data = read_labelled_texts(good_bad(40, seed=0), "text", ["label"])
    classifier = TextClassifier(str(tiny_encoder_dir), heads={"label": data.label_set("label")})

    def val_rows(**fields):
        task = classifier_task(classifier, data, ClassifierTrainConfig(val_fraction=0.25, **fields))
        # the training rows' token ids (the loop's positions index the training split alone)
        return sorted(tuple(task.collate([r])["input_ids"][0].tolist()) for r in range(len(task.lengths)))

    assert val_rows(seed=1, split_seed=42) == val_rows(seed=2, split_seed=42) == val_rows(seed=42)
    assert val_rows(seed=1) != val_rows(seed=2)


def test_auxiliary_rows_are_all_training_rows_and_leave_the_main_split_unchanged():
    main = ["a"] * 30 + ["b"] * 10
    alone = split_indices(len(main), 0.25, seed=5, strata=main)
    labels = {"main": [*main, None, None, None], "aux": [None] * 40 + ["x", "y", "x"]}
    train, val = split_rows(labels, 0.25, seed=5, auxiliary=("aux",))
    assert val == alone[1] and train == [*alone[0], 40, 41, 42]
    # without auxiliary heads it is the plain split stratified by the first head
    assert split_rows(labels, 0.25, seed=5) == split_indices(43, 0.25, seed=5, strata=labels["main"])
    with pytest.raises(ValueError, match="no head to validate"):
        split_rows(labels, 0.25, seed=5, auxiliary=("main", "aux"))


def test_auxiliary_head_trains_but_neither_validates_nor_picks_the_epoch(tiny_encoder_dir):
    rows = [(t, y, "") for t, y in good_bad(24, seed=0)] + [(t, "", y) for t, y in good_bad(16, seed=1)]
    data = read_labelled_texts(rows, "text", ["label", "aux"])
    classifier = TextClassifier(
        str(tiny_encoder_dir), heads={"label": data.label_set("label"), "aux": data.label_set("aux")}
    )
    config = ClassifierTrainConfig(val_fraction=0.25, auxiliary_heads=("aux",))
    task = classifier_task(classifier, data, config)
    assert len(task.lengths) == 24 - 6 + 16 and task.val_size == 6
    metrics = task.evaluate()
    assert set(metrics) == {"loss", "macro_f1", "accuracy"}  # the main head's alone, no "aux/..." keys
    assert task.loss(task.collate(list(range(len(task.lengths))))).item() > 0
    with pytest.raises(ValueError, match="not label columns"):
        classifier_task(classifier, data, ClassifierTrainConfig(auxiliary_heads=("other",)))


def test_label_smoothing_softens_the_training_targets_and_leaves_validation_alone(tiny_encoder_dir):
    data = read_labelled_texts(good_bad(24, seed=0), "text", ["label"])
    classifier = TextClassifier(str(tiny_encoder_dir), heads={"label": data.label_set("label")}).eval()
    plain = classifier_task(classifier, data, ClassifierTrainConfig(val_fraction=0.25))
    smooth = classifier_task(classifier, data, ClassifierTrainConfig(val_fraction=0.25, label_smoothing=0.2))
    batch = plain.collate(list(range(len(plain.lengths))))
    with torch.no_grad():
        logp = classifier(batch["input_ids"], batch["attention_mask"])["label"].log_softmax(-1)
        gold = logp.gather(1, batch["labels"]["label"][:, None]).squeeze(1)
        # 0.8 of the target on the gold label, 0.2 spread evenly over both labels
        expected = -(0.8 * gold + 0.2 * logp.mean(-1)).mean().item()
        assert smooth.loss(batch).item() == pytest.approx(expected, rel=1e-5)
        assert plain.loss(batch).item() == pytest.approx(-gold.mean().item(), rel=1e-5)
        assert smooth.evaluate() == plain.evaluate()  # the validation loss and metrics are unsmoothed
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassifierTrainConfig(label_smoothing=1.0)


def test_label_confidence_sets_each_rows_soft_target_and_leaves_validation_alone(tiny_encoder_dir):
    rows = good_bad(24, seed=0)
    sure = [1.0 if i % 3 else 0.6 for i in range(len(rows))]  # every third row a split vote
    hard = read_labelled_texts(rows, "text", ["label"])
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows], "agree": sure})
    soft = read_labelled_texts(frame, "text", ["label"], confidence_column="agree")
    assert soft.confidence == sure and soft.labels == hard.labels
    classifier = TextClassifier(str(tiny_encoder_dir), heads={"label": hard.label_set("label")}).eval()
    plain = classifier_task(classifier, hard, ClassifierTrainConfig(val_fraction=0.25))
    task = classifier_task(classifier, soft, ClassifierTrainConfig(val_fraction=0.25))
    n = len(task.lengths)  # the task's collate takes positions in the training split
    train, _ = split_rows(soft.labels, 0.25, ClassifierTrainConfig(val_fraction=0.25).val_split_seed)
    batch = task.collate(list(range(n)))
    expected_sure = [sure[i] for i in train]
    assert batch["confidence"].tolist() == pytest.approx(expected_sure) and "confidence" not in plain.collate(
        [0]
    )
    with torch.no_grad():
        logp = classifier(batch["input_ids"], batch["attention_mask"])["label"].log_softmax(-1)
        gold = logp.gather(1, batch["labels"]["label"][:, None]).squeeze(1)
        other = logp.sum(-1) - gold  # two labels: the one that is not gold
        c = torch.tensor(expected_sure)
        assert task.loss(batch).item() == pytest.approx(-(c * gold + (1 - c) * other).mean().item(), rel=1e-5)
        assert plain.loss(plain.collate(list(range(n)))).item() == pytest.approx(
            -gold.mean().item(), rel=1e-5
        )
        assert task.evaluate() == plain.evaluate()  # validation keeps the hard labels
    split = read_labelled_texts(frame.assign(agree=0.4), "text", ["label"], confidence_column="agree")
    with pytest.raises(ValueError, match=r"DataFrame, row 1: confidence 0.4 is below 1/2 for head 'label'"):
        classifier_task(classifier, split, ClassifierTrainConfig(val_fraction=0.25))


@pytest.mark.parametrize("value", ["high", "0", "1.5", "", "nan"])
def test_a_bad_label_confidence_names_file_row_and_column(tmp_path, value):
    path = tmp_path / "votes.csv"
    path.write_text(f"text,label,agree\ngood,pos,1\nbad,neg,{value}\n")
    with pytest.raises(
        ValueError, match=rf"votes.csv, row 2: confidence '{value}' in column 'agree' is not a number"
    ):
        read_labelled_texts(path, confidence_column="agree")


def test_config_overrides_are_checked():
    config = with_overrides(ClassifierTrainConfig(), {"epochs": "5", "lora": {"r": 4}})
    assert config.epochs == 5 and config.lora.r == 4 and isinstance(config, ClassifierTrainConfig)
    with pytest.raises(ValueError, match="unknown config key"):
        with_overrides(ClassifierTrainConfig(), {"epoch": 5})
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)


# --- data -----------------------------------------------------------------------------------------


def test_read_labelled_texts_from_files_frames_and_tuples(tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_text('text,label\n"Great, really",pos\nAwful,neg\nNA,neg\n')
    data = read_labelled_texts(csv)
    assert data.texts == ["Great, really", "Awful", "NA"] and data.labels == {"label": ["pos", "neg", "neg"]}
    frame = pd.DataFrame({"body": ["x", "y", "z"], "s": ["a", "b", None], "t": ["u", None, "v"]})
    multi = read_labelled_texts(frame, "body", ["s", "t"])
    assert multi.labels == {"s": ["a", "b", None], "t": ["u", None, "v"]}
    assert read_labelled_texts([("hi", "a"), ("yo", "b")]).label_set("label") == ["a", "b"]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"prompt": "Hi", "response": "Hello"}\n\n{"prompt": "Bye", "response": "Ciao"}\n')
    assert read_pairs(jsonl) == [("Hi", "Hello"), ("Bye", "Ciao")]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (
            "text,lbl\na,b\n",
            ValueError,
            r"reviews.csv: field 'label': missing column\(s\) \['label'\]; found \['text', 'lbl'\]",
        ),
        ("text,label\ngood,pos\n  ,neg\n", ValueError, r"reviews.csv, row 2: empty text in column 'text'"),
        ("text,label\ngood,pos\nbad,\n", ValueError, r"reviews.csv, row 2: empty label in column 'label'"),
        ("text,label\ngood,pos\nfine,pos\n", ValueError, r"column 'label' has 1 distinct label"),
        ("text,label\n", ValueError, "no rows to train on"),
    ],
)
def test_bad_training_data_names_file_row_and_column(tmp_path, content, error, message):
    path = tmp_path / "reviews.csv"
    path.write_text(content)
    with pytest.raises(error, match=message):
        read_labelled_texts(path)


def test_bad_sources_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv' does not exist"):
        train_classifier(tmp_path / "missing.csv", tmp_path / "out")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type '.xlsx'"):
        read_labelled_texts(tmp_path / "data.xlsx")
    with pytest.raises(ValueError, match="item 2: expected a tuple of 2 values"):
        read_labelled_texts([("a", "x"), ("b",)])
    (tmp_path / "p.jsonl").write_text('{"prompt": "Hi", "response": ""}\n')
    with pytest.raises(ValueError, match=r"p.jsonl, row 1: empty response"):
        read_pairs(tmp_path / "p.jsonl")
    (tmp_path / "q.jsonl").write_text('{"prompt": "Hi", "answer": "x"}\n')
    with pytest.raises(ValueError, match=r"field 'response': missing column\(s\) \['response'\]"):
        read_pairs(tmp_path / "q.jsonl")


# --- the loop on a toy module ---------------------------------------------------------------------


def toy_task(scripted: list[float]) -> TrainingTask:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x = torch.randn(32, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    metrics = iter(scripted)
    return TrainingTask(
        model=model,
        lengths=[1] * 32,
        collate=lambda rows: {"x": x[list(rows)], "y": y[list(rows)]},
        loss=lambda batch: torch.nn.functional.mse_loss(model(batch["x"]), batch["y"]),
        evaluate=lambda: {"accuracy": next(metrics), "loss": 1.0},
        metric="accuracy",
        greater_is_better=True,
        val_size=8,
    )


def test_early_stopping_restores_the_best_epoch(tmp_path):
    task = toy_task([0.5, 0.8, 0.7, 0.6, 0.9, 0.95])
    snapshots = {}
    config = TrainConfig(epochs=6, patience=2, batch_size=8, lr=0.05, show_progress_bar=False)
    report = fit(
        task,
        config,
        tmp_path,
        on_epoch_end=lambda row: snapshots.update({row["epoch"]: task.model.weight.detach().clone()}),
    )
    assert report["epochs_run"] == 4 and report["stopped_early"]
    assert report["best_epoch"] == 2 and report["best_metric"] == 0.8
    assert torch.equal(task.model.weight, snapshots[2]) and not torch.equal(snapshots[2], snapshots[4])
    losses = [row["train_loss"] for row in report["history"]]
    assert losses == sorted(losses, reverse=True)  # a learnable regression: the loss goes down
    assert set(report) >= REPORT_KEYS and report["optimizer_steps"] == 16
    assert json.loads((tmp_path / "report.json").read_text())["best_epoch"] == 2
    assert {"train/loss", "lr", "train/epoch_loss", "val/accuracy", "val/loss"} <= scalar_tags(tmp_path)
    # Resuming a run that already stopped early trains no further.
    again = fit(toy_task([]), config, tmp_path, resume_from=True)
    assert again["epochs_run"] == 4 and again["best_epoch"] == 2 and again["resumed"]
    with pytest.raises(FileNotFoundError, match="No resume checkpoint"):
        fit(toy_task([]), config, tmp_path / "elsewhere", resume_from=True)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    config = TrainConfig(epochs=2, batch_size=4, grad_accum=3, val_fraction=0, show_progress_bar=False)
    task = toy_task([])
    task.evaluate = None
    report = fit(task, config, tmp_path)
    assert report["optimizer_steps"] == 2 * 3  # 8 batches per epoch -> 3 steps (the last one partial)
    assert report["metric"] == "train_loss" and report["best_epoch"] == 2
    # A new (not resumed) run in the same directory replaces the earlier run's event files.
    fit(task, config, tmp_path)
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_optimizer_is_fused_adamw_with_the_plain_update():
    """The fused kernel (5x faster than per-tensor AdamW on mpnet-base on CPU) updates as plain AdamW."""
    task = toy_task([])
    config = TrainConfig(lr=0.05)
    fused = _optimizer(task, config)
    assert isinstance(fused, torch.optim.AdamW) and fused.defaults["fused"] is True
    assert [g["weight_decay"] for g in fused.param_groups] == [0.01, 0.0]  # matrices decay, the bias not
    plain_model = torch.nn.Linear(4, 1)
    plain_model.load_state_dict(task.model.state_dict())
    plain = torch.optim.AdamW(
        [
            {"params": [plain_model.weight], "weight_decay": 0.01},
            {"params": [plain_model.bias], "weight_decay": 0.0},
        ],
        lr=0.05,
        foreach=False,
    )
    batch = task.collate(range(32))
    for _ in range(3):
        for model, opt in ((task.model, fused), (plain_model, plain)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(batch["x"]), batch["y"]).backward()
            opt.step()
    torch.testing.assert_close(task.model.state_dict(), plain_model.state_dict())
    assert not torch.equal(task.model.weight, toy_task([]).model.weight)  # it did move


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_precision_runs_the_forward_in_that_dtype_and_keeps_fp32_weights(tmp_path, precision):
    task = toy_task([])
    task.evaluate = None
    seen = []
    inner = task.loss

    def loss(batch):
        seen.append(task.model(batch["x"]).dtype)  # what the forward computes in, under the loop's autocast
        return inner(batch)

    task.loss = loss
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, val_fraction=0, precision=precision,
                         show_progress_bar=False)  # fmt: skip
    report = fit(task, config, tmp_path)
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert set(seen) == {expected}
    assert task.model.weight.dtype == torch.float32  # master weights and optimizer stay fp32
    losses = [row["train_loss"] for row in report["history"]]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.9 * losses[0]  # it learns
    assert report["config"]["precision"] == precision


def test_training_precision_is_checked():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")


# --- classifiers ----------------------------------------------------------------------------------


def test_train_classifier_learns_good_vs_bad(tiny_encoder_dir, tmp_path):
    out = tmp_path / "run"
    report = train_classifier(
        good_bad(80, seed=0),
        out,
        model=str(tiny_encoder_dir),
        epochs=6,
        lr=1e-2,
        head_lr=5e-2,
        show_progress_bar=False,
    )
    assert set(report) >= REPORT_KEYS | {"base_model", "heads", "output_dir"}
    assert report["train_size"] == 64 and report["val_size"] == 16 and report["best_metric"] == 1.0
    losses = [row["train_loss"] for row in report["history"]]
    assert losses[-1] < losses[0] / 2
    clf = TextClassifier.from_pretrained(out)
    held_out = good_bad(40, seed=1)
    assert clf.predict([t for t, _ in held_out]) == [label for _, label in held_out]
    assert clf.metrics["best_epoch"] == report["best_epoch"] and clf.seed == 42
    assert clf.train_config["lr"] == 1e-2 and clf.labels() == ["bad", "good"]
    assert {
        "config.json",
        "heads.safetensors",
        "adapter_model.safetensors",
        "metrics.json",
        "report.json",
    } <= {p.name for p in out.iterdir()}
    assert {p.name for p in (out / "checkpoint").iterdir()} == {
        "trainable.safetensors",
        "best.safetensors",
        "optimizer.pt",
        "trainer_state.json",
    }
    assert {"train/loss", "lr", "val/macro_f1", "val/loss"} <= scalar_tags(out)


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_encoder_dir, tmp_path):
    data = good_bad(40, seed=2)
    settings = {"model": str(tiny_encoder_dir), "epochs": 3, "patience": 0, "show_progress_bar": False}
    full = train_classifier(data, tmp_path / "full", **settings)

    class Interrupted(Exception):
        pass

    def interrupt(row):
        if row["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_classifier(data, tmp_path / "cut", on_epoch_end=interrupt, **settings)
    # The run builds aside (see core.io.artifacts): "cut" does not exist until training finishes.
    (build,) = tmp_path.glob(".cut.tmp-*")
    state = json.loads((build / "checkpoint" / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and not (tmp_path / "cut").exists()

    resumed = train_classifier(data, tmp_path / "cut", resume_from=True, **settings)
    assert resumed["resumed"] and resumed["epochs_run"] == 3
    assert not list(tmp_path.glob(".cut*"))  # the adopted build became "cut"; nothing left over
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3]
    for a, b in zip(full["history"], resumed["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
    texts = [t for t, _ in good_bad(10, seed=3)]
    np.testing.assert_allclose(
        TextClassifier.from_pretrained(tmp_path / "cut").predict_proba(texts),
        TextClassifier.from_pretrained(tmp_path / "full").predict_proba(texts),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="trained on 32 examples"):
        train_classifier(good_bad(60, seed=2), tmp_path / "cut", resume_from=True, **settings)


KILL_SCRIPT = """
import sys
from core.finetune import train_classifier
train_classifier(sys.argv[1], sys.argv[2], model=sys.argv[3], epochs=2, patience=0, show_progress_bar=False,
                 resume_from=sys.argv[4] == "resume" or None)
"""


def test_training_killed_after_a_checkpoint_resumes_from_it(tiny_encoder_dir, tmp_path):
    """AIGC_FAILPOINT=train.after_checkpoint kills a real run after epoch 1's checkpoint; it resumes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from core.failpoints import ENV_VAR, EXIT_CODE

    data = tmp_path / "train.csv"
    pd.DataFrame(good_bad(24, seed=4), columns=["text", "label"]).to_csv(data, index=False)
    out = tmp_path / "model"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), ENV_VAR: "train.after_checkpoint"}
    args = [sys.executable, "-c", KILL_SCRIPT, str(data), str(out), str(tiny_encoder_dir)]
    killed = subprocess.run([*args, "new"], env=env, capture_output=True, text=True, check=False)
    assert killed.returncode == EXIT_CODE, killed.stderr
    assert not out.exists()  # the model directory appears only when training has finished
    (build,) = tmp_path.glob(".model.tmp-*")
    state = json.loads((build / "checkpoint" / "trainer_state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1

    resumed = train_classifier(
        str(data), out, model=str(tiny_encoder_dir), epochs=2, patience=0, show_progress_bar=False,
        resume_from=True,
    )  # fmt: skip
    assert resumed["resumed"] and [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == state["history"][0]  # epoch 1 was not trained again
    TextClassifier.from_pretrained(out)  # complete and verified against its artifact manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "train.csv"]  # no leftovers


# --- causal LMs -----------------------------------------------------------------------------------


def test_encode_pair_labels_only_the_response_and_end_token(tiny_causal_lm_dir):
    tokenizer = load_tokenizer(str(tiny_causal_lm_dir))
    ids, labels = encode_pair(tokenizer, "What are your opening hours?", "Nine to five.", max_length=128)
    assert len(ids) == len(labels)
    n_prompt = labels.count(-100)
    assert labels[:n_prompt] == [-100] * n_prompt and -100 not in labels[n_prompt:]
    assert tokenizer.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")
    assert "What are your opening hours?" in tokenizer.decode(ids[:n_prompt])
    assert tokenizer.decode(labels[n_prompt:]) == "Nine to five.<|im_end|>"
    short_ids, short_labels = encode_pair(tokenizer, "Hi", "A long answer " * 50, max_length=64)
    assert len(short_ids) == 64 and short_labels[-1] != -100
    with pytest.raises(ValueError, match="leaving no room for the response"):
        encode_pair(tokenizer, "word " * 100, "x", max_length=32)


def test_the_training_prompt_is_token_identical_to_the_inference_prompt(tiny_causal_lm_dir):
    """SFT trains on exactly the prompt tokens every generation backend sends (one Prompter for all)."""
    from core.generation.prompting import Prompter

    tokenizer = load_tokenizer(str(tiny_causal_lm_dir))
    for system in (None, "Answer briefly and politely."):
        ids, labels = encode_pair(tokenizer, "Where is my parcel?", "On its way.", system_prompt=system)
        n_prompt = labels.count(-100)
        assert ids[:n_prompt] == Prompter(tokenizer, system).encode("Where is my parcel?")


def _padded_batch(encoded: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Encoded (ids, labels) pairs right-padded to the longest, as a model's keyword arguments."""
    width = max(len(ids) for ids, _ in encoded)
    return {
        "input_ids": torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in encoded]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded]),
        "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in encoded]),
    }


def test_answer_token_loss_equals_the_models_own_loss_on_a_padded_batch(tiny_causal_lm_dir):
    """The LM head only where an answer token is predicted: same loss and LoRA gradients as full logits."""
    from core.finetune.causal_lm import answer_token_loss

    model, tokenizer = lora_with_nonzero_b(tiny_causal_lm_dir)
    encoded = [encode_pair(tokenizer, q, a, system_prompt="Be brief.") for q, a in PAIRS[:3]]
    encoded.append(encode_pair(tokenizer, "A much longer question " * 5, "Short."))
    batch = _padded_batch(encoded)
    trainable = [p for p in model.parameters() if p.requires_grad]
    expected = model(**batch).loss  # logits at every position, the model's own shifted loss
    expected_grads = torch.autograd.grad(expected, trainable)
    got = answer_token_loss(model, batch)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for got_grad, want in zip(torch.autograd.grad(got, trainable), expected_grads, strict=True):
        torch.testing.assert_close(got_grad, want, atol=1e-6, rtol=1e-4)
    assert all(g.abs().sum() > 0 for g in expected_grads)  # every LoRA weight is compared, none vacuously


def test_pack_rows_fills_rows_first_fit_by_decreasing_length():
    from core.finetune.causal_lm import pack_rows

    assert pack_rows([5, 3, 4, 2, 9], 8) == [[4], [0, 1], [2, 3]]  # 9 > 8 gets a row of its own
    assert pack_rows([5, 3, 4, 2], 100) == [[0, 2, 1, 3]]


def test_packed_batch_gives_the_padded_batch_loss_and_gradients(tiny_causal_lm_dir):
    from core.finetune.causal_lm import IGNORE, answer_token_loss, packed_batch

    model, tokenizer = lora_with_nonzero_b(tiny_causal_lm_dir)
    encoded = [encode_pair(tokenizer, q, a, system_prompt="Be brief.") for q, a in PAIRS[:5]]
    encoded.append(encode_pair(tokenizer, "A much longer question " * 5, "Short."))
    padded = _padded_batch(encoded)
    width = padded["input_ids"].shape[1]

    def loss_and_grads(batch):
        model.zero_grad()
        loss = answer_token_loss(model, batch)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    expected, expected_grads = loss_and_grads(padded)
    one_row = packed_batch(encoded, 4096, pad_id=0)
    several = packed_batch(encoded, width + 10, pad_id=0)  # rows of 2-3 pairs and a padded tail
    assert one_row["input_ids"].shape[0] == 1 and several["input_ids"].shape[0] > 1
    assert (several["labels"] != IGNORE).sum() == (padded["labels"] != IGNORE).sum()
    for batch in (one_row, several):
        loss, grads = loss_and_grads(batch)
        torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
        for got, want in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # The control: the same row with positions running on (no restarts, so one causal sequence in which
    # every pair sees the ones before it) gives another loss, so the equality above is the isolation
    # (the random tiny model barely uses its context: the gap is small, but 30x the tolerance).
    leaky = {**one_row, "position_ids": torch.arange(one_row["input_ids"].shape[1])[None, :]}
    with torch.no_grad():
        assert abs(float(answer_token_loss(model, leaky)) - float(expected)) > 3e-4


def test_packed_training_under_bf16_autocast_stays_close_to_padded(tiny_causal_lm_dir):
    from core.finetune.causal_lm import answer_token_loss, packed_batch

    model, tokenizer = lora_with_nonzero_b(tiny_causal_lm_dir)
    encoded = [encode_pair(tokenizer, q, a) for q, a in PAIRS[:4]]
    padded = packed_batch(encoded, 1, pad_id=0)  # 1: one pair per row
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = answer_token_loss(model, padded).float()
        b = answer_token_loss(model, packed_batch(encoded, 4096, pad_id=0)).float()
    torch.testing.assert_close(a, b, atol=2e-2, rtol=1e-2)


PAIRS = [(f"What colour is item {i}?", f"Item {i} is {'red' if i % 2 else 'blue'}.") for i in range(12)]


def test_causal_lm_adapter_trains_and_reloads_with_identical_logits(tiny_causal_lm_dir, tmp_path):
    base, tokenizer = load_causal_lm(str(tiny_causal_lm_dir), fresh=True)
    torch.manual_seed(0)  # LoRA A initialisation
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0), task_type="CAUSAL_LM")
    config = CausalLMTrainConfig(epochs=4, batch_size=4, lr=2e-2, val_fraction=0.25, show_progress_bar=False)
    report = fit_causal_lm(model, tokenizer, PAIRS, tmp_path / "run", config)
    assert report["metric"] == "loss" and report["train_size"] == 9 and report["val_size"] == 3
    val_losses = [row["val_loss"] for row in report["history"]]
    assert val_losses[-1] < val_losses[0] and report["best_metric"] == min(val_losses)
    assert "val/perplexity" in scalar_tags(tmp_path / "run")

    out = save_causal_lm_adapter(model, tmp_path / "adapter", str(tiny_causal_lm_dir), config, report)
    manifest = json.loads((out / "aigc_adapter.json").read_text())
    assert manifest["base_model"] == str(tiny_causal_lm_dir) and manifest["kind"] == "causal-lm-adapter"
    assert manifest["lora"]["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    ids = torch.tensor([encode_pair(tokenizer, *PAIRS[0])[0]])
    with torch.inference_mode():
        expected = model(input_ids=ids).logits
        reloaded, _ = load_causal_lm_with_adapter(out)
        merged, _ = load_causal_lm_with_adapter(out, merge=True)
        torch.testing.assert_close(reloaded(input_ids=ids).logits, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=0)
        plain, _ = load_causal_lm(str(tiny_causal_lm_dir), fresh=True)
        assert (plain(input_ids=ids).logits - expected).abs().max() > 1e-3  # the adapter changed the model
    # The generator reads the manifest and merges the adapter.
    assert Generator(adapter=str(out)).generate(PAIRS[0][0], max_new_tokens=3).token_ids


def test_train_causal_lm_from_jsonl_writes_an_adapter_directory(tiny_causal_lm_dir, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in PAIRS))
    out = tmp_path / "lm"
    report = train_causal_lm(
        path, out, model=str(tiny_causal_lm_dir), epochs=2, val_fraction=0, show_progress_bar=False
    )
    assert report["epochs_run"] == 2 and report["val_size"] == 0 and report["metric"] == "train_loss"
    assert report["history"][1]["train_loss"] < report["history"][0]["train_loss"]
    assert {"adapter_config.json", "adapter_model.safetensors", "aigc_adapter.json", "report.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "README.md").exists()
    (out / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="does not match the checksum"):
        load_causal_lm_with_adapter(out)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_causal_lm_with_adapter(tmp_path / "nothing")


@pytest.mark.slow
def test_smollm2_sft_learns_a_reply(tmp_path):
    pairs = [("What is the secret word?", "The secret word is BLUEBERRY.")] * 8
    report = train_causal_lm(
        pairs, tmp_path / "smol", epochs=5, lr=3e-3, batch_size=4, val_fraction=0, show_progress_bar=False
    )
    assert report["history"][-1]["train_loss"] < 0.5 * report["history"][0]["train_loss"]
    reply = (
        Generator(adapter=str(tmp_path / "smol")).generate("What is the secret word?", max_new_tokens=12).text
    )
    assert "BLUEBERRY" in reply
