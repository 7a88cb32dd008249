"""Settings of every fine-tuning task: the shared loop's :class:`TrainConfig` and each task's own.

Typed, frozen, JSON-serialisable dataclasses (``core.config`` reads them from YAML and ``--set``).
This module loads no model library, so an app's settings, and the commands that only read them,
start without torch; the tasks that use them live in :mod:`core.finetune.loop`,
:mod:`~core.finetune.classifier`, :mod:`~core.finetune.causal_lm` and :mod:`~core.finetune.contrastive`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.config import from_dict, to_dict
from core.lora import ALL_LINEAR, LoraSettings
from core.precision import Precision
from core.seed import DEFAULT_SEED


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the shared training loop."""

    epochs: int = field(default=3, metadata={"help": "Most passes over the training split."})
    batch_size: int = field(default=16, metadata={"help": "Examples per forward pass."})
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate of the LoRA weights."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (matrices only)."})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "Fraction of optimizer steps spent warming up."}
    )
    scheduler: Literal["linear", "cosine", "constant"] = field(
        default="linear", metadata={"help": "Learning-rate decay after warm-up."}
    )
    grad_accum: int = field(default=1, metadata={"help": "Batches per optimizer step."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 turns it off)."})
    val_fraction: float = field(default=0.2, metadata={"help": "Share of the data held out for validation."})
    patience: int = field(
        default=2,
        metadata={"help": "Stop after this many epochs without a better validation metric (0: never)."},
    )
    seed: int = field(
        default=DEFAULT_SEED, metadata={"help": "Seed of the split, initialisation and batches."}
    )
    split_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the validation split alone (None: seed); runs of several seeds that share "
            "it are scored on the same held-out rows (a seed ensemble chosen on validation)."
        },
    )
    max_length: int = field(default=256, metadata={"help": "Longest example in tokens; longer ones are cut."})
    eval_batch_size: int = field(default=64, metadata={"help": "Examples per forward pass when evaluating."})
    bucket_batches: int = field(
        default=32, metadata={"help": "Batches per shuffled chunk sorted by length (less padding)."}
    )
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto (cuda when available)."})
    precision: Precision = field(
        default="auto",
        metadata={
            "help": "Training compute: fp32, bf16 (autocast; weights and optimizer stay fp32), or auto "
            "(bf16 on a CPU with AVX512-BF16/AMX, else fp32)."
        },
    )
    show_progress_bar: bool = field(default=True, metadata={"help": "Show a tqdm bar per epoch."})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "LoRA adapter settings."})

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "grad_accum": self.grad_accum >= 1,
            "max_grad_norm": self.max_grad_norm >= 0,
            "val_fraction": 0 <= self.val_fraction < 1,
            "patience": self.patience >= 0,
            "max_length": self.max_length >= 8,
            "eval_batch_size": self.eval_batch_size >= 1,
            "bucket_batches": self.bucket_batches >= 1,
            "precision": self.precision in ("auto", "fp32", "bf16"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{type(self).__name__}.{name} has an invalid value: {getattr(self, name)!r}"
                )

    @property
    def val_split_seed(self) -> int:
        """The seed of the validation split: ``split_seed`` if set, else ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed


def with_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Return ``config`` with fields replaced by ``overrides`` (types checked, unknown names rejected).

    Raises:
        core.config.ConfigError: (a ``ValueError``) naming an unknown field or a wrongly typed value.
    """
    if not overrides:
        return config
    return from_dict(type(config), {**to_dict(config), **overrides})


@dataclass(frozen=True)
class ClassifierTrainConfig(TrainConfig):
    """Training settings of a text classifier (the loop's settings plus the classifier's own)."""

    batch_size: int = field(default=8, metadata={"help": "Examples per forward pass."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate of the LoRA weights."})
    head_lr: float = field(default=1e-2, metadata={"help": "Peak learning rate of the classification heads."})
    metric: Literal["macro_f1", "accuracy"] = field(
        default="macro_f1",
        metadata={"help": "Validation metric that picks the best epoch (mean over heads)."},
    )
    pooling: Literal["mean", "cls"] = field(
        default="mean", metadata={"help": "Mean of token states, or [CLS]."}
    )
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the pooled vector before the heads."})
    use_lora: bool = field(
        default=True,
        metadata={"help": "Adapt the encoder with LoRA; false trains the heads on a frozen encoder."},
    )
    full_finetune: bool = field(
        default=False,
        metadata={
            "help": "Train every encoder weight instead of LoRA (use a small lr such as 1e-4); "
            "the saved model then carries the whole encoder."
        },
    )
    auxiliary_heads: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Heads trained only to shape the shared encoder (multi-task learning on another "
            "labelled set): rows labelled for no other head are all training rows, and the validation "
            "split, metric and best epoch come from the other heads alone."
        },
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={
            "help": "Share of each training target spread evenly over the head's labels (0: one-hot); "
            "softens the fit to noisy labels such as split annotator votes. Validation loss stays "
            "unsmoothed."
        },
    )
    distill_weight: float = field(
        default=0.5,
        metadata={
            "help": "With a teacher's soft targets (distillation): the share of each row's loss that "
            "aims at the teacher's probabilities, the rest at the row's label (1: the teacher alone)."
        },
    )
    layer_lr_decay: float = field(
        default=1.0,
        metadata={
            "help": "Layer-wise learning-rate decay of the encoder: the top layer trains at lr, each "
            "layer below at this factor times the one above, the embeddings below the bottom layer "
            "(1.0: every encoder weight at lr)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.layer_lr_decay <= 1:
            raise ValueError(
                f"{type(self).__name__}.layer_lr_decay has an invalid value: {self.layer_lr_decay!r}"
            )
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(
                f"{type(self).__name__}.distill_weight has an invalid value: {self.distill_weight!r}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"{type(self).__name__}.label_smoothing has an invalid value: {self.label_smoothing!r}"
            )


@dataclass(frozen=True)
class CausalLMTrainConfig(TrainConfig):
    """Training settings of causal-LM supervised fine-tuning (validation metric: token-level loss)."""

    # 12, stopped early on the validation loss (patience 2): on StackFAQ (72 pairs, issue 16) that loss
    # still fell at the earlier cap of 5 and kept falling to epoch 12 (0.61 -> 0.056).
    epochs: int = field(
        default=12, metadata={"help": "Most passes over the training split (early stopping may end sooner)."}
    )
    batch_size: int = field(default=8, metadata={"help": "Examples per forward pass."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate of the LoRA weights."})
    val_fraction: float = field(default=0.1, metadata={"help": "Share of the pairs held out for validation."})
    max_length: int = field(
        default=512, metadata={"help": "Longest prompt+response in tokens; responses are cut."}
    )
    pack_length: int = field(
        default=1024,
        metadata={
            "help": "Pack a batch's pairs into rows of at most this many tokens, each pair attending only "
            "to itself with positions from 0 (the loss is unchanged; no padding to compute). 0: one "
            "padded row per pair."
        },
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message for every pair (None: the chat template's default)."}
    )
    lora: LoraSettings = field(
        default_factory=lambda: LoraSettings(r=16, alpha=32, dropout=0.05, target_modules=(ALL_LINEAR,)),
        metadata={"help": "LoRA adapter settings (default: rank 16 on every linear layer but the LM head)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pack_length < 0:
            raise ValueError(f"CausalLMTrainConfig.pack_length has an invalid value: {self.pack_length!r}")


@dataclass(frozen=True)
class ContrastiveTrainConfig(TrainConfig):
    """The loop's settings plus the contrastive loss's own."""

    epochs: int = field(default=2, metadata={"help": "Most passes over the training pairs."})
    batch_size: int = field(default=32, metadata={"help": "Pairs per batch (the in-batch negatives)."})
    scheduler: Literal["linear", "cosine", "constant"] = field(
        default="cosine", metadata={"help": "Learning-rate decay after warm-up."}
    )
    val_fraction: float = field(default=0.1, metadata={"help": "Share of the pairs held out for validation."})
    patience: int = field(
        default=1, metadata={"help": "Epochs without a better validation MRR before stopping."}
    )
    show_progress_bar: bool = field(default=False, metadata={"help": "Show a tqdm bar per epoch."})
    temperature: float = field(default=0.05, metadata={"help": "Softmax temperature of InfoNCE."})
    logq_correction: bool = field(
        default=True, metadata={"help": "Subtract log item frequency from in-batch logits (popularity)."}
    )
    max_query_length: int = field(default=128, metadata={"help": "Token limit of a query text."})
    max_item_length: int = field(default=64, metadata={"help": "Token limit of an item text."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 2:
            raise ValueError("ContrastiveTrainConfig.batch_size must be >= 2 (in-batch negatives)")
        if self.temperature <= 0:
            raise ValueError(f"ContrastiveTrainConfig.temperature must be positive, got {self.temperature}")
