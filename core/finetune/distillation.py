"""Knowledge distillation: a trained teacher's probabilities as soft training targets of a student.

A large or ensembled classifier (the teacher) labels the training texts with its calibrated
probabilities; a smaller classifier (the student) then trains towards those probabilities as well as
towards the labels (``ClassifierTrainConfig.distill_weight`` mixes the two; Hinton et al. 2015). The
student scores at its own speed and keeps much of what the teacher learnt, such as which sentences
are borderline. Rows without any label (a *transfer set*: unlabelled in-domain text) train on the
teacher's probabilities alone and are never held out for validation.

Example:
    >>> teacher = load_classifier("runs/accurate")
    >>> targets = teacher_targets(teacher, data.texts, data.labels)
    >>> train_classifier(data, "runs/student", model="minilm-l6", soft_targets=targets)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.classification import HeadPredictions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoftTargets:
    """One head's soft targets: a probability row per training row (``NaN`` rows: no target)."""

    labels: tuple[str, ...]
    probs: np.ndarray

    def __post_init__(self) -> None:
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.labels):
            raise ValueError(
                f"soft targets need one column per label ({len(self.labels)}), got shape {self.probs.shape}"
            )

    def aligned(self, labels: Sequence[str], what: str = "soft targets") -> np.ndarray:
        """The probabilities in the column order of ``labels`` (a student head's), as float32.

        Labels the student does not have are dropped and each row renormalised over the rest.

        Raises:
            ValueError: A label of ``labels`` that the targets do not cover.
        """
        index = {label: i for i, label in enumerate(self.labels)}
        missing = [label for label in labels if label not in index]
        if missing:
            raise ValueError(
                f"{what} have no probability for labels {missing} (they cover {list(self.labels)})"
            )
        probs = self.probs[:, [index[label] for label in labels]].astype(np.float32)
        total = probs.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, probs / total, np.nan).astype(np.float32)


def teacher_targets(
    teacher: HeadPredictions,
    texts: Sequence[str],
    labels: Mapping[str, Sequence[str | None]],
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> dict[str, SoftTargets]:
    """The teacher's calibrated probabilities for the rows of each head it shares with the data.

    Args:
        teacher: A trained classifier or ensemble.
        texts: Every training row's text.
        labels: ``{head: label or None per row}``; a row is scored for a head where it has a label
            for it, and a transfer row (no label for any head) for every head; the others get ``NaN``,
            i.e. no soft target.
        batch_size: Texts per teacher forward pass.
        show_progress_bar: Show a progress bar while the teacher scores.

    Returns:
        ``{head: SoftTargets}`` for the heads of ``labels`` that the teacher has.

    Raises:
        ValueError: No head of ``labels`` is a head of the teacher, or the data has a label the
            teacher's head lacks (the teacher could give it no probability).
    """
    heads = [h for h in labels if h in teacher.head_names]
    if not heads:
        raise ValueError(
            f"the teacher has none of the heads {list(labels)} (its heads: {teacher.head_names})"
        )
    for head in heads:
        unknown = sorted({y for y in labels[head] if y is not None} - set(teacher.labels(head)))
        if unknown:
            raise ValueError(
                f"the teacher does not know the {head} labels {unknown} (its labels: {teacher.labels(head)})"
            )
    transfer = {i for i in range(len(texts)) if all(labels[h][i] is None for h in labels)}
    rows = sorted(transfer | {i for h in heads for i, y in enumerate(labels[h]) if y is not None})
    logger.info(
        "Teacher scores the training rows",
        extra={"rows": len(rows), "transfer_rows": len(transfer), "heads": heads},
    )
    scored = [texts[i] for i in rows]
    probs = teacher.head_probabilities(scored, batch_size, show_progress_bar) if rows else {}
    out: dict[str, SoftTargets] = {}
    for head in heads:
        full = np.full((len(texts), len(teacher.labels(head))), np.nan, dtype=np.float32)
        if rows:
            full[rows] = probs[head]
        other_heads = [i for i, y in enumerate(labels[head]) if y is None and i not in transfer]
        full[other_heads] = np.nan
        out[head] = SoftTargets(tuple(teacher.labels(head)), full)
    return out


def agreement(targets: SoftTargets, labels: Sequence[str | None]) -> float | None:
    """Share of the labelled rows whose most likely teacher label is their label (``None``: no rows)."""
    keep = [i for i, y in enumerate(labels) if y is not None and not np.isnan(targets.probs[i]).any()]
    if not keep:
        return None
    best = targets.probs[keep].argmax(axis=1)
    return float(np.mean([targets.labels[b] == labels[i] for b, i in zip(best, keep, strict=True)]))


__all__ = ["SoftTargets", "agreement", "teacher_targets"]
