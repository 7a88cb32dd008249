"""Contrastive training of a projection head over frozen text embeddings, as a task of the shared loop.

The cheap way to let behaviour shape a text encoder (the adapter-over-frozen-encoder recipe of
text-based recommenders, e.g. UniSRec, Hou et al., KDD 2022): the transformer stays frozen and its
item vectors are computed once; a residual linear map ``f(x) = x + A x + b`` (``A`` and ``b`` start
at zero, so training starts from the frozen encoder) is trained so that a user's recent history
lands near the next item. One step costs a few small matrix products instead of a transformer
forward and backward pass, so every pair and many epochs fit where LoRA fine-tuning gets a few
dozen steps.

The loss is the one of :mod:`core.finetune.contrastive` (:func:`~core.finetune.contrastive.info_nce`:
in-batch negatives, mined hard negatives as extra columns, ``log Q`` popularity correction, duplicates
masked); the query is the L2-normalised mean of the projected, normalised vectors of the history
items, which is how a text scorer builds a user vector from item vectors. :func:`fit` gives it
early stopping on validation MRR (each held-out query's positive ranked among every held-out positive
and hard negative), the best epoch's weights, seeding and a report.

The head is saved as ``projection.safetensors`` (``weight`` = ``I + A``, ``bias``) plus metadata;
:class:`ProjectedEmbedder` applies it after any encoder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from core.finetune.contrastive import ContrastiveTrainConfig, batch_columns, info_nce
from core.finetune.data import split_indices
from core.finetune.loop import TrainingTask, fit
from core.io.artifacts import sha256_file
from core.seed import set_seed

logger = logging.getLogger(__name__)

PROJECTION_FILE = "projection.safetensors"


class ResidualProjection(torch.nn.Module):
    """``f(x) = x + x A^T + b`` with ``A`` and ``b`` initialised at zero (the identity map).

    Args:
        dim: Width of the vectors.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.delta = torch.nn.Linear(dim, dim)
        torch.nn.init.zeros_(self.delta.weight)
        torch.nn.init.zeros_(self.delta.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projected, L2-normalised vectors."""
        return torch.nn.functional.normalize(x + self.delta(x), dim=-1)

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(weight, bias)`` of the whole map (``weight = I + A``), float32."""
        a = self.delta.weight.detach().cpu().numpy().astype(np.float32)
        bias = self.delta.bias.detach().cpu().numpy().astype(np.float32)
        return np.eye(a.shape[0], dtype=np.float32) + a, bias


@dataclass
class HistoryPairs:
    """(history -> next item) pairs as item indices into a matrix of frozen vectors.

    Attributes:
        histories: ``(n_pairs, h)`` most recent history items of each pair, padded with -1.
        items: ``(n_pairs,)`` positive item of each pair.
        negatives: ``(n_pairs, k)`` hard negatives (-1: none), or ``None``.
        item_log_q: Log sampling probability of every item (popularity correction), or ``None``.
    """

    histories: np.ndarray
    items: np.ndarray
    negatives: np.ndarray | None = None
    item_log_q: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)


def _queries(head: ResidualProjection, vectors: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
    mask = (histories >= 0).float()
    projected = head(vectors[histories.clamp(min=0)]) * mask[..., None]
    return torch.nn.functional.normalize(projected.sum(dim=1), dim=-1)


def projection_task(
    head: ResidualProjection, vectors: np.ndarray, pairs: HistoryPairs, config: ContrastiveTrainConfig
) -> TrainingTask:
    """The :class:`~core.finetune.loop.TrainingTask` of training ``head`` on ``pairs``.

    Args:
        head: The projection to train.
        vectors: ``(n_items, dim)`` frozen item vectors (L2-normalised).
        pairs: Pairs over those items.
        config: Batch size, temperature, popularity correction, validation share, seed.
    """
    train, val = split_indices(len(pairs), config.val_fraction, config.val_split_seed)
    table = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    histories = torch.as_tensor(pairs.histories, dtype=torch.long)
    log_q = torch.as_tensor(pairs.item_log_q, dtype=torch.float32) if pairs.item_log_q is not None else None
    use_log_q = config.logq_correction and log_q is not None

    def collate(rows: Sequence[int]) -> dict[str, Any]:
        rows = [train[r] for r in rows]
        positives, columns, correction = batch_columns(
            pairs.items, pairs.negatives, rows, log_q if use_log_q else None
        )
        return {
            "histories": histories[rows],
            "positives": torch.as_tensor(positives),
            "columns": torch.as_tensor(columns),
            "log_q": correction,
        }

    def loss(batch: dict[str, Any]) -> torch.Tensor:
        device = batch["histories"].device
        on_device = table.to(device)
        q = _queries(head, on_device, batch["histories"])
        c = head(on_device[batch["columns"]])
        log_q_batch = batch["log_q"] if use_log_q else None
        return info_nce(q, c, batch["positives"], batch["columns"], config.temperature, log_q_batch)

    def evaluate() -> dict[str, float]:
        device = next(head.parameters()).device
        on_device = table.to(device)
        columns = pairs.items[val]
        if pairs.negatives is not None:
            columns = np.concatenate([columns, pairs.negatives[val].ravel()])
        columns = np.unique(columns[columns >= 0])
        q = _queries(head, on_device, histories[val].to(device))
        c = head(on_device[torch.as_tensor(columns, device=device)])
        scores = q @ c.T
        target = torch.as_tensor(np.searchsorted(columns, pairs.items[val]), device=device)
        own = scores[torch.arange(len(val), device=device), target]
        rank = 1 + (scores > own[:, None]).sum(dim=1)
        val_loss = torch.nn.functional.cross_entropy(scores / config.temperature, target)
        return {"mrr": float((1.0 / rank.float()).mean()), "loss": float(val_loss)}

    logger.info("Projection data", extra={"train": len(train), "val": len(val), "items": len(table)})
    return TrainingTask(
        model=head,
        lengths=[1] * len(train),
        collate=collate,
        loss=loss,
        evaluate=evaluate if val else None,
        metric="mrr",
        greater_is_better=True,
        val_size=len(val),
    )


@dataclass
class ProjectionResult:
    """What :func:`train_projection` produced."""

    path: Path
    weight: np.ndarray
    bias: np.ndarray
    report: dict[str, Any]
    seconds: float

    @property
    def model_suffix(self) -> str:
        """``"+head:<sha256[:12] of the weights file>"``: appended to the base encoder's id."""
        return f"+head:{sha256_file(self.path)[:12]}"

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Project and L2-normalise ``vectors``."""
        return apply_projection(vectors, self.weight, self.bias)


def train_projection(
    vectors: np.ndarray, pairs: HistoryPairs, out_dir: str | Path, config: ContrastiveTrainConfig
) -> ProjectionResult:
    """Train a :class:`ResidualProjection` on ``pairs`` with :func:`fit` and save it.

    Args:
        vectors: ``(n_items, dim)`` frozen, L2-normalised item vectors.
        pairs: Histories, positives, hard negatives and item log-probabilities.
        out_dir: Where ``projection.safetensors`` and the loop's run files (``run/``) go.
        config: Loop and loss settings.

    Raises:
        ValueError: Fewer training pairs than one batch.
    """
    n_train = len(split_indices(len(pairs), config.val_fraction, config.val_split_seed)[0])
    if n_train < config.batch_size:
        raise ValueError(
            f"{len(pairs)} training pairs leave {n_train} for training, fewer than one batch of "
            f"{config.batch_size}"
        )
    started = time.perf_counter()
    set_seed(config.seed)
    head = ResidualProjection(vectors.shape[1])
    out_dir = Path(out_dir)
    report = fit(projection_task(head, vectors, pairs, config), config, out_dir / "run")
    head.to("cpu").eval()
    weight, bias = head.matrices()
    path = save_projection(out_dir, weight, bias)
    seconds = time.perf_counter() - started
    logger.info("Projection head trained", extra={"best_epoch": report["best_epoch"], "seconds": seconds})
    return ProjectionResult(path, weight, bias, report, seconds)


def save_projection(directory: str | Path, weight: np.ndarray, bias: np.ndarray) -> Path:
    """Write ``projection.safetensors`` into ``directory`` (created)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROJECTION_FILE
    save_file(
        {
            "weight": np.ascontiguousarray(weight, dtype=np.float32),
            "bias": np.ascontiguousarray(bias, dtype=np.float32),
        },
        str(path),
        metadata={"kind": "residual_projection", "dim": str(weight.shape[0])},
    )
    return path


def load_projection(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of the ``projection.safetensors`` in ``directory``.

    Raises:
        FileNotFoundError: No projection file there.
        ValueError: Its tensors do not form a square map and a matching bias.
    """
    path = Path(directory) / PROJECTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no projection head")
    tensors = load_file(str(path))
    weight, bias = tensors.get("weight"), tensors.get("bias")
    if weight is None or bias is None or weight.ndim != 2 or weight.shape != (len(bias), len(bias)):
        raise ValueError(f"{path}: not a projection head (weight {getattr(weight, 'shape', None)})")
    return weight, bias


def apply_projection(vectors: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``normalise(x W^T + b)`` row by row, float32."""
    out = np.asarray(vectors, dtype=np.float32) @ weight.T + bias
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


class _Encoder(Protocol):
    @property
    def model_id(self) -> str: ...

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool | None = None
    ) -> np.ndarray: ...


class ProjectedEmbedder:
    """An encoder followed by a trained projection head (the same ``encode`` interface).

    Args:
        base: The frozen encoder.
        weight: ``(dim, dim)`` map.
        bias: ``(dim,)`` offset.
        model_id: Id of the combination (base id plus the head's hash).
    """

    def __init__(self, base: _Encoder, weight: np.ndarray, bias: np.ndarray, model_id: str) -> None:
        self.base = base
        self.weight = weight
        self.bias = bias
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        """Id of the base encoder with the head."""
        return self._model_id

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """L2-normalised projected vectors, one row per text."""
        vectors = self.base.encode(texts, batch_size, show_progress_bar)
        return apply_projection(vectors, self.weight, self.bias)
