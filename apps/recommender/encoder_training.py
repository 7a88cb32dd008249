"""Behaviour-supervised LoRA fine-tuning of the text encoder (contrastive, in-batch negatives).

Training pairs come from interaction histories: for a user who engaged with items
``i_1, ..., i_t`` (by time), the *query* is the text of the ``history_items`` most recent items
before ``i_t`` (newest first, joined with " | ") and the *positive* is the text of ``i_t``. A batch
of ``B`` pairs is encoded by the same LoRA-adapted encoder (mean pooling, L2-normalised), and the
InfoNCE loss is the cross entropy of ``q_b . p_c / temperature`` over the ``B`` positives of the
batch: every other pair's item is a negative (in-batch negatives). When two pairs of a batch share
the same positive item, the duplicate is masked out instead of being counted as a negative.

Only the LoRA weights train (:func:`core.lora.apply_lora`); the adapter is saved in peft's
format (``adapter_config.json`` + ``adapter_model.safetensors``) with ``training.json`` (config,
base model, loss curve). The adapted encoder's id, ``"<base>+lora:<sha256[:12] of the weights>"``,
is recorded in the item index so vectors of different encoders are never mixed.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from apps.recommender.data import Dataset
from core import models
from core.config import to_dict
from core.embeddings import Embedder, pool, read_pooling_modes
from core.io.artifacts import sha256_file
from core.lora import LoraSettings, apply_lora, load_adapter

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINING_FILE = "training.json"
SEPARATOR = " | "


@dataclass(frozen=True)
class ContrastiveConfig:
    """Contrastive fine-tuning of the item-text encoder on user histories."""

    enabled: bool = field(default=True, metadata={"help": "fine-tune the encoder (False: frozen encoder)"})
    steps: int = field(default=200, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=32, metadata={"help": "pairs per batch (the in-batch negatives)"})
    lr: float = field(default=5e-4, metadata={"help": "AdamW learning rate of the LoRA weights"})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature of InfoNCE"})
    history_items: int = field(default=5, metadata={"help": "most recent items in the query text"})
    max_query_length: int = field(default=128, metadata={"help": "token limit of the history text"})
    max_item_length: int = field(default=64, metadata={"help": "token limit of an item text"})
    max_pairs: int = field(default=20000, metadata={"help": "seeded sample of training pairs"})
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = field(default=0, metadata={"help": "seed of pair sampling, batches and LoRA init"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "history_items", "max_query_length", "max_item_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"ContrastiveConfig.{name} must be positive, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("ContrastiveConfig.batch_size must be >= 2 (in-batch negatives)")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError("ContrastiveConfig.lr and temperature must be positive")


@dataclass
class Pairs:
    """Training pairs: query (history) texts, positive item texts and positive item indices."""

    queries: list[str]
    positives: list[str]
    items: np.ndarray

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
    queries, positives, items = [], [], []
    for u, t in where:
        history = histories[u]
        recent = history[max(0, t - config.history_items) : t][::-1]
        queries.append(SEPARATOR.join(texts[i] for i in recent))
        positives.append(texts[history[t]])
        items.append(int(history[t]))
    return Pairs(queries, positives, np.asarray(items, dtype=np.int64))


def info_nce(
    queries: torch.Tensor, positives: torch.Tensor, items: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE over in-batch negatives; duplicates of a row's positive item are masked out.

    Args:
        queries: ``(B, d)`` L2-normalised query vectors.
        positives: ``(B, d)`` L2-normalised positive item vectors.
        items: ``(B,)`` item index of each positive.
        temperature: Softmax temperature.

    Returns:
        The mean loss (scalar).
    """
    logits = queries @ positives.T / temperature
    same = items[:, None] == items[None, :]
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(items), device=logits.device))


@dataclass
class TrainResult:
    """What :func:`train_encoder` produced."""

    adapter_dir: Path
    model_id: str
    losses: list[float]
    pairs: int
    seconds: float
    embedder: Embedder = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (first/last loss averaged over 10 steps)."""
        head, tail = self.losses[:10], self.losses[-10:]
        return {
            "adapter_dir": str(self.adapter_dir),
            "model_id": self.model_id,
            "pairs": self.pairs,
            "steps": len(self.losses),
            "loss_start": float(np.mean(head)) if head else None,
            "loss_end": float(np.mean(tail)) if tail else None,
            "seconds": round(self.seconds, 1),
        }


def _embed(
    model: Any, tokenizer: Any, texts: list[str], max_length: int, pooling: tuple[str, ...]
) -> torch.Tensor:
    features = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    output = model(**features)
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    return torch.nn.functional.normalize(pool(hidden, features["attention_mask"], pooling), dim=-1)


def train_encoder(
    train: Dataset,
    out_dir: str | Path,
    base: str = models.DEFAULT_ENCODER,
    config: ContrastiveConfig | None = None,
    show_progress_bar: bool = False,
) -> TrainResult:
    """LoRA-fine-tune ``base`` so a user's recent history lands near the next item they engage with.

    Args:
        train: Training interactions and item texts.
        out_dir: Where the adapter is written (created; replaced files are overwritten).
        base: Encoder spec (short name, directory).
        config: Steps, batch size, LoRA settings...
        show_progress_bar: Show a tqdm bar over steps.

    Returns:
        The adapter directory, its model id, the loss per step and an :class:`Embedder` of the
        adapted encoder (merged weights).

    Raises:
        ValueError: Fewer pairs than one batch.
    """
    import time

    from core.seed import set_seed

    config = config or ContrastiveConfig()
    pairs = make_pairs(train, config)
    if len(pairs) < config.batch_size:
        raise ValueError(
            f"{train.name}: {len(pairs)} (history, next item) pairs, fewer than one batch of "
            f"{config.batch_size}; users need at least two interactions"
        )
    set_seed(config.seed)
    started = time.perf_counter()
    encoder, tokenizer = models.load_encoder(base, fresh=True)
    pooling = read_pooling_modes(models.model_path(base))
    model = apply_lora(encoder, config.lora)
    model.train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    warmup = max(1, config.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / config.steps))
    )
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(pairs))
    cursor, losses = 0, []
    for _ in tqdm(range(config.steps), desc="Contrastive", unit="step", disable=not show_progress_bar):
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(pairs)), 0
        batch = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        q = _embed(model, tokenizer, [pairs.queries[i] for i in batch], config.max_query_length, pooling)
        p = _embed(model, tokenizer, [pairs.positives[i] for i in batch], config.max_item_length, pooling)
        loss = info_nce(q, p, torch.as_tensor(pairs.items[batch]), config.temperature)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    model_id = adapter_model_id(base, out_dir)
    seconds = time.perf_counter() - started
    training = {
        "base": base,
        "model_id": model_id,
        "config": to_dict(config),
        "losses": losses,
        "pairs": len(pairs),
    }
    (out_dir / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    logger.info("Encoder fine-tuned", extra={"model_id": model_id, "steps": config.steps, "seconds": seconds})
    merged = model.merge_and_unload()
    embedder = Embedder.from_model(merged, tokenizer, model_id, config.max_item_length, pooling)
    return TrainResult(out_dir, model_id, losses, len(pairs), seconds, embedder)


def adapter_model_id(base: str, adapter_dir: str | Path) -> str:
    """``"<base>+lora:<sha256[:12]>"`` of the adapter weights in ``adapter_dir``."""
    path = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a LoRA adapter directory")
    return f"{base}+lora:{sha256_file(path)[:12]}"


def load_embedder(
    base: str, adapter_dir: str | Path | None = None, max_length: int | None = None
) -> Embedder:
    """The frozen ``base`` encoder, or ``base`` with the adapter in ``adapter_dir`` merged in.

    Args:
        base: Encoder spec.
        adapter_dir: A directory written by :func:`train_encoder` (``None``: frozen base).
        max_length: Token limit (``None``: the model's default).
    """
    if adapter_dir is None:
        return Embedder(base, max_length=max_length)
    encoder, tokenizer = models.load_encoder(base, fresh=True)
    merged = load_adapter(encoder, adapter_dir, merge=True).eval()
    pooling = read_pooling_modes(models.model_path(base))
    return Embedder.from_model(merged, tokenizer, adapter_model_id(base, adapter_dir), max_length, pooling)
