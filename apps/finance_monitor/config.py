"""Settings of the finance monitor: a frozen dataclass per component, values in configs/finance_monitor.yaml.

:class:`FinanceTrainConfig` is the ``train:`` section (``aigc finance train --set epochs=5``), with
named presets on top of it (:data:`TRAIN_PRESETS`, ``aigc finance train --preset accurate``),
:class:`MonitorConfig` the ``monitor:`` section (``aigc finance monitor --set webhook_url=...``) with
the alert digests' :class:`DigestConfig` inside it (``--set digest.generate=true``);
:func:`core.config.load_config` reads them with dotted overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apps.finance_monitor.datasets import Dedup
from apps.finance_monitor.presets import DEFAULT_PRESET, preset_overrides
from core.bus import BusSettings
from core.config import apply_overrides, from_dict, load_config, to_dict
from core.finetune import ClassifierTrainConfig
from core.grounding import DEFAULT_SUPPORT_THRESHOLD, DEFAULT_WORD_COVERAGE
from core.models import DEFAULT_ENCODER, DEFAULT_GENERATOR
from core.precision import InferencePrecision

#: Consumer group (Redis) / durable consumer (NATS) of ``aigc finance monitor --source``.
BUS_GROUP = "aigc-finance-monitor"
#: The app's settings file (sections ``train:`` and ``monitor:``).
CONFIG_FILE = Path(__file__).resolve().parents[2] / "configs" / "finance_monitor.yaml"


@dataclass(frozen=True)
class FinanceTrainConfig(ClassifierTrainConfig):
    """Training settings of a finance classifier (the core classifier's, plus data handling)."""

    model: str = field(
        default=DEFAULT_ENCODER, metadata={"help": "Encoder to fine-tune (short name or dir)."}
    )
    dedup: Dedup = field(
        default="text",
        metadata={"help": "Drop repeated texts before the split: none | exact | text (conflicts dropped)."},
    )
    calibrate: bool = field(default=True, metadata={"help": "Fit a temperature per head on validation."})
    ensemble_seeds: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "Train one model per seed, all on the same validation split, and average their "
            "calibrated probabilities (empty: one model, trained with seed). Scoring costs one "
            "encoder pass per member."
        },
    )
    refit: bool = field(
        default=False,
        metadata={
            "help": "First a run with the validation split chooses the epoch count and fits the "
            "temperatures; then the model (or each ensemble member) trains on every row for that "
            "many epochs and keeps those temperatures. Costs one extra run; the validation scores "
            "reported are the first run's."
        },
    )
    teacher: str | None = field(
        default=None,
        metadata={
            "help": "Distillation: a trained finance model directory (one model or an ensemble) whose "
            "calibrated probabilities on the training rows join the labels as targets "
            "(distill_weight sets the mix). The teacher scores every training row first."
        },
    )

    transfer: str | None = field(
        default=None,
        metadata={
            "help": "Distillation's transfer set: a file of unlabelled in-domain texts (column 'text'; "
            "CSV, Parquet or JSON Lines) that the teacher labels. They train on its probabilities "
            "alone, are never held out for validation, and texts already in the labelled data are "
            "dropped. Needs teacher."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.transfer and not self.teacher:
            raise ValueError(
                f"{type(self).__name__}.transfer needs a teacher to label its texts (set teacher)"
            )
        if len(set(self.ensemble_seeds)) != len(self.ensemble_seeds):
            raise ValueError(
                f"{type(self).__name__}.ensemble_seeds repeats a seed: {list(self.ensemble_seeds)!r}"
            )
        if self.refit and self.val_fraction <= 0:
            raise ValueError(
                f"{type(self).__name__}.refit needs a validation split to choose epochs on "
                f"(val_fraction > 0, got {self.val_fraction!r})"
            )


def load_train_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), preset: str = DEFAULT_PRESET
) -> FinanceTrainConfig:
    """Training settings: defaults, then ``path``'s ``train:`` section, then ``preset``, then ``overrides``.

    The preset comes after the file so that ``--preset accurate`` replaces the shipped file's
    ``model`` and ``lr``; ``--set`` still has the last word (``--preset accurate --set epochs=2``).

    Raises:
        ConfigError: Unknown preset, bad file or bad override (names the file or key).
    """
    fields = preset_overrides(preset)
    from_file = load_config(FinanceTrainConfig, path, section="train")
    return from_dict(FinanceTrainConfig, apply_overrides({**to_dict(from_file), **fields}, overrides))


@dataclass(frozen=True)
class DigestConfig:
    """Settings of alert digests (``monitor: digest:``; see :mod:`apps.finance_monitor.digests`)."""

    enabled: bool = field(default=True, metadata={"help": "Compute a digest with every alert."})
    generate: bool = field(
        default=False,
        metadata={
            "help": "Let the answer model write the summary (checked sentence by sentence; extractive "
            "when nothing survives). Off: representative sentences chosen by embedding centrality."
        },
    )
    encoder: str = field(
        default=DEFAULT_ENCODER, metadata={"help": "Sentence encoder of centrality, clusters and checks."}
    )
    max_sentences: int = field(default=4, metadata={"help": "Most summary sentences."})
    max_stories: int = field(
        default=200, metadata={"help": "Most stories (near-duplicate groups) embedded per digest."}
    )
    cluster_similarity: float = field(
        default=0.85, metadata={"help": "Headline cosine at which two stories join one cluster."}
    )
    top_entities: int = field(default=8, metadata={"help": "Entities listed."})
    payload_clusters: int = field(default=8, metadata={"help": "Clusters sent with the webhook."})
    model: str = field(default=DEFAULT_GENERATOR, metadata={"help": "Answer model (generate: true)."})
    backend: str | None = field(
        default=None, metadata={"help": "Generation backend: auto, llamacpp or torch (None: env or auto)."}
    )
    threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads of llama.cpp generation (None: all; 1 is fastest on a busy machine)."},
    )
    prompt_stories: int = field(default=8, metadata={"help": "Headlines shown to the answer model."})
    max_new_tokens: int = field(default=120, metadata={"help": "Longest generated summary, in tokens."})
    support_threshold: float = field(
        default=DEFAULT_SUPPORT_THRESHOLD, metadata={"help": "Cosine a supported sentence reaches."}
    )
    word_coverage: float = field(
        default=DEFAULT_WORD_COVERAGE,
        metadata={"help": "Share of a sentence's content words its cited items must hold."},
    )


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of ``aigc finance monitor`` (section ``monitor:`` of configs/finance_monitor.yaml)."""

    watch_dir: str = field(
        default="", metadata={"help": "Folder of news files; empty: DATA_DIR/finance/inbox."}
    )
    sentiment_model: str = field(
        default="",
        metadata={
            "help": "Sentiment (or two-head) model dir; empty: DATA_DIR/finance/models/news if present, "
            "else DATA_DIR/finance/models/sentiment."
        },
    )
    topic_model: str = field(
        default="", metadata={"help": "Topic model dir; empty: DATA_DIR/finance/models/topic if present."}
    )
    rules: str = field(default="", metadata={"help": "Alert rules YAML; empty: the shipped sample rules."})
    watchlist: str = field(
        default="",
        metadata={
            "help": "Watch list CSV (ticker,name,aliases) to link news to companies; empty: cashtags and "
            "the items' tickers only. configs/finance_watchlist.csv lists 121 large companies."
        },
    )
    batch_size: int = field(
        default=256,
        metadata={
            "help": "Items per scoring batch: one transaction (its texts are sorted by token count, then "
            "split into forward passes of model_batch_size)."
        },
    )
    model_batch_size: int = field(
        default=32,
        metadata={
            "help": "Texts per forward pass of the model. Each pass pads to its longest text: one pass "
            "over a 256-item batch cost 2.3x the CPU of passes of 32 (docs/benchmarks/finance.md)."
        },
    )
    model_precision: InferencePrecision = field(
        default="auto",
        metadata={
            "help": "Arithmetic of the model: auto (bf16 on a CPU with AVX512-BF16/AMX, else fp32), fp32, "
            "bf16, or int8 (dynamic quantisation of the encoder: 0.55x the CPU of fp32, but it changed "
            "3-5 % of the sentiment labels on TFNS and PhraseBank, docs/benchmarks/finance.md: opt in)."
        },
    )
    model_workers: int = field(
        default=0,
        metadata={
            "help": "Forward passes run at once, one thread and one core each; 0: one per CPU core this "
            "process may use (at most 4). 1: one pass at a time on torch's own threads."
        },
    )
    poll_interval_s: float = field(default=2.0, metadata={"help": "Seconds between folder scans (--follow)."})
    min_file_age_s: float = field(default=1.0, metadata={"help": "Skip files modified more recently."})
    dedup_threshold: float = field(default=0.6, metadata={"help": "Headline similarity of near-duplicates."})
    webhook_url: str = field(
        default="",
        metadata={
            "help": "POST alerts here as JSON; empty: the URL in $AIGC_FINANCE_WEBHOOK_URL, else no webhook. "
            "A URL holding a token is better kept in that variable than in a config file."
        },
    )
    webhook_token_env: str = field(
        default="",
        metadata={"help": "Environment variable whose value is sent as 'Authorization: Bearer <value>'."},
    )
    webhook_timeout_s: float = field(
        default=5.0, metadata={"help": "Seconds to connect and per read (webhooks and alert channels)."}
    )
    webhook_max_attempts: int = field(default=8, metadata={"help": "Attempts before a delivery is dead."})
    webhook_backoff_s: float = field(default=2.0, metadata={"help": "Wait after the first failed attempt."})
    webhook_max_backoff_s: float = field(default=600.0, metadata={"help": "Longest wait between attempts."})
    dashboard_url: str = field(
        default="",
        metadata={
            "help": "Base URL of the Streamlit suite (https://monitor.example.com): alert messages in Slack, "
            "Teams and e-mail link to the alert there; empty: no link."
        },
    )
    max_db_failures: int = field(
        default=5, metadata={"help": "--follow gives up after this many cycles failing on the database."}
    )
    digest: DigestConfig = field(default_factory=DigestConfig, metadata={"help": "Alert digests."})
    bus: BusSettings = field(
        default_factory=lambda: BusSettings(group=BUS_GROUP),
        metadata={"help": "Consumer settings of --source redis://... or nats://... (see core.bus)."},
    )
