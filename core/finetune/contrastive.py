"""Contrastive fine-tuning of a text encoder (queries -> items) as a task of the shared loop.

Training data are (query text, positive item) pairs over a catalogue of item texts, optionally with
mined hard-negative items per pair and the log sampling probability of every item. A batch of ``B``
pairs is encoded by the LoRA-adapted encoder (the model's pooling, L2-normalised); the loss is
InfoNCE over the batch's ``B`` positives (in-batch negatives) plus its hard negatives:

    logits[b, c] = q_b . v_c / temperature  (- log Q(c) for in-batch columns, when correcting)

* **popularity correction** (``logq_correction``; Yi et al., RecSys 2019, "sampling-bias-corrected
  neural modeling"): a popular item appears as an in-batch negative more often than a rare one, so
  its logit is lowered by ``log Q(item)``, the log of its share of the positives; without it the
  encoder learns to push popular items away from every query;
* **hard negatives**: items close to the query but not chosen (mined by the caller, e.g. from a
  frozen encoder's neighbours) are extra columns of every row of the batch;
* an in-batch column holding the row's own positive item (the same item twice in a batch) is masked.

:func:`contrastive_task` builds the :class:`~core.finetune.loop.TrainingTask`, so :func:`fit` gives
it resume checkpoints, bf16 autocast, seeding, a learning-rate schedule and early stopping on the
validation split (``mrr``: the rank of each held-out query's positive among all held-out positives
and negatives). :func:`train_contrastive` loads the encoder, applies LoRA, fits and saves the adapter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import models
from core.embeddings import Embedder, pool, read_pooling_modes
from core.finetune.data import split_indices
from core.finetune.loop import TrainingTask, fit, pad
from core.finetune.settings import ContrastiveTrainConfig
from core.io.artifacts import sha256_file
from core.lora import apply_lora, load_adapter
from core.seed import set_seed

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class ContrastivePairs:
    """Training pairs over a catalogue.

    Attributes:
        queries: Query texts.
        items: Positive item index (into ``item_texts``) of each query.
        item_texts: Text of every catalogue item.
        negatives: ``(n_pairs, h)`` hard-negative item indices per query (-1: none), or ``None``.
        item_log_q: Log sampling probability of every item (popularity correction), or ``None``.
        item_groups: Group of every item, or ``None`` (each item its own group): items of one group
            are never each other's in-batch negatives (two texts cut from one passage, say).
    """

    queries: list[str]
    items: np.ndarray
    item_texts: Sequence[str]
    negatives: np.ndarray | None = None
    item_log_q: np.ndarray | None = None
    item_groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.queries)


def info_nce(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    positives: torch.Tensor,
    candidate_items: torch.Tensor,
    temperature: float,
    log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE where row ``b``'s positive is column ``b`` of ``candidates``.

    Args:
        queries: ``(B, d)`` L2-normalised query vectors.
        candidates: ``(C, d)`` L2-normalised item vectors, ``C >= B``: the ``B`` positives first,
            then any hard negatives.
        positives: ``(B,)`` item index of each row's positive.
        candidate_items: ``(C,)`` item index of each column (-1: never masked).
        temperature: Softmax temperature.
        log_q: ``(C,)`` log sampling probability subtracted from each column's logit (0 for columns
            that were not sampled in proportion to popularity), or ``None``.

    Returns:
        The mean loss (scalar). Columns other than the row's own that hold the row's positive item
        are masked out (a duplicate is not a negative).
    """
    logits = queries @ candidates.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    same = positives[:, None] == candidate_items[None, :]
    rows = torch.arange(len(positives), device=logits.device)
    same[rows, rows] = False
    logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, rows)


def _encode(model: Any, ids: torch.Tensor, mask: torch.Tensor, pooling: tuple[str, ...]) -> torch.Tensor:
    output = model(input_ids=ids, attention_mask=mask)
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    return torch.nn.functional.normalize(pool(hidden, mask, pooling).float(), dim=-1)


def _tensors(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = pad(seqs, pad_id)
    lengths = torch.tensor([len(s) for s in seqs])
    return ids, (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()


def contrastive_task(
    model: torch.nn.Module,
    tokenizer: Any,
    pooling: tuple[str, ...],
    pairs: ContrastivePairs,
    config: ContrastiveTrainConfig,
) -> TrainingTask:
    """The :class:`~core.finetune.loop.TrainingTask` of contrastive training on ``pairs``.

    Texts are tokenised once. The validation split (``config.val_fraction`` of the pairs, seeded)
    is scored by MRR of each query's positive among every positive and hard negative of the split.
    """
    train, val = split_indices(len(pairs), config.val_fraction, config.val_split_seed)
    q_ids = tokenizer(pairs.queries, truncation=True, max_length=config.max_query_length)["input_ids"]
    item_ids = tokenizer(list(pairs.item_texts), truncation=True, max_length=config.max_item_length)[
        "input_ids"
    ]
    pad_id = tokenizer.pad_token_id or 0
    groups = pairs.item_groups
    log_q = torch.as_tensor(pairs.item_log_q, dtype=torch.float32) if pairs.item_log_q is not None else None
    use_log_q = config.logq_correction and log_q is not None

    def collate(rows: Sequence[int]) -> dict[str, Any]:
        rows = [train[r] for r in rows]
        positives, columns, correction = batch_columns(
            pairs.items, pairs.negatives, rows, log_q if use_log_q else None
        )
        q, q_mask = _tensors([q_ids[i] for i in rows], pad_id)
        c, c_mask = _tensors([item_ids[i] for i in columns], pad_id)
        return {
            "q_ids": q,
            "q_mask": q_mask,
            "c_ids": c,
            "c_mask": c_mask,
            # masking compares groups (an item is its own group unless item_groups says otherwise)
            "positives": torch.as_tensor(positives if groups is None else groups[positives]),
            "columns": torch.as_tensor(columns if groups is None else groups[columns]),
            "log_q": correction,
        }

    def loss(batch: dict[str, Any]) -> torch.Tensor:
        q = _encode(model, batch["q_ids"], batch["q_mask"], pooling)
        c = _encode(model, batch["c_ids"], batch["c_mask"], pooling)
        log_q_batch = batch["log_q"] if use_log_q else None
        return info_nce(q, c, batch["positives"], batch["columns"], config.temperature, log_q_batch)

    def evaluate() -> dict[str, float]:
        device = next(model.parameters()).device
        columns = pairs.items[val]
        if pairs.negatives is not None:
            columns = np.concatenate([columns, pairs.negatives[val].ravel()])
        columns = np.unique(columns[columns >= 0])
        q = _embed_all(model, [q_ids[i] for i in val], pad_id, pooling, config.eval_batch_size, device)
        c = _embed_all(model, [item_ids[i] for i in columns], pad_id, pooling, config.eval_batch_size, device)
        scores = q @ c.T
        target = torch.as_tensor(np.searchsorted(columns, pairs.items[val]), device=scores.device)
        own = scores[torch.arange(len(val), device=scores.device), target]
        rank = 1 + (scores > own[:, None]).sum(dim=1)
        val_loss = torch.nn.functional.cross_entropy(scores / config.temperature, target)
        return {"mrr": float((1.0 / rank.float()).mean()), "loss": float(val_loss)}

    logger.info("Contrastive data", extra={"train": len(train), "val": len(val), "items": len(item_ids)})
    return TrainingTask(
        model=model,
        lengths=[len(q_ids[i]) for i in train],
        collate=collate,
        loss=loss,
        evaluate=evaluate if val else None,
        metric="mrr",
        greater_is_better=True,
        val_size=len(val),
    )


def _embed_all(
    model: Any, seqs: list[list[int]], pad_id: int, pooling: tuple[str, ...], batch: int, device: Any
) -> torch.Tensor:
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.empty((len(seqs), 0))
    parts: list[torch.Tensor] = []
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        ids, mask = _tensors([seqs[i] for i in idx], pad_id)
        parts.append(_encode(model, ids.to(device), mask.to(device), pooling).cpu())
    if parts:
        out = torch.empty((len(seqs), parts[0].shape[1]))
        out[torch.as_tensor(order)] = torch.cat(parts)
    return out


@dataclass
class ContrastiveResult:
    """What :func:`train_contrastive` produced."""

    adapter_dir: Path
    model_id: str
    report: dict[str, Any]
    seconds: float
    embedder: Embedder = field(repr=False)


def adapter_model_id(base: str, adapter_dir: str | Path) -> str:
    """``"<base>+lora:<sha256[:12]>"`` of the adapter weights in ``adapter_dir``."""
    path = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a LoRA adapter directory")
    return f"{base}+lora:{sha256_file(path)[:12]}"


def load_adapted_embedder(
    base: str, adapter_dir: str | Path | None = None, max_length: int | None = None
) -> Embedder:
    """The frozen ``base`` encoder, or ``base`` with the LoRA adapter in ``adapter_dir`` merged in.

    Args:
        base: Encoder spec.
        adapter_dir: A directory written by :func:`train_contrastive` (``None``: frozen base).
        max_length: Token limit (``None``: the base's ``max_seq_length``, else the model's limit).

    Returns:
        An :class:`Embedder` whose ``model_id`` is :func:`adapter_model_id` of the adapter.
    """
    if adapter_dir is None:
        return Embedder(base, max_length=max_length)
    if max_length is None:  # the base's own limit (sentence_bert_config.json), as Embedder(base) uses
        st_config = models.model_path(base) / "sentence_bert_config.json"
        if st_config.is_file():
            max_length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
    encoder, tokenizer = models.load_encoder(base, fresh=True)
    merged = load_adapter(encoder, adapter_dir, merge=True).eval()
    pooling = read_pooling_modes(models.model_path(base))
    return Embedder.from_model(merged, tokenizer, adapter_model_id(base, adapter_dir), max_length, pooling)


def batch_columns(
    items: np.ndarray, negatives: np.ndarray | None, rows: Sequence[int], log_q: torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The candidate columns of one in-batch-negatives batch.

    Args:
        items: Positive item of every pair.
        negatives: ``(n_pairs, k)`` mined hard negatives (``-1`` pads), or ``None``.
        rows: The batch's pair rows.
        log_q: Per-item log sampling probability for popularity correction, or ``None`` (no correction).

    Returns:
        ``(positives, columns, correction)``: the batch's positives, the columns scored against every
        query (positives first, then the valid hard negatives) and the log-q correction per column
        (zero for the hard negatives and when ``log_q`` is ``None``).
    """
    positives = items[rows]
    mined = negatives[rows].ravel() if negatives is not None else np.empty(0, np.int64)
    columns = np.concatenate([positives, mined[mined >= 0]]).astype(np.int64)
    correction = torch.zeros(len(columns))
    if log_q is not None:
        correction[: len(positives)] = log_q[torch.as_tensor(positives)]
    return positives, columns, correction


def train_contrastive(
    pairs: ContrastivePairs,
    out_dir: str | Path,
    base: str = models.DEFAULT_ENCODER,
    config: ContrastiveTrainConfig | None = None,
    resume_from: str | Path | bool | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> ContrastiveResult:
    """LoRA-fine-tune the encoder ``base`` on ``pairs`` with :func:`fit` and save the adapter.

    Args:
        pairs: Queries, positives, hard negatives and item log-probabilities.
        out_dir: Adapter directory (peft layout); the loop's run files go to ``out_dir/run``.
        base: Encoder spec (short name or directory).
        config: Loop and loss settings (``config.lora`` for the adapter).
        resume_from: Passed to :func:`fit` (``True``: this run's own checkpoint).
        on_epoch_end: Passed to :func:`fit`.

    Returns:
        The adapter directory, its model id, the loop's report and an :class:`Embedder` of the
        adapted encoder (weights merged).

    Raises:
        ValueError: Fewer training pairs than one batch.
    """
    config = config or ContrastiveTrainConfig()
    n_train = len(split_indices(len(pairs), config.val_fraction, config.val_split_seed)[0])
    if n_train < config.batch_size:
        raise ValueError(
            f"{len(pairs)} training pairs leave {n_train} for training, fewer than one batch of "
            f"{config.batch_size}"
        )
    started = time.perf_counter()
    set_seed(config.seed)  # the LoRA initialisation is part of the run
    encoder, tokenizer = models.load_encoder(base, fresh=True)
    pooling = read_pooling_modes(models.model_path(base))
    model = apply_lora(encoder, config.lora)
    out_dir = Path(out_dir)
    task = contrastive_task(model, tokenizer, pooling, pairs, config)
    report = fit(task, config, out_dir / "run", resume_from, on_epoch_end)
    model.to("cpu").eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    model_id = adapter_model_id(base, out_dir)
    merged = model.merge_and_unload()
    embedder = Embedder.from_model(merged, tokenizer, model_id, config.max_item_length, pooling)
    seconds = time.perf_counter() - started
    logger.info("Encoder fine-tuned", extra={"model_id": model_id, "best_epoch": report["best_epoch"]})
    return ContrastiveResult(out_dir, model_id, report, seconds, embedder)
