"""Behaviour-supervised fine-tuning of the item-text encoder: the data, prepared for core.

Training pairs come from interaction histories: for a user who engaged with items
``i_1, ..., i_t`` (by time), the *query* is the text of the ``history_items`` most recent items
before ``i_t`` (newest first, joined with " | ") and the *positive* is ``i_t``. This module builds
those pairs and what the literature adds to in-batch negatives, then hands them to
:func:`core.finetune.contrastive.train_contrastive`, which trains them in the shared loop
(:func:`core.finetune.loop.fit`: resume checkpoints, bf16 where fast, seeding, validation early
stopping):

* **mined hard negatives** (:func:`mine_negatives`): per pair, ``hard_negatives`` items drawn from
  ranks ``hard_skip`` to ``hard_skip + hard_pool`` of the frozen encoder's neighbours of the query,
  never an item of the user's own history (the nearest ranks are skipped: they are often items the
  user would have liked, false negatives);
* **popularity-corrected sampling** (:func:`item_log_q`): the log share of each item among the
  positives, subtracted from in-batch logits by the loss (``logq_correction``).

Two methods (``finetune.method``): ``lora`` trains LoRA weights of the transformer on the texts
(above); ``head`` keeps the transformer frozen and trains a residual linear head over its cached item
vectors (:mod:`core.finetune.projection`) on the same pairs, negatives and loss, with the query being
the mean of the history items' projected vectors: no transformer pass per step, so every pair and
many epochs fit the time one LoRA epoch of a few hundred pairs takes. The head is saved as
``projection.safetensors``; its encoder id is ``"<base>+head:<sha256[:12]>"``.

The LoRA adapter is saved in peft's format (``adapter_config.json`` + ``adapter_model.safetensors``) with
``training.json`` (config, base model, the loop's report). The adapted encoder's id,
``"<base>+lora:<sha256[:12] of the weights>"``, is recorded in the item index so vectors of
different encoders are never mixed. Nothing here imports torch: the model code is in ``core``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.recommender.config import ContrastiveConfig
from apps.recommender.interactions import Dataset
from apps.recommender.text_vectors import embed_items, normalise
from core import models
from core.config import to_dict
from core.embeddings import Embedder
from core.finetune.contrastive import (
    ADAPTER_WEIGHTS,
    ContrastivePairs,
    ContrastiveTrainConfig,
    adapter_model_id,
    load_adapted_embedder,
    train_contrastive,
)
from core.finetune.projection import (
    PROJECTION_FILE,
    HistoryPairs,
    ProjectedEmbedder,
    load_projection,
    train_projection,
)
from core.io.artifacts import sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "ADAPTER_WEIGHTS",
    "ContrastiveConfig",
    "Pairs",
    "TrainResult",
    "adapter_model_id",
    "item_log_q",
    "load_embedder",
    "make_pairs",
    "mine_negatives",
    "train_config",
    "train_encoder",
]

TRAINING_FILE = "training.json"
SEPARATOR = " | "


def train_config(config: ContrastiveConfig, show_progress_bar: bool = False) -> ContrastiveTrainConfig:
    """The settings of the core training loop for ``config`` (the ``head_*`` values for the head)."""
    head = config.method == "head"
    return ContrastiveTrainConfig(
        epochs=config.head_epochs if head else config.epochs,
        batch_size=config.head_batch_size if head else config.batch_size,
        lr=config.head_lr if head else config.lr,
        # The head is a few small matrices: fp32 and the CPU (no bf16 autocast, no GPU transfer).
        precision="fp32" if head else "auto",
        device="cpu" if head else "auto",
        temperature=config.temperature,
        logq_correction=config.logq_correction,
        val_fraction=config.val_fraction,
        patience=config.patience,
        max_query_length=config.max_query_length,
        max_item_length=config.max_item_length,
        lora=config.lora,
        seed=config.seed,
        show_progress_bar=show_progress_bar,
    )


@dataclass
class Pairs:
    """Training pairs: query (history) texts, positive item texts and indices, and who made them."""

    queries: list[str]
    positives: list[str]
    items: np.ndarray
    users: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    recent: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)


def make_pairs(train: Dataset, config: ContrastiveConfig) -> Pairs:
    """(recent history text -> next item) pairs from every user's time-ordered training history.

    Args:
        train: Training interactions (never the evaluation targets).
        config: ``history_items``, ``max_pairs`` and ``seed``.

    Returns:
        The pairs, a seeded sample of at most ``max_pairs``.
    """
    texts = train.texts
    where: list[tuple[int, int]] = []
    histories = train.histories()
    for u, history in enumerate(histories):
        where.extend((u, t) for t in range(1, len(history)))
    if len(where) > config.max_pairs:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(where), config.max_pairs, replace=False))
        where = [where[i] for i in keep]
    queries, positives, items, recents = [], [], [], []
    for u, t in where:
        history = histories[u]
        recent = history[max(0, t - config.history_items) : t][::-1]
        queries.append(SEPARATOR.join(texts[i] for i in recent))
        positives.append(texts[history[t]])
        items.append(int(history[t]))
        recents.append(np.asarray(recent, dtype=np.int64))
    users = np.asarray([u for u, _ in where], dtype=np.int64)
    return Pairs(queries, positives, np.asarray(items, dtype=np.int64), users, recents)


def mine_negatives(
    train: Dataset, pairs: Pairs, item_vectors: np.ndarray, config: ContrastiveConfig, block: int = 1024
) -> np.ndarray:
    """Hard negatives per pair from the neighbours of the query's mean item vector.

    Args:
        train: The training data (a user's whole history is never a negative for them).
        pairs: From :func:`make_pairs`.
        item_vectors: ``(n_items, dim)`` vectors of a frozen encoder.
        config: ``hard_negatives``, ``hard_skip``, ``hard_pool`` and ``seed``.
        block: Pairs scored at once (memory ``block x n_items``).

    Returns:
        ``(len(pairs), hard_negatives)`` item indices; -1 where too few items are left.
    """
    n = config.hard_negatives
    out = np.full((len(pairs), n), -1, dtype=np.int64)
    if not n or not len(pairs):
        return out
    vectors = normalise(np.asarray(item_vectors, dtype=np.float32))
    seen = train.user_item_matrix()
    rng = np.random.default_rng([config.seed, 7])
    depth = min(config.hard_skip + config.hard_pool, train.n_items)
    for start in range(0, len(pairs), block):
        rows = np.arange(start, min(start + block, len(pairs)))
        query = np.stack([vectors[pairs.recent[r]].mean(axis=0) for r in rows])
        scores = normalise(query) @ vectors.T
        excluded = seen[pairs.users[rows]].tocoo()
        scores[excluded.row, excluded.col] = -np.inf
        scores[np.arange(len(rows)), pairs.items[rows]] = -np.inf
        if depth < train.n_items:
            top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        else:
            top = np.broadcast_to(np.arange(train.n_items), scores.shape)
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        pool = np.take_along_axis(top, order, axis=1)[:, config.hard_skip :]
        valid = np.isfinite(np.take_along_axis(scores, pool, axis=1))
        for i, r in enumerate(rows):
            choices = pool[i][valid[i]]
            if len(choices):
                picked = rng.choice(choices, size=min(n, len(choices)), replace=False)
                out[r, : len(picked)] = picked
    return out


def item_log_q(items: np.ndarray, n_items: int) -> np.ndarray:
    """Log share of each item among the positives (items never a positive get half a count)."""
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    counts[counts == 0] = 0.5
    return np.log(counts / max(len(items), 1)).astype(np.float32)


@dataclass
class TrainResult:
    """What :func:`train_encoder` produced."""

    adapter_dir: Path
    model_id: str
    report: dict[str, Any]
    pairs: int
    seconds: float
    embedder: Embedder | ProjectedEmbedder = field(repr=False)
    #: Item vectors of the tuned encoder when they came without a transformer pass (the head's).
    item_vectors: np.ndarray | None = field(default=None, repr=False)

    @property
    def losses(self) -> list[float]:
        """Training loss per epoch."""
        return [row["train_loss"] for row in self.report.get("history", [])]

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: pairs, epochs, validation MRR per epoch, losses, time."""
        history = self.report.get("history", [])
        return {
            "adapter_dir": str(self.adapter_dir),
            "model_id": self.model_id,
            "pairs": self.pairs,
            "epochs_run": self.report.get("epochs_run"),
            "best_epoch": self.report.get("best_epoch"),
            "stopped_early": self.report.get("stopped_early"),
            "val_mrr": [row.get("val_mrr") for row in history],
            "loss_start": self.losses[0] if self.losses else None,
            "loss_end": self.losses[-1] if self.losses else None,
            "seconds": round(self.seconds, 1),
        }


def train_encoder(
    train: Dataset,
    out_dir: str | Path,
    base: str = models.DEFAULT_ENCODER,
    config: ContrastiveConfig | None = None,
    show_progress_bar: bool = False,
    item_vectors: np.ndarray | None = None,
) -> TrainResult:
    """LoRA-fine-tune ``base`` so a user's recent history lands near the next item they engage with.

    Args:
        train: Training interactions and item texts.
        out_dir: Where the adapter is written (created; replaced files are overwritten).
        base: Encoder spec (short name, directory).
        config: Epochs, batch size, negatives, LoRA settings...
        show_progress_bar: Show tqdm bars.
        item_vectors: Frozen-encoder vectors of ``train``'s items for mining hard negatives
            (computed here when needed and not given).

    Returns:
        The adapter directory, its model id, the training report and an :class:`Embedder` of the
        adapted encoder (merged weights).

    Raises:
        ValueError: Fewer pairs than one batch.
    """
    config = config or ContrastiveConfig()
    pairs = make_pairs(train, config)
    if len(pairs) < config.batch_size:
        raise ValueError(
            f"{train.name}: {len(pairs)} (history, next item) pairs, fewer than one batch of "
            f"{config.batch_size}; users need at least two interactions"
        )
    negatives = None
    if config.method == "head" and item_vectors is None:
        item_vectors = embed_items(train, load_embedder(base, None, config.max_item_length))
    if config.hard_negatives:
        if item_vectors is None:
            item_vectors = embed_items(train, load_embedder(base, None, config.max_item_length))
        negatives = mine_negatives(train, pairs, item_vectors, config)
    if config.method == "head":
        assert item_vectors is not None
        return _train_head(train, pairs, negatives, item_vectors, out_dir, base, config, show_progress_bar)
    data = ContrastivePairs(
        queries=pairs.queries,
        items=pairs.items,
        item_texts=train.texts,
        negatives=negatives,
        item_log_q=item_log_q(pairs.items, train.n_items),
    )
    result = train_contrastive(data, out_dir, base, train_config(config, show_progress_bar))
    training = {
        "base": base,
        "model_id": result.model_id,
        "config": to_dict(config),
        "pairs": len(pairs),
        "report": result.report,
    }
    (Path(out_dir) / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    return TrainResult(
        result.adapter_dir, result.model_id, result.report, len(pairs), result.seconds, result.embedder
    )


def _train_head(
    train: Dataset,
    pairs: Pairs,
    negatives: np.ndarray | None,
    item_vectors: np.ndarray,
    out_dir: str | Path,
    base: str,
    config: ContrastiveConfig,
    show_progress_bar: bool,
) -> TrainResult:
    """:func:`train_encoder` for ``method: head``: a projection over the frozen ``item_vectors``."""
    histories = np.full((len(pairs), config.history_items), -1, dtype=np.int64)
    for row, recent in enumerate(pairs.recent):
        histories[row, : len(recent)] = recent
    data = HistoryPairs(histories, pairs.items, negatives, item_log_q(pairs.items, train.n_items))
    frozen = normalise(np.asarray(item_vectors, dtype=np.float32))
    result = train_projection(frozen, data, out_dir, train_config(config, show_progress_bar))
    model_id = f"{base}{result.model_suffix}"
    training = {
        "base": base,
        "method": "head",
        "model_id": model_id,
        "config": to_dict(config),
        "pairs": len(pairs),
        "report": result.report,
    }
    (Path(out_dir) / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    embedder = ProjectedEmbedder(
        _LazyEmbedder(base, config.max_item_length), result.weight, result.bias, model_id
    )
    return TrainResult(
        Path(out_dir), model_id, result.report, len(pairs), result.seconds, embedder, result.apply(frozen)
    )


class _LazyEmbedder:
    """The frozen base encoder, loaded on the first ``encode`` (the head's vectors need none)."""

    def __init__(self, base: str, max_length: int | None) -> None:
        self.base, self.max_length = base, max_length
        self._embedder: Embedder | None = None

    @property
    def model_id(self) -> str:
        return self.base

    def encode(
        self, texts: list[str] | Any, batch_size: int = 64, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        if self._embedder is None:
            self._embedder = Embedder(self.base, max_length=self.max_length)
        return self._embedder.encode(texts, batch_size, show_progress_bar)


def load_embedder(
    base: str, adapter_dir: str | Path | None = None, max_length: int | None = None
) -> Embedder | ProjectedEmbedder:
    """The frozen ``base`` encoder, or ``base`` with the adapter in ``adapter_dir``: LoRA weights
    merged in, or a projection head applied after it.

    Args:
        base: Encoder spec.
        adapter_dir: A directory written by :func:`train_encoder` (``None``: frozen base).
        max_length: Token limit (``None``: the model's default).
    """
    if adapter_dir is None:
        return Embedder(base, max_length=max_length)
    if (Path(adapter_dir) / PROJECTION_FILE).is_file():
        weight, bias = load_projection(adapter_dir)
        suffix = sha256_file(Path(adapter_dir) / PROJECTION_FILE)[:12]
        return ProjectedEmbedder(Embedder(base, max_length=max_length), weight, bias, f"{base}+head:{suffix}")
    # LoRA: the loader in core (the support bot's adapted KB encoder uses it too).
    return load_adapted_embedder(base, adapter_dir, max_length)
