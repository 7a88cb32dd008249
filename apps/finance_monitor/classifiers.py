"""The finance models (sentiment and topic classifiers): train, calibrate, evaluate and load them.

The models are :class:`core.classification.TextClassifier` directories trained with
:func:`core.finetune.train_classifier` (LoRA on the packaged MiniLM by default). One head is
named after its task (``sentiment`` or ``topic``); :func:`train_multitask` trains one encoder
with both heads on rows that each carry one of the two labels (``docs/benchmarks/finance.md``
records the measurement that chose two models by default).

With ``ensemble_seeds`` one model is trained per seed and :func:`load_model` returns a
:class:`core.classifier_ensemble.ClassifierEnsemble` that averages their calibrated probabilities;
with ``refit`` a first run with the validation split chooses the epoch count and temperatures and the
model (or each member) then trains on every row.

After training, the temperature of each head is fitted on the validation split the training
loop held out (:mod:`core.calibration`), so ``predict_proba`` is calibrated.
``finance.json`` beside the weights records the task, label map and data set, so ``eval`` can
read numeric labels with the same map. Labelling stored news items and whole files with a trained
model is in :mod:`apps.finance_monitor.scoring`.

Example:
    >>> report = train("sentiment", "train.csv", "runs/sentiment", epochs=3)
    >>> model = load_model("runs/sentiment")
    >>> evaluate(model, "test.csv")["weighted_f1"]
    0.87
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from apps.finance_monitor.config import FinanceTrainConfig
from apps.finance_monitor.datasets import Dedup, LabelledData, load_labelled, read_texts, text_key
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.labels import SENTIMENT_LABELS, parse_label_map
from core.calibration import calibrate, save_calibration
from core.classification import CONFIG_FILE, TextClassifier
from core.classification import KIND as CLASSIFIER_KIND
from core.classifier_ensemble import (
    ENSEMBLE_FILE,
    MEMBERS_DIR,
    Classifier,
    ClassifierEnsemble,
    is_ensemble,
    load_classifier,
    write_ensemble,
)
from core.config import write_json_atomic
from core.finetune import split_indices, split_rows, train_classifier, with_overrides
from core.finetune.data import require_validation
from core.finetune.distillation import SoftTargets, agreement, teacher_targets
from core.finetune.loop import CHECKPOINT_DIR, REPORT_FILE, RUN_STATE
from core.io.artifacts import ARTIFACT_FILE, open_artifact
from core.metrics import classification_report
from core.precision import InferencePrecision

logger = logging.getLogger(__name__)

Task = Literal["sentiment", "topic"]
TASKS: tuple[str, ...] = ("sentiment", "topic")
META_FILE = "finance.json"
#: Artifact kind of a finance model directory (a core classifier plus calibration and finance.json).
KIND = "finance-classifier"
#: Training frame column of the rows' label confidence, when the data carries one.
CONFIDENCE_COLUMN = "label_confidence"
#: Where a refit's validation run trains (removed once it has chosen the epochs and temperatures).
VALIDATION_RUN_DIR = "validation-run"
#: What a refit's validation run chose and scored (kept in the model directory).
VALIDATION_SUMMARY = "validation-run.json"


@dataclass(frozen=True)
class _Rows:
    """The training rows of every head: the frame the core trainer reads, the same rows as dicts
    (``{"text", head: label or ""}``), and the head names in order."""

    frame: pd.DataFrame
    rows: list[dict[str, str]]
    heads: list[str]
    #: A teacher's probabilities per head (distillation), rows as in ``frame``.
    soft: Mapping[str, SoftTargets] | None = None

    def validation(self, config: FinanceTrainConfig) -> dict[str, list[int]]:
        """``{head: row indices}`` of the validation split the training loop holds out (rebuilt from
        the same function, seed and strata), for every head that has rows there."""
        labels = {h: [r[h] or None for r in self.rows] for h in self.heads}
        _, val = split_rows(labels, config.val_fraction, config.val_split_seed, config.auxiliary_heads)
        chosen = {h: [i for i in val if self.rows[i][h]] for h in self.heads}
        return {h: rows for h, rows in chosen.items() if rows}

    def texts_and_labels(self, indices: Sequence[int], head: str) -> tuple[list[str], list[str]]:
        """The texts and ``head`` labels of rows ``indices``."""
        return [self.rows[i]["text"] for i in indices], [self.rows[i][head] for i in indices]


def load_training_data(
    task: str,
    data: str | Path | LabelledData,
    label_map: str | Path | Mapping[Any, str] | None = None,
    dedup: Dedup = "text",
    text_column: str = "text",
    label_column: str = "label",
    confidence_column: str | None = None,
) -> LabelledData:
    """Read labelled data for ``task`` (sentiment labels are checked against negative/neutral/positive).

    Raises:
        ValueError: Unknown task. DataError: Bad file (names file, row and field).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    if isinstance(data, LabelledData):
        return data
    labels = list(SENTIMENT_LABELS) if task == "sentiment" else None
    return load_labelled(
        data,
        label_map=label_map,
        labels=labels,
        dedup=dedup,
        text_column=text_column,
        label_column=label_column,
        confidence_column=confidence_column,
    )


def train(
    task: str,
    data: str | Path | LabelledData,
    out_dir: str | Path,
    *,
    label_map: str | Path | Mapping[Any, str] | None = None,
    config: FinanceTrainConfig | None = None,
    text_column: str = "text",
    label_column: str = "label",
    confidence_column: str | None = None,
    resume: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Fine-tune a one-head classifier for ``task`` on ``data`` and save it, calibrated, to ``out_dir``.

    Args:
        task: ``"sentiment"`` or ``"topic"`` (also the head's name).
        data: CSV / Parquet / JSON Lines / PhraseBank file, or already loaded data.
        out_dir: Model directory.
        label_map: Map of numeric labels to names (``"0=negative,1=positive,2=neutral"``, ``"tfns"``,
            ``"tfn-topic"`` or a classes file).
        config: Training settings; ``overrides`` replace fields (``epochs=5``, ``lora={"r": 16}``).
        text_column: Column of the texts.
        label_column: Column of the labels.
        confidence_column: Optional column of each row's label confidence (e.g. annotator agreement,
            1/k to 1): training aims at that probability for the label, the rest spread evenly over
            the others; validation and calibration keep the hard labels.
        resume: Continue a killed run from the checkpoint its unfinished build of ``out_dir`` left
            (same data and settings; ``epochs`` may be raised).

    Returns:
        The training report plus ``calibration`` and ``model_version``.
    """
    config = with_overrides(config or FinanceTrainConfig(), overrides)
    if config.teacher:  # a wrong teacher is refused before the data is read
        _check_teacher(config, out_dir)
    labelled = load_training_data(
        task, data, label_map, config.dedup, text_column, label_column, confidence_column
    )
    # Too few rows for a validation split is refused here, naming the file, before the model loads.
    n = len(labelled.texts)
    _, val = split_indices(n, config.val_fraction, config.val_split_seed, strata=list(labelled.labels))
    require_validation(val, n, config.val_fraction, str(labelled.source))
    return train_multitask({task: labelled}, out_dir, config=config, label_map=label_map, resume=resume)


def train_multitask(
    datasets: Mapping[str, LabelledData],
    out_dir: str | Path,
    *,
    config: FinanceTrainConfig | None = None,
    label_map: str | Path | Mapping[Any, str] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train one encoder with one head per entry of ``datasets`` (each row trains only its head).

    Args:
        datasets: ``{head: data}``, e.g. ``{"sentiment": ..., "topic": ...}``.
        out_dir: Model directory.
        config: Training settings.
        label_map: Recorded in ``finance.json`` (one-head models only).
        resume: Continue a killed run from its unfinished build's checkpoint (see :func:`train`).

    Returns:
        The training report plus ``calibration`` and ``model_version``.
    """
    config = config or FinanceTrainConfig()
    heads = list(datasets)
    rows: list[dict[str, str]] = []
    confidence: list[float] = []
    for head, data in datasets.items():
        rows += [
            {"text": t, **{h: (y if h == head else "") for h in heads}}
            for t, y in zip(data.texts, data.labels, strict=True)
        ]
        confidence += data.confidence or [1.0] * len(data.texts)
    transfer = _transfer_rows(config, rows, heads) if config.transfer else None
    if transfer is not None:
        rows += transfer[0]
        confidence += [1.0] * len(transfer[0])
    frame = pd.DataFrame(rows, columns=["text", *heads])
    if any(data.confidence is not None for data in datasets.values()):
        frame[CONFIDENCE_COLUMN] = confidence
    out_dir = Path(out_dir)
    teacher = _teacher_targets(config, rows, heads, out_dir) if config.teacher else None
    if teacher is not None and transfer is not None:
        teacher[1]["transfer"] = transfer[1]
    # Built aside and swapped in whole; a KB or any other directory that is no finance model is refused.
    # A build holding a checkpoint outlives a killed or failed run, so that ``resume`` can adopt it.
    with open_artifact(
        out_dir,
        KIND,
        legacy=(CLASSIFIER_KIND,),
        unhashed=RUN_STATE,
        embeds=(CLASSIFIER_KIND,),
        resumable=(CHECKPOINT_DIR, MEMBERS_DIR, VALIDATION_RUN_DIR, VALIDATION_SUMMARY),
        resume=resume,
    ) as build:
        data = _Rows(frame, rows, heads, teacher[0] if teacher else None)
        report = _train_into(
            build, data, datasets, config, label_map, resume, teacher[1] if teacher else None
        )
        report["output_dir"] = str(out_dir)
        write_json_atomic(build / REPORT_FILE, report)
    report.update(model_version=model_version(out_dir))
    return report


def _train_into(
    out_dir: Path,
    data: _Rows,
    datasets: Mapping[str, LabelledData],
    config: FinanceTrainConfig,
    label_map: str | Path | Mapping[Any, str] | None,
    resume: bool,
    teacher: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if config.ensemble_seeds or config.refit:
        report = _fit_ensemble(out_dir, data, config, resume)
    else:
        # nothing to continue (no checkpoint in the adopted build): train from the start
        report = _fit_one(out_dir, data, config, resume and (out_dir / CHECKPOINT_DIR).is_dir())
    meta = {
        "tasks": data.heads,
        "label_map": parse_label_map(label_map) if len(data.heads) == 1 else None,
        "data": {
            h: {
                "source": d.source,
                "rows": len(d),
                "labels": d.label_counts(),
                "duplicates_removed": d.duplicates_removed,
                "conflicts_removed": d.conflicts_removed,
            }
            for h, d in datasets.items()
        },
        "base_model": config.model,
    }
    if teacher is not None:
        report["teacher"] = meta["teacher"] = dict(teacher)
    write_json_atomic(out_dir / META_FILE, meta)
    return report


def _check_teacher(config: FinanceTrainConfig, out_dir: str | Path) -> Path:
    """``config.teacher`` as a path, if it is a trained model other than ``out_dir``.

    Raises:
        ValueError: It is the directory being trained into, or no trained finance model.
    """
    directory = Path(str(config.teacher))
    if directory.resolve() == Path(out_dir).resolve():
        raise ValueError(f"teacher {directory} is the directory being trained into; give the student another")
    if not is_model_dir(directory):
        raise ValueError(f"teacher {directory}: not a trained finance model directory")
    return directory


def _teacher_targets(
    config: FinanceTrainConfig, rows: Sequence[Mapping[str, str]], heads: Sequence[str], out_dir: Path
) -> tuple[dict[str, SoftTargets], dict[str, Any]]:
    """The teacher's probabilities for every training row (scored once, shared by ensemble members)
    and what the report records of it.

    Raises:
        ValueError: The teacher is the model being written, is no finance model, or lacks a head.
    """
    directory = _check_teacher(config, out_dir)
    teacher = load_model(directory)
    missing = [h for h in heads if h not in teacher.head_names]
    if missing:
        raise ValueError(f"teacher {directory} has no head {missing} (its heads: {teacher.head_names})")
    labels = {h: [r[h] or None for r in rows] for h in heads}
    targets = teacher_targets(teacher, [r["text"] for r in rows], labels, config.eval_batch_size, True)
    info = {
        "dir": str(directory),
        "model_version": model_version(directory),
        "distill_weight": config.distill_weight,
        "agreement_with_labels": {h: agreement(targets[h], labels[h]) for h in heads},
    }
    logger.info("Teacher scored the training rows", extra=info)
    return targets, info


def _transfer_rows(
    config: FinanceTrainConfig, labelled: Sequence[Mapping[str, str]], heads: Sequence[str]
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Rows of ``config.transfer``'s texts without labels (the teacher's probabilities train them),
    minus the texts the labelled rows already have, and what the report records of them.

    Raises:
        FileNotFoundError: No such file.
        DataError: The file is unreadable, lacks a text column, or has an empty text.
    """
    frame, column = read_texts(str(config.transfer))
    texts: dict[str, str] = {}  # repeats (whitespace aside) dropped, the first spelling kept
    for text in frame[column]:
        texts.setdefault(text_key(text), text)
    known = {text_key(r["text"]) for r in labelled}
    kept = [t for key, t in texts.items() if key not in known]
    info = {"source": str(config.transfer), "rows": len(kept), "already_labelled": len(texts) - len(kept)}
    logger.info("Transfer texts for the teacher to label", extra=info)
    return [{"text": t, **{h: "" for h in heads}} for t in kept], info


def _fit_one(
    out_dir: Path,
    data: _Rows,
    config: FinanceTrainConfig,
    resume: bool,
    temperatures: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Train one classifier into ``out_dir``; calibrate it on its validation split, or give it
    ``temperatures`` (fitted by an earlier run that had one)."""
    report = train_classifier(
        data.frame,
        out_dir,
        model=config.model,
        label_column=data.heads,
        config=config,
        resume_from=resume or None,
        confidence_column=CONFIDENCE_COLUMN if CONFIDENCE_COLUMN in data.frame.columns else None,
        soft_targets=data.soft,
    )
    # fp32: the model is saved again below, and a bf16 load (``auto`` on a CPU with fast bf16) would
    # write a full fine-tune's encoder back in bf16
    model = TextClassifier.from_pretrained(out_dir, precision="fp32")
    stats: dict[str, dict[str, Any]] = {}
    if temperatures is not None:
        model.temperatures.update({h: float(t) for h, t in temperatures.items()})
        stats = {h: {"temperature": float(t), "fitted_on": "validation run"} for h, t in temperatures.items()}
        model.save_pretrained(out_dir)
    elif config.calibrate:
        for head, indices in data.validation(config).items():
            texts, labels = data.texts_and_labels(indices, head)
            stats[head] = calibrate(model, texts, labels, head, config.eval_batch_size)
        model.save_pretrained(out_dir)
    save_calibration(out_dir, stats)
    report.update(calibration=stats, heads=model.head_labels)
    return report


def _fit_ensemble(out_dir: Path, data: _Rows, config: FinanceTrainConfig, resume: bool) -> dict[str, Any]:
    """Train the members of ``config.ensemble_seeds`` (or one model, refitted) into ``out_dir``.

    Every run holds out the same validation rows (the split seed is pinned to the configuration's),
    so members are comparable and the ensemble is scored on rows no member trained on. With
    ``refit`` a first run with that split chooses the epoch count and the temperatures, and the
    members then train on every row. A finished member (or validation run) is kept when a killed
    run is resumed; an unfinished one resumes from its checkpoint.
    """
    seeds = list(config.ensemble_seeds) or [config.seed]
    # each run is one model: the split seed pinned, the ensemble settings off
    pinned = {"split_seed": config.val_split_seed, "ensemble_seeds": (), "refit": False}
    member_fields: dict[str, Any] = dict(pinned)
    temperatures = None
    validation: dict[str, Any] | None = None
    wall = 0.0
    if config.refit:
        summary = out_dir / VALIDATION_SUMMARY
        run_dir = out_dir / VALIDATION_RUN_DIR
        if resume and summary.is_file():
            validation = json.loads(summary.read_text(encoding="utf-8"))
            shutil.rmtree(run_dir, ignore_errors=True)  # a kill may have cut its removal short
        else:
            logger.info("Refit: validation run first", extra={"seed": seeds[0], "dir": str(run_dir)})
            first = _fit_one(
                run_dir,
                data,
                with_overrides(config, {**pinned, "seed": seeds[0]}),
                resume and (run_dir / CHECKPOINT_DIR).is_dir(),
            )
            validation = {
                k: first.get(k)
                for k in ("metric", "best_metric", "best_epoch", "epochs_run", "val_size", "wall_time_s")
            }
            validation.update(seed=seeds[0], calibration=first["calibration"], history=first.get("history"))
            write_json_atomic(summary, validation)
            # its weights are not part of the model: only the epoch count and temperatures are
            shutil.rmtree(run_dir, ignore_errors=True)
        wall += float(validation.get("wall_time_s") or 0.0)
        member_fields.update(val_fraction=0.0, epochs=int(validation["best_epoch"] or config.epochs))
        temperatures = {h: s["temperature"] for h, s in validation["calibration"].items()}
    names, member_reports = [], []
    for seed in seeds:
        name = f"{MEMBERS_DIR}/s{seed}"
        member_dir = out_dir / name
        done = _finished_member(member_dir) if resume else None
        if done is not None:
            report = done
            logger.info("Ensemble member already trained", extra={"member": name})
        else:
            logger.info("Training ensemble member", extra={"member": name, "of": len(seeds)})
            report = _fit_one(
                member_dir,
                data,
                with_overrides(config, {**member_fields, "seed": seed}),
                resume and (member_dir / CHECKPOINT_DIR).is_dir(),
                temperatures,
            )
            write_json_atomic(member_dir / REPORT_FILE, report)
        wall += float(report.get("wall_time_s") or 0.0)
        names.append(name)
        member_reports.append(report)
    members = [
        {
            "seed": seed,
            "path": name,
            **{k: r.get(k) for k in ("best_metric", "best_epoch", "epochs_run", "wall_time_s")},
            "calibration": r.get("calibration"),
        }
        for seed, name, r in zip(seeds, names, member_reports, strict=True)
    ]
    info = {"seeds": seeds, "refit": config.refit, "epochs": member_fields.get("epochs", config.epochs)}
    write_ensemble(out_dir, names, info)
    report = {
        "ensemble": {**info, "members": members},
        # a refit's members trained without a validation split: the metric is the validation run's
        "metric": validation["metric"] if validation else member_reports[0].get("metric"),
        "heads": member_reports[0].get("heads"),
        "wall_time_s": round(wall, 1),
        "train_size": member_reports[0].get("train_size"),
    }
    if validation is not None:  # refit: the scores of the held-out run
        report.update(
            best_metric=validation["best_metric"],
            best_epoch=validation["best_epoch"],
            validation_run=validation,
            calibration=validation["calibration"],
        )
    else:  # the members' average on the validation rows they all held out
        scores = _ensemble_validation(out_dir, data, config)
        report.update(best_metric=scores["metric"], validation=scores, calibration={})
    return report


def _finished_member(member_dir: Path) -> dict[str, Any] | None:
    """The report of a member that was trained and calibrated, else ``None``.

    The member's ``report.json`` is rewritten with its ``calibration`` as the last step of its
    training, so a member killed before it was calibrated (or given its temperatures) is trained again.
    """
    path = member_dir / REPORT_FILE
    if not (member_dir / ARTIFACT_FILE).is_file() or not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return report if isinstance(report, dict) and "calibration" in report else None


def _ensemble_validation(out_dir: Path, data: _Rows, config: FinanceTrainConfig) -> dict[str, Any]:
    """The ensemble's scores on the shared validation rows (``metric``: mean over heads)."""
    model = ClassifierEnsemble.from_pretrained(out_dir)
    scores: dict[str, Any] = {}
    for head, indices in data.validation(config).items():
        if head in config.auxiliary_heads:
            continue
        texts, labels = data.texts_and_labels(indices, head)
        report = classification_report(
            labels, model.predict(texts, head, config.eval_batch_size), labels=model.labels(head)
        )
        scores[head] = {k: round(float(report[k]), 4) for k in ("accuracy", "macro_f1", "weighted_f1")}
        scores[head]["n"] = len(indices)
    values = [s[config.metric] for s in scores.values()]
    scores["metric"] = round(float(np.mean(values)), 4) if values else None
    return scores


def load_model(directory: str | Path, precision: InferencePrecision = "auto") -> Classifier:
    """Load a trained finance classifier (LoRA merged, eval mode), or its ensemble.

    Args:
        directory: The model directory (one classifier, or an ensemble trained with
            ``ensemble_seeds``: the same scoring methods, members' probabilities averaged).
        precision: ``auto`` (bf16 on a CPU with AVX512-BF16/AMX, else fp32), ``fp32``, ``bf16`` or
            ``int8`` (see :meth:`core.classification.TextClassifier.from_pretrained`).

    Raises:
        FileNotFoundError, ValueError: The directory is missing, incomplete or corrupt (the core
            loader checks the sha256 of every weight file).
    """
    return load_classifier(directory, precision=precision)


def is_model_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds a saved classifier or classifier ensemble (not whether it loads)."""
    directory = Path(directory)
    return (directory / CONFIG_FILE).is_file() or is_ensemble(directory)


def model_version(directory: str | Path) -> str:
    """``"<dir name>-<12 hex>"``: the hash covers ``config.json`` (``ensemble.json`` for an ensemble,
    which holds the hash of each member's ``config.json``), which holds the sha256 of every weight
    file and the temperatures, so retraining or recalibrating gives a new version."""
    directory = Path(directory)
    manifest = directory / (ENSEMBLE_FILE if is_ensemble(directory) else CONFIG_FILE)
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:12]
    return f"{directory.resolve().name}-{digest}"


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The ``finance.json`` of a model directory (``{}`` for a plain core classifier)."""
    path = Path(directory) / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def head_probabilities(
    model: Classifier, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
) -> dict[str, np.ndarray]:
    """Calibrated probabilities of every head from one encoder pass: ``{head: (n, n_labels)}``
    (an ensemble: one pass per member, probabilities averaged)."""
    if not texts:
        return {h: np.zeros((0, len(model.labels(h))), dtype=np.float32) for h in model.head_names}
    return model.head_probabilities(list(texts), batch_size, show_progress_bar)


def evaluate(
    model: Classifier | str | Path,
    data: str | Path | LabelledData,
    *,
    head: str | None = None,
    label_map: str | Path | Mapping[Any, str] | None = None,
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class scores and confusion matrix of ``model`` on ``data``.

    Args:
        model: A classifier or its directory (a directory's ``finance.json`` supplies the label map).
        data: Labelled file or data.
        head: The head to evaluate (default: the only one, else ``sentiment``).
        label_map: Numeric label map (default: the one the model was trained with).

    Returns:
        ``{"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion", "n"}``.

    Raises:
        DataError: A label in ``data`` that the model does not know (names file and row).
    """
    if isinstance(model, (str, Path)):
        label_map = label_map if label_map is not None else read_meta(model).get("label_map")
        if not isinstance(data, LabelledData):  # bad input fails before the model loads
            data = load_labelled(data, label_map=label_map)
        model = load_model(model)
    name = head or (model.head_names[0] if len(model.head_names) == 1 else "sentiment")
    labels = model.labels(name)
    if not isinstance(data, LabelledData):
        data = load_labelled(data, label_map=label_map, labels=labels)
    else:
        bad = next((i for i, y in enumerate(data.labels) if y not in labels), None)
        if bad is not None:
            row = data.rows[bad] if data.rows else bad + 1
            raise DataError(
                data.source, f"label {data.labels[bad]!r} is not one of {labels}", row=row, field="label"
            )
    probs = head_probabilities(model, data.texts, batch_size, show_progress_bar)[name]
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    report = classification_report(data.labels, predicted, labels=labels)
    report["n"] = len(data)
    return report
