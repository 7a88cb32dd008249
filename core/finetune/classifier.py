"""Fine-tune a :class:`~core.classification.TextClassifier`: LoRA on the encoder plus trainable heads.

Example:
    >>> report = train_classifier("reviews.csv", out_dir="runs/reviews", model="minilm-l6", epochs=3)
    >>> TextClassifier.from_pretrained("runs/reviews").predict(["The battery died after two days"])
    ['negative']
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.classification import FORMAT_VERSION, KIND, TextClassifier
from core.config import to_dict, write_json_atomic
from core.finetune.data import LabelledTexts, read_labelled_texts, require_validation, split_indices
from core.finetune.distillation import SoftTargets
from core.finetune.loop import (
    CHECKPOINT_DIR,
    REPORT_FILE,
    TrainingTask,
    fit,
    open_run_dir,
    pad,
)
from core.finetune.settings import ClassifierTrainConfig, with_overrides
from core.metrics import accuracy, f1
from core.models import DEFAULT_ENCODER
from core.seed import set_seed

logger = logging.getLogger(__name__)

IGNORE = -100


def split_rows(
    labels: Mapping[str, Sequence[str | None]],
    val_fraction: float,
    seed: int,
    auxiliary: Sequence[str] = (),
) -> tuple[list[int], list[int]]:
    """Training and validation rows of a (multi-head) labelled set, stratified by a head's label.

    Only rows labelled for a validated (non-auxiliary) head are split, in their order, stratified by
    the first validated head; the rest (rows of auxiliary heads, and distillation's transfer rows
    without any label) are training rows. When every row has a validated label this is
    :func:`split_indices` over every row, stratified by the first head. The validation rows of ``n``
    validated rows followed by other rows are therefore those of the validated rows alone.

    Args:
        labels: ``{head: label or None per row}`` (heads in column order).
        val_fraction: Share of the split rows held out.
        seed: Seed of the split.
        auxiliary: Heads whose rows are never held out.

    Returns:
        ``(train, val)``, sorted row indices.

    Raises:
        ValueError: Every head is auxiliary.
    """
    heads = list(labels)
    validated = [h for h in heads if h not in set(auxiliary)]
    if not validated:
        raise ValueError(f"auxiliary_heads {list(auxiliary)} leave no head to validate (heads: {heads})")
    n = len(labels[heads[0]])
    primary = [i for i in range(n) if any(labels[h][i] is not None for h in validated)]
    if len(primary) == n:
        return split_indices(n, val_fraction, seed, strata=labels[validated[0]])
    first = labels[validated[0]]
    _, val_positions = split_indices(len(primary), val_fraction, seed, strata=[first[i] for i in primary])
    val = [primary[j] for j in val_positions]
    held = set(val)
    return [i for i in range(n) if i not in held], val


_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_lr_groups(
    named_parameters: Sequence[tuple[str, torch.nn.Parameter]], lr: float, decay: float
) -> list[dict[str, Any]]:
    """Optimizer groups of an encoder's trainable parameters with layer-wise learning-rate decay.

    A parameter of block ``i`` of ``L`` (its name holds ``layer.i.``, as in BERT, MPNet and MiniLM)
    trains at ``lr * decay ** (L - 1 - i)``, one of the embeddings (``embeddings`` in its name) at
    ``lr * decay ** L``, any other (a shared relative-position bias, a pooler) at ``lr``. With
    ``decay == 1`` this is one group at ``lr``.

    Args:
        named_parameters: ``(name, parameter)`` pairs; frozen parameters are skipped.
        lr: Learning rate of the top block.
        decay: Factor per block, in ``(0, 1]``.

    Returns:
        Groups ``{"params": [...], "lr": ...}`` from the bottom up, empty ones left out.
    """
    trainable = [(n, p) for n, p in named_parameters if p.requires_grad]
    blocks = [int(m.group(1)) for n, _ in trainable if (m := _LAYER.search(n))]
    depth = max(blocks) + 1 if blocks else 0
    by_lr: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in trainable:
        match = _LAYER.search(name)
        # a block by its index; the embeddings below block 0; anything else (shared) at the top rate
        power = depth - 1 - int(match.group(1)) if match else (depth if "embeddings" in name else 0)
        by_lr.setdefault(lr * decay**power, []).append(param)
    return [{"params": params, "lr": rate} for rate, params in sorted(by_lr.items())]


def _targets(data: LabelledTexts, classifier: TextClassifier) -> dict[str, np.ndarray]:
    targets = {}
    for head, values in data.labels.items():
        if head not in classifier.head_labels:
            raise ValueError(
                f"{data.source}: label column '{head}' is not a head of the classifier "
                f"{classifier.head_names}."
            )
        index = {label: i for i, label in enumerate(classifier.labels(head))}
        unknown = sorted({v for v in values if v is not None} - set(index))
        if unknown:
            raise ValueError(
                f"{data.source}: labels {unknown[:5]} in column '{head}' are not labels of the head: "
                f"{list(index)}."
            )
        targets[head] = np.array([IGNORE if v is None else index[v] for v in values], dtype=np.int64)
    return targets


def _loss(
    logits: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    label_smoothing: float = 0.0,
    confidence: torch.Tensor | None = None,
    soft: Mapping[str, torch.Tensor] | None = None,
    distill_weight: float = 0.0,
) -> torch.Tensor:
    # Sum over the heads that have at least one target in this batch (cross-entropy of none is NaN).
    losses = []
    for head, y in labels.items():
        labelled = y != IGNORE
        taught_rows = torch.zeros_like(labelled)
        if soft is not None and head in soft:
            taught_rows = ~torch.isnan(soft[head]).any(dim=1)
        keep = labelled | taught_rows
        if not bool(keep.any()):
            continue
        scores = logits[head][keep].float()
        labelled, taught_rows = labelled[keep], taught_rows[keep]
        rows = torch.zeros(scores.shape[0], device=scores.device)
        if bool(labelled.any()):
            target = y[keep][labelled]
            if confidence is not None:
                # Soft target: the row's confidence on its label, the rest spread evenly over the others.
                sure = confidence[keep][labelled].float()[:, None]
                onehot = torch.nn.functional.one_hot(target, scores.shape[1]).float()
                target = onehot * sure + (1 - onehot) * (1 - sure) / (scores.shape[1] - 1)
            rows[labelled] = torch.nn.functional.cross_entropy(
                scores[labelled], target, label_smoothing=label_smoothing, reduction="none"
            )
        if bool(taught_rows.any()):
            # Distillation: a row with a teacher target mixes it with its label target; a transfer
            # row (no label) learns from the teacher alone.
            teacher = torch.nan_to_num(soft[head][keep].float())  # type: ignore[index]
            taught = -(teacher * torch.log_softmax(scores, dim=1)).sum(dim=1)
            weight = torch.where(labelled, distill_weight, 1.0)
            rows = torch.where(taught_rows, weight * taught + (1 - weight) * rows, rows)
        losses.append(rows.mean())
    return torch.stack(losses).sum()


def _check_untargeted(data: LabelledTexts, soft: Mapping[str, np.ndarray]) -> None:
    """Every row needs a label or a teacher's probabilities (a transfer row) for some head."""
    for row in range(len(data.texts)):
        if any(data.labels[h][row] is not None for h in data.labels):
            continue
        if not any(not np.isnan(p[row]).any() for p in soft.values()):
            raise ValueError(
                f"{data.source}, row {row + 1}: no label in any of the columns {list(data.labels)} "
                "and no teacher probabilities to train it on."
            )


def _check_confidence(
    data: LabelledTexts, targets: Mapping[str, np.ndarray], sizes: Mapping[str, int]
) -> None:
    """A row's confidence must keep its label the most likely one: at least 1/k for a head of k labels."""
    if data.confidence is None:
        return
    for head, target in targets.items():
        floor = 1 / sizes[head]
        for row, (label, sure) in enumerate(zip(target, data.confidence, strict=True), start=1):
            if label != IGNORE and sure < floor - 1e-9:
                raise ValueError(
                    f"{data.source}, row {row}: confidence {sure:g} is below 1/{sizes[head]} for head "
                    f"'{head}' ({sizes[head]} labels), so its label would not be the most likely one."
                )


def classifier_task(
    classifier: TextClassifier,
    data: LabelledTexts,
    config: ClassifierTrainConfig,
    soft_targets: Mapping[str, SoftTargets] | None = None,
) -> TrainingTask:
    """Build the :class:`~core.finetune.loop.TrainingTask` for ``classifier`` on ``data``.

    The split is stratified by the first head's label (see :func:`split_rows` for auxiliary heads);
    texts are tokenised once, without padding. ``soft_targets`` (a teacher's probabilities, see
    :mod:`core.finetune.distillation`) join the labels in the training loss with weight
    ``config.distill_weight``; validation keeps the labels alone.
    """
    targets = _targets(data, classifier)
    soft = _soft_arrays(soft_targets, classifier, len(data.texts), str(data.source))
    _check_untargeted(data, soft)
    _check_confidence(data, targets, {h: len(classifier.labels(h)) for h in targets})
    confidence = None if data.confidence is None else np.asarray(data.confidence, dtype=np.float32)
    unknown = sorted(set(config.auxiliary_heads) - set(data.labels))
    if unknown:
        raise ValueError(
            f"{data.source}: auxiliary_heads {unknown} are not label columns {list(data.labels)}"
        )
    train, val = split_rows(data.labels, config.val_fraction, config.val_split_seed, config.auxiliary_heads)
    validated = {h: t for h, t in targets.items() if h not in config.auxiliary_heads}
    require_validation(val, len(data.texts), config.val_fraction, str(data.source))
    ids = classifier.tokenizer(data.texts, truncation=True, max_length=classifier.max_length)["input_ids"]
    pad_id = classifier.tokenizer.pad_token_id or 0

    def collate(rows: Sequence[int]) -> dict[str, Any]:
        seqs = [ids[i] for i in rows]
        input_ids = pad(seqs, pad_id)
        lengths = torch.tensor([len(s) for s in seqs])
        mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
        labels = {h: torch.from_numpy(t[list(rows)]) for h, t in targets.items()}
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if confidence is not None:
            batch["confidence"] = torch.from_numpy(confidence[list(rows)])
        if soft:
            batch["soft"] = {h: torch.from_numpy(p[list(rows)]) for h, p in soft.items()}
        return batch

    def loss(batch: dict[str, Any]) -> torch.Tensor:
        logits = classifier(batch["input_ids"], batch["attention_mask"])
        return _loss(
            logits,
            batch["labels"],
            config.label_smoothing,
            batch.get("confidence"),
            batch.get("soft"),
            config.distill_weight,
        )

    def evaluate() -> dict[str, float]:
        device = classifier.device
        order = sorted(val, key=lambda i: len(ids[i]))
        chunks = [order[s : s + config.eval_batch_size] for s in range(0, len(order), config.eval_batch_size)]
        logits: dict[str, list[torch.Tensor]] = {h: [] for h in validated}
        for chunk in chunks:
            batch = collate(chunk)
            out = classifier(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            for h in validated:
                logits[h].append(out[h].float().cpu())
        return _val_metrics(
            {h: torch.cat(v) for h, v in logits.items()}, {h: t[order] for h, t in validated.items()}
        )

    encoder_groups = layer_lr_groups(
        list(classifier.encoder.named_parameters()), config.lr, config.layer_lr_decay
    )
    groups = [*encoder_groups, {"params": list(classifier.heads.parameters()), "lr": config.head_lr}]
    logger.info("Classifier data", extra={"source": data.source, "train": len(train), "val": len(val)})
    return TrainingTask(
        model=classifier,
        lengths=[len(ids[i]) for i in train],
        # The loop indexes the training split; collate() takes positions in the whole data set.
        collate=lambda rows: collate([train[r] for r in rows]),
        loss=loss,
        evaluate=evaluate if val else None,
        metric=config.metric,
        greater_is_better=True,
        val_size=len(val),
        param_groups=groups,
    )


def _soft_arrays(
    soft_targets: Mapping[str, SoftTargets] | None, classifier: TextClassifier, rows: int, source: str
) -> dict[str, np.ndarray]:
    """Each soft target in the column order of the classifier's head, checked against the data."""
    soft: dict[str, np.ndarray] = {}
    for head, targets in (soft_targets or {}).items():
        if head not in classifier.head_labels:
            raise ValueError(
                f"{source}: soft targets for '{head}', which is not a head {classifier.head_names}"
            )
        if targets.probs.shape[0] != rows:
            raise ValueError(f"{source}: {targets.probs.shape[0]} soft-target rows for {rows} data rows")
        soft[head] = targets.aligned(classifier.labels(head), f"the teacher's '{head}' probabilities")
    return soft


def _val_metrics(logits: dict[str, torch.Tensor], targets: dict[str, np.ndarray]) -> dict[str, float]:
    per_head: dict[str, dict[str, float]] = {}
    for h, scores in logits.items():
        keep = targets[h] != IGNORE
        if not keep.any():
            continue
        y = torch.from_numpy(targets[h][keep])
        pred = scores[torch.from_numpy(keep)].argmax(1)
        per_head[h] = {
            "loss": float(torch.nn.functional.cross_entropy(scores[torch.from_numpy(keep)], y)),
            "macro_f1": f1(y.tolist(), pred.tolist(), average="macro"),
            "accuracy": accuracy(y.tolist(), pred.tolist()),
        }
    result = {k: float(np.mean([m[k] for m in per_head.values()])) for k in ("loss", "macro_f1", "accuracy")}
    if len(per_head) > 1:
        result.update({f"{h}/{k}": v for h, m in per_head.items() for k, v in m.items()})
    return result


def _best_metrics(report: dict[str, Any]) -> dict[str, Any]:
    best = next((row for row in report["history"] if row["epoch"] == report["best_epoch"]), {})
    keys = ("metric", "best_metric", "best_epoch", "epochs_run", "train_size", "val_size", "seed")
    validation = {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")}
    return {**{k: report[k] for k in keys}, "train_loss": best.get("train_loss"), "validation": validation}


def fit_classifier(
    classifier: TextClassifier,
    data: Any,
    run_dir: str | Path,
    config: ClassifierTrainConfig | None = None,
    text_column: str = "text",
    label_columns: Sequence[str] | None = None,
    resume_from: str | Path | bool | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    soft_targets: Mapping[str, SoftTargets] | None = None,
) -> dict[str, Any]:
    """Train an existing classifier in place (its best epoch's weights stay in it) and return the report.

    Args:
        classifier: The classifier; LoRA weights (if any) and heads are trained.
        data: CSV/TSV/JSONL path, DataFrame, or ``(text, label, ...)`` tuples (see
            :func:`~core.finetune.data.read_labelled_texts`).
        run_dir: Run directory for the checkpoint, TensorBoard events and ``report.json``.
        config: Training settings; ``pooling``, ``dropout``, ``max_length`` and ``use_lora`` are fixed
            by ``classifier`` already and are not used here.
        text_column: Column of the texts.
        label_columns: One label column per head, named like the heads; default: the head names.
        resume_from: Resume checkpoint (see :func:`~core.finetune.loop.fit`).
        on_epoch_end: Called with each epoch's metrics.
        soft_targets: A teacher's probabilities per head, rows as in ``data`` (distillation; see
            :func:`core.finetune.distillation.teacher_targets`).

    Returns:
        The run report; ``classifier.metrics`` holds the best epoch's validation metrics.
    """
    config = config or ClassifierTrainConfig()
    labelled = (
        data
        if isinstance(data, LabelledTexts)
        else read_labelled_texts(
            data,
            text_column,
            label_columns or classifier.head_names,
            allow_unlabelled=soft_targets is not None,
        )
    )
    task = classifier_task(classifier, labelled, config, soft_targets)
    report = fit(task, config, run_dir, resume_from=resume_from, on_epoch_end=on_epoch_end)
    if soft_targets:
        report["distillation"] = {"heads": sorted(soft_targets), "distill_weight": config.distill_weight}
    classifier.metrics = _best_metrics(report)
    classifier.train_config = to_dict(config)
    classifier.seed = config.seed
    return report


def train_classifier(
    data: Any,
    out_dir: str | Path,
    model: str = DEFAULT_ENCODER,
    text_column: str = "text",
    label_column: str | Sequence[str] = "label",
    config: ClassifierTrainConfig | None = None,
    resume_from: str | Path | bool | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    confidence_column: str | None = None,
    soft_targets: Mapping[str, SoftTargets] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Fine-tune a LoRA text classifier on labelled texts and save it to ``out_dir``.

    Args:
        data: A CSV/TSV/JSONL/JSON file with ``text`` and ``label`` columns, a pandas DataFrame, or a
            list of ``(text, label)`` tuples.
        out_dir: Where the classifier is saved (load it with ``TextClassifier.from_pretrained``); the
            run's checkpoint, TensorBoard events and ``report.json`` go there too. The run builds in a
            temporary sibling that replaces ``out_dir`` at the end (see
            :func:`core.io.artifacts.open_artifact`); a killed run resumes there with ``resume_from=True``.
        model: Encoder spec, e.g. ``"minilm-l6"`` or a local Hugging Face directory.
        text_column: Column of the texts.
        label_column: Column of the labels, or several columns for a multi-head classifier (one head
            per column, named like it; rows may leave some of them empty).
        config: Training settings (default :class:`ClassifierTrainConfig`).
        resume_from: Continue an interrupted run: a checkpoint directory, or ``True`` for ``out_dir``'s.
        on_epoch_end: Called with each epoch's metrics.
        confidence_column: Optional column of each row's label confidence in (0, 1] (at least 1/k for
            k labels), e.g. annotator agreement: the training target puts that probability on the
            label and spreads the rest evenly over the others (validation keeps the hard labels).
        soft_targets: A teacher's probabilities per head, one row per data row (distillation: see
            :mod:`core.finetune.distillation`), mixed into the loss with ``config.distill_weight``.
        **overrides: Replace fields of ``config``, e.g. ``epochs=5, lr=2e-4``.

    Returns:
        The run report (``best_metric``, ``best_epoch``, ``wall_time_s``, ``samples_per_s``, ...).

    Raises:
        FileNotFoundError: if ``data`` is a path that does not exist.
        ValueError: naming the file, row and column of bad data, or an unknown config field.
        core.io.artifacts.ArtifactError: ``out_dir`` holds something else (nothing is written).
    """
    config = with_overrides(config or ClassifierTrainConfig(), overrides)
    columns = [label_column] if isinstance(label_column, str) else list(label_column)
    # rows without a label are distillation's transfer rows: the soft targets must cover them
    labelled = read_labelled_texts(
        data, text_column, columns, confidence_column, allow_unlabelled=soft_targets is not None
    )
    set_seed(config.seed)  # head and LoRA initialisation
    classifier = TextClassifier(
        model,
        heads={column: labelled.label_set(column) for column in columns},
        pooling=config.pooling,
        max_length=config.max_length,
        lora=config.lora if config.use_lora and not config.full_finetune else None,
        dropout=config.dropout,
        full_finetune=config.full_finetune,
    )
    with open_run_dir(out_dir, KIND, FORMAT_VERSION, resume=bool(resume_from)) as run_dir:
        report = fit_classifier(
            classifier,
            labelled,
            run_dir,
            config,
            resume_from=resume_from,
            on_epoch_end=on_epoch_end,
            soft_targets=soft_targets,
        )
        classifier.save_pretrained(run_dir)
        if config.full_finetune:
            # The resume state of a finished full fine-tune holds every encoder weight three times
            # (weights, best weights, Adam moments: ~350 MB for MiniLM); nothing is left to resume.
            shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
            logger.info("Removed a full fine-tune's resume checkpoint", extra={"dir": str(out_dir)})
        report.update(base_model=str(model), heads=classifier.head_labels, output_dir=str(out_dir))
        write_json_atomic(run_dir / REPORT_FILE, report)
    return report
