"""The recommender's settings: typed dataclasses, one per component, loaded from ``configs/recommender.yaml``.

:class:`RecommenderConfig` is the whole file (``aigc recommend train``/``eval``): one section per
component (``data``, ``encoder``, ``finetune``, ``ranker``, ``eval``). :class:`BatchConfig` is what
``aigc recommend score`` builds from its flags. Command lines override single values with
``--set finetune.epochs=1 --set ranker.cold.first_slot=0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from core import models
from core.config import load_config
from core.lora import LoraSettings
from core.paths import project_root

#: ``configs/recommender.yaml`` of the checkout (used when ``--config`` is not given and it exists).
DEFAULT_CONFIG = project_root() / "configs" / "recommender.yaml"

OnError = Literal["raise", "skip"]
Engines = Literal["local", "ray"]


# ------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataConfig:
    """How items and interactions are read and cleaned."""

    text_fields: tuple[str, ...] = field(
        default=("title", "description", "genres", "tags"),
        metadata={"help": "item columns joined, in this order, into the text the encoder sees"},
    )
    list_fields: tuple[str, ...] = field(
        default=("genres", "tags"),
        metadata={"help": "columns holding lists; shown as 'Genres: a, b' in the item text"},
    )
    list_separator: str = field(default="|", metadata={"help": "separator of list values in CSV cells"})
    min_rating: float | None = field(
        default=None, metadata={"help": "drop interactions rated below this (rows without a rating stay)"}
    )
    repeats: Literal["first", "all"] = field(
        default="first", metadata={"help": "first: keep a user's first interaction per item; all: keep all"}
    )
    on_error: OnError = field(
        default="raise", metadata={"help": "raise on a bad row, or skip it with a warning"}
    )
    unknown_items: OnError = field(
        default="raise", metadata={"help": "interactions whose item is not in the items file: raise or skip"}
    )


# ---------------------------------------------------------------------------------- encoder
@dataclass(frozen=True)
class EncoderConfig:
    """The item-text encoder."""

    model: str = field(default=models.DEFAULT_ENCODER, metadata={"help": "encoder spec (short name or dir)"})
    max_length: int = field(default=64, metadata={"help": "token limit of an item text"})
    batch_size: int = field(default=64, metadata={"help": "texts per forward pass when embedding"})


@dataclass(frozen=True)
class ContrastiveConfig:
    """Contrastive fine-tuning of the item-text encoder on user histories."""

    enabled: bool = field(default=True, metadata={"help": "fine-tune the encoder (False: frozen encoder)"})
    method: Literal["lora", "head"] = field(
        default="head",
        metadata={
            "help": "lora: LoRA on the transformer (a transformer pass per text and step); head: a "
            "residual linear head over the frozen encoder's vectors (every pair, many epochs, seconds)"
        },
    )
    head_epochs: int = field(default=30, metadata={"help": "head: most epochs (early stopping)"})
    head_batch_size: int = field(default=256, metadata={"help": "head: pairs per batch"})
    head_lr: float = field(default=1e-3, metadata={"help": "head: AdamW learning rate"})
    epochs: int = field(
        default=2, metadata={"help": "most passes over the pairs (early stopping on validation)"}
    )
    batch_size: int = field(default=32, metadata={"help": "pairs per batch (the in-batch negatives)"})
    lr: float = field(default=5e-4, metadata={"help": "AdamW learning rate of the LoRA weights"})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature of InfoNCE"})
    hard_negatives: int = field(
        default=2, metadata={"help": "mined hard negatives per pair (0: in-batch only)"}
    )
    hard_skip: int = field(
        default=10, metadata={"help": "nearest neighbours skipped when mining (false negatives)"}
    )
    hard_pool: int = field(default=100, metadata={"help": "neighbour ranks hard negatives are drawn from"})
    logq_correction: bool = field(default=True, metadata={"help": "popularity-corrected in-batch logits"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of pairs held out for early stopping"})
    patience: int = field(
        default=3, metadata={"help": "epochs without a better validation MRR before stopping"}
    )
    history_items: int = field(default=5, metadata={"help": "most recent items in the query text"})
    max_query_length: int = field(default=128, metadata={"help": "token limit of the history text"})
    max_item_length: int = field(default=64, metadata={"help": "token limit of an item text"})
    max_pairs: int = field(default=20000, metadata={"help": "seeded sample of training pairs"})
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = field(default=0, metadata={"help": "seed of pair sampling, mining, batches and LoRA init"})

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "batch_size",
            "history_items",
            "max_query_length",
            "max_item_length",
            "head_epochs",
            "head_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ContrastiveConfig.{name} must be positive, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("ContrastiveConfig.batch_size must be >= 2 (in-batch negatives)")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError("ContrastiveConfig.lr and temperature must be positive")
        if self.hard_negatives < 0 or self.hard_skip < 0 or self.hard_pool < 1:
            raise ValueError("ContrastiveConfig needs hard_negatives >= 0, hard_skip >= 0, hard_pool >= 1")


# ----------------------------------------------------------------------------------- ranker
@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source contributes."""

    n_text: int = field(default=200, metadata={"help": "nearest items to the user's text vector"})
    n_cf: int = field(default=50, metadata={"help": "items with the highest item-item co-occurrence score"})
    n_popular: int = field(default=50, metadata={"help": "most popular unseen items"})
    n_ease: int = field(default=200, metadata={"help": "items with the highest EASE score (when EASE is on)"})
    half_life: float | None = field(
        default=10.0, metadata={"help": "recency half-life of the history vector"}
    )
    max_history: int | None = field(default=50, metadata={"help": "most recent items in the history vector"})
    batch_size: int = field(default=256, metadata={"help": "users per batch"})

    def __post_init__(self) -> None:
        for name in ("n_text", "n_cf", "n_popular", "n_ease"):
            if getattr(self, name) < 0:
                raise ValueError(f"CandidateConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"CandidateConfig.batch_size must be positive, got {self.batch_size}")


@dataclass(frozen=True)
class ColdSlots:
    """Where cold items (no training interactions) are placed in each list."""

    first_slot: int = field(
        default=11, metadata={"help": "1-based position of the first reserved cold slot; 0 disables"}
    )
    every: int = field(default=4, metadata={"help": "a reserved slot every this many positions after it"})
    last_slot: int = field(default=100, metadata={"help": "no reserved slots after this position"})
    freshness_weight: float = field(
        default=0.2, metadata={"help": "added to the cosine of a brand-new item (needs item timestamps)"}
    )
    freshness_half_life_days: float = field(
        default=730.0, metadata={"help": "days after which an item's freshness bonus halves"}
    )

    def __post_init__(self) -> None:
        if self.first_slot < 0 or self.every < 1 or self.last_slot < 0:
            raise ValueError(
                f"ColdSlots needs first_slot >= 0, every >= 1, last_slot >= 0; got {self.first_slot}, "
                f"{self.every}, {self.last_slot}"
            )

    @property
    def enabled(self) -> bool:
        """Whether any slot is reserved."""
        return 0 < self.first_slot <= self.last_slot

    def slots(self, length: int) -> np.ndarray:
        """0-based reserved positions within a list of ``length``."""
        if not self.enabled:
            return np.empty(0, dtype=np.int64)
        last = min(self.last_slot, length)
        return np.arange(self.first_slot, last + 1, self.every, dtype=np.int64) - 1

    def n_slots(self, length: int) -> int:
        """How many reserved positions a list of ``length`` has."""
        return len(self.slots(length))


@dataclass(frozen=True)
class GBDTConfig:
    """Gradient-boosted trees with a LambdaRank objective (LightGBM), the non-linear ranker.

    Trained on the same rows as the logistic regression, one query group per user; a seeded share
    of those users is held out to stop boosting when their NDCG stops improving, then the model is
    refit on all users for that many rounds.
    """

    num_leaves: int = field(default=15, metadata={"help": "leaves per tree"})
    learning_rate: float = field(default=0.05, metadata={"help": "shrinkage per boosting round"})
    max_rounds: int = field(default=500, metadata={"help": "most boosting rounds (early stopping)"})
    min_child_samples: int = field(default=50, metadata={"help": "fewest rows in a leaf"})
    feature_fraction: float = field(default=0.8, metadata={"help": "share of features per tree"})
    bagging_fraction: float = field(default=0.8, metadata={"help": "share of rows per tree (bagging)"})
    lambda_l2: float = field(default=1.0, metadata={"help": "L2 penalty on leaf values"})
    eval_at: int = field(default=10, metadata={"help": "NDCG cut-off of LambdaRank and early stopping"})
    val_fraction: float = field(default=0.2, metadata={"help": "share of users held out for early stopping"})
    patience: int = field(default=50, metadata={"help": "rounds without a better held-out NDCG"})
    threads: int = field(
        default=1, metadata={"help": "LightGBM threads (a fixed count keeps training bit-reproducible)"}
    )

    def __post_init__(self) -> None:
        for name in ("num_leaves", "max_rounds", "min_child_samples", "eval_at", "patience", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"GBDTConfig.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"GBDTConfig.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class RankerConfig:
    """Candidates, features and the ranking model (logistic regression or LambdaRank trees)."""

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    model: Literal["logistic", "listwise", "blend", "lambdarank"] = field(
        default="logistic",
        metadata={
            "help": "logistic: logistic regression (pointwise); listwise: linear, softmax over each "
            "user's candidates; blend: one linear model, a weighted mean of the two's coefficients "
            "(listwise_weight); lambdarank: LightGBM trees, ranking objective"
        },
    )
    listwise_weight: float = field(
        default=0.5,
        metadata={"help": "blend: share of the listwise coefficients (the rest: the logistic ones)"},
    )
    gbdt: GBDTConfig = field(default_factory=GBDTConfig)
    recent_days: float = field(default=30.0, metadata={"help": "window of the recent-popularity feature"})
    max_similar_history: int = field(default=20, metadata={"help": "history items compared for reasons"})
    trend_share: float = field(
        default=0.05, metadata={"help": "share of recent interactions counted by trend_popularity"}
    )
    ease: bool = field(default=True, metadata={"help": "EASE as a candidate source and a feature"})
    ease_l2: float = field(
        default=50.0,
        metadata={"help": "ridge penalty of the EASE source (the EASE baseline's stays its own: 200)"},
    )
    ease_max_items: int = field(
        default=6000, metadata={"help": "most popular items in the EASE source (its cost grows as n^3)"}
    )
    ease_keep: int | None = field(
        default=None,
        metadata={"help": "EASE weights kept per item (largest magnitude; sparse, faster); null: all"},
    )
    c: float = field(default=1.0, metadata={"help": "inverse L2 regularisation of the logistic regression"})
    max_iter: int = field(default=1000, metadata={"help": "solver iterations"})
    max_train_users: int | None = field(default=None, metadata={"help": "train on a seeded sample of users"})
    train_rounds: int = field(
        default=1,
        metadata={
            "help": "leave-last-out rounds whose held-out items train the ranker (round 2 holds out each "
            "user's second-to-last item, with candidates from the interactions before it)"
        },
    )
    activity_interactions: bool = field(
        default=False,
        metadata={
            "help": "also learn from text, CF, EASE and popularity features multiplied by the user's "
            "activity (features.INTERACTION_FEATURES): weights that change with history length"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the user sample"})
    cold: ColdSlots = field(default_factory=ColdSlots)

    def __post_init__(self) -> None:
        if self.train_rounds < 1:
            raise ValueError(f"RankerConfig.train_rounds must be positive, got {self.train_rounds}")
        if not 0 <= self.listwise_weight <= 1:
            raise ValueError(f"RankerConfig.listwise_weight must be in [0, 1], got {self.listwise_weight}")


# ------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class EvalConfig:
    """Cut-offs and options of the evaluation protocol."""

    hr_k: int = field(default=10, metadata={"help": "cut-off of the hit rate"})
    ndcg_k: int = field(default=10, metadata={"help": "cut-off of NDCG"})
    recall_k: int = field(default=50, metadata={"help": "cut-off of recall"})
    coverage_k: int = field(default=10, metadata={"help": "list length counted for catalogue coverage"})
    few_history: int = field(
        default=5, metadata={"help": "users with at most this many training items are also reported alone"}
    )
    cold_quantile: float = field(
        default=0.8, metadata={"help": "cold start: cut at this quantile of interaction times"}
    )
    cold_split_time: int | None = field(
        default=None, metadata={"help": "cold start: cut at this epoch second instead"}
    )
    cold_candidates: Literal["all", "cold"] = field(
        default="all", metadata={"help": "cold start: rank all unseen items, or only the cold ones"}
    )
    max_users: int | None = field(
        default=None, metadata={"help": "evaluate a seeded sample of this many test users"}
    )
    batch_size: int = field(default=256, metadata={"help": "users scored per batch"})
    seed: int = field(default=0, metadata={"help": "seed of the user sample"})

    def __post_init__(self) -> None:
        for name in ("hr_k", "ndcg_k", "recall_k", "coverage_k", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvalConfig.{name} must be positive, got {getattr(self, name)}")
        if self.max_users is not None and self.max_users < 1:
            raise ValueError(f"EvalConfig.max_users must be positive or None, got {self.max_users}")


# ------------------------------------------------------------------------------------ whole
@dataclass(frozen=True)
class RecommenderConfig:
    """Everything ``aigc recommend train``/``eval`` read from ``configs/recommender.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    finetune: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ------------------------------------------------------------------------------------ batch
@dataclass(frozen=True)
class BatchConfig:
    """How the job is cut up and run."""

    k: int = field(default=100, metadata={"help": "items per user"})
    chunk_size: int = field(default=256, metadata={"help": "users per chunk (unit of work and of resume)"})
    engine: Engines = field(default="local", metadata={"help": "local: this process; ray: Ray actors"})
    ray_workers: int | None = field(default=None, metadata={"help": "Ray actors (default: cluster CPUs)"})
    local_workers: int = field(
        default=0,
        metadata={
            "help": "chunks the local engine scores at once, on threads of one process sharing the "
            "loaded model (0: one per CPU core, at most 4); outputs are identical for any count"
        },
    )
    keep_work_dir: bool = field(default=False, metadata={"help": "keep chunk files after success"})
    threads: int | None = field(
        default=1,
        metadata={
            "help": "BLAS/OpenMP threads per scorer (local process or Ray actor); the same setting gives "
            "bit-identical scores on both engines (summation order depends on the thread count); "
            "None: the libraries' default"
        },
    )

    def __post_init__(self) -> None:
        if self.k < 1 or self.chunk_size < 1:
            raise ValueError(f"k and chunk_size must be positive, got {self.k}, {self.chunk_size}")
        if self.local_workers < 0:
            raise ValueError(f"local_workers must be >= 0 (0: one per CPU core), got {self.local_workers}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be positive or None, got {self.threads}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")


def load_settings(path: str | Path | None = None, overrides: list[str] | None = None) -> RecommenderConfig:
    """The settings of ``path`` (default :data:`DEFAULT_CONFIG` when it exists) with ``--set`` overrides.

    Raises:
        core.config.ConfigError: An unknown key or a value of the wrong type.
    """
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    return load_config(RecommenderConfig, path, overrides or [])
