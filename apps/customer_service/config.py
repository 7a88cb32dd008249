"""Typed settings of the support app, loaded from ``configs/customer_service.yaml``.

Every config dataclass of the app lives here, one per component: how documents are cut into
passages (:class:`ChunkConfig`), the lexical index (:class:`BM25Config`), retrieval and fusion
(:class:`RetrievalConfig`), the knowledge-base build (:class:`KBConfig`) and the bot
(:class:`BotConfig` with its :class:`AnswerConfig`, :class:`GateConfig` and :class:`RewriteConfig`),
the knowledge-gap report (:class:`GapsConfig`), the model refresh loop (:class:`RefreshConfig`) and
the hand-off queue's notifications (:class:`QueueConfig`). The YAML file has one section per
top-level dataclass (``bot:``, ``gaps:``, ``refresh:``, ``queue:``). Command lines override single
values with ``--set answer.max_new_tokens=64``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from apps.customer_service.fusion import FieldCombine, Normalization
from core.clustering import ClusterConfig
from core.config import load_config
from core.grounding import DEFAULT_SUPPORT_THRESHOLD, DEFAULT_WORD_COVERAGE
from core.inverse_cloze import InverseClozeConfig
from core.lexical_coverage import SPECIFIC_KINDS
from core.lora import LoraSettings
from core.paths import project_root
from core.query_generation import QuestionGenConfig

CONFIG_FILE = "customer_service.yaml"
AnswerMode = Literal["extractive", "generate"]
ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)
SECTION = "bot"
GAPS_SECTION = "gaps"
REFRESH_SECTION = "refresh"
DraftMode = Literal["generate", "extractive"]
QUEUE_SECTION = "queue"
Mode = Literal["bm25", "dense", "hybrid"]
Fusion = Literal["rrf", "score"]
MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut into passages."""

    max_chars: int = field(
        default=700,
        metadata={"help": "Longest passage in characters, overlap included (MiniLM reads ~256 tokens)"},
    )
    overlap_chars: int = field(
        default=150, metadata={"help": "At most this much of a passage's end starts the next one"}
    )

    def __post_init__(self) -> None:
        if self.max_chars < 50:
            raise ValueError(f"ChunkConfig.max_chars must be at least 50, got {self.max_chars}")
        if not 0 <= self.overlap_chars <= self.max_chars // 2:
            raise ValueError(
                f"ChunkConfig.overlap_chars must be between 0 and max_chars/2 ({self.max_chars // 2}), "
                f"got {self.overlap_chars}"
            )


@dataclass(frozen=True)
class BM25Config:
    """Tokenisation and scoring parameters of the lexical index."""

    k1: float = field(default=1.5, metadata={"help": "BM25 term-frequency saturation"})
    b: float = field(default=0.75, metadata={"help": "BM25 length normalisation (0: none, 1: full)"})
    method: str = field(
        default="lucene", metadata={"help": "bm25s scoring variant: lucene, robertson, atire"}
    )
    stemmer: Literal["snowball", "none"] = field(
        default="snowball", metadata={"help": "snowball (English Snowball stems via NLTK) or none"}
    )
    stopwords: str = field(
        default="en_plus",
        metadata={"help": "bm25s stop-word list: en_plus (NLTK English), en (Lucene), '' (none)"},
    )

    def __post_init__(self) -> None:
        if self.stemmer not in ("snowball", "none"):
            raise ValueError(f"BM25Config.stemmer must be snowball or none, got {self.stemmer!r}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25Config needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")


@dataclass(frozen=True)
class RetrievalConfig:
    """How queries are matched and fused.

    The fusion defaults are provisional, picked on the shipped sample queries (38 paraphrases,
    MiniLM): min-max score fusion with ``dense_weight=0.8`` and ``field_combine="max"`` scored
    MRR@10 0.886, against 0.873 for dense alone, 0.535 for BM25, 0.806 for RRF at the same
    weights and 0.847 with weighted fields; score fusion beat RRF at every weight tried
    (0.5-0.8). Re-choose them on a real dev split (StackFAQ) with
    :mod:`~apps.customer_service.retrieval_eval`.
    """

    mode: Mode = field(default="hybrid", metadata={"help": "bm25 | dense | hybrid"})
    fusion: Fusion = field(
        default="score", metadata={"help": "hybrid fusion: rrf (reciprocal rank) or score (normalised sum)"}
    )
    rrf_k: int = field(default=60, metadata={"help": "RRF smoothing constant"})
    normalization: Normalization = field(
        default="minmax", metadata={"help": "score fusion: minmax or zscore over the candidate pool"}
    )
    dense_weight: float = field(
        default=0.8, metadata={"help": "Weight of dense vs BM25 (1 - weight) in both fusions"}
    )
    field_combine: FieldCombine = field(
        default="max", metadata={"help": "Question/content field combination: max or weighted"}
    )
    question_weight: float = field(
        default=0.5, metadata={"help": "Weight of the question field when field_combine=weighted"}
    )
    candidates: int = field(default=50, metadata={"help": "Candidates per retriever before fusion"})

    def __post_init__(self) -> None:
        checks = {
            "mode": self.mode in MODES,
            "fusion": self.fusion in ("rrf", "score"),
            "normalization": self.normalization in ("minmax", "zscore"),
            "field_combine": self.field_combine in ("max", "weighted"),
            "rrf_k": self.rrf_k >= 1,
            "candidates": self.candidates >= 1,
            "dense_weight": 0.0 <= self.dense_weight <= 1.0,
            "question_weight": 0.0 <= self.question_weight <= 1.0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"RetrievalConfig: invalid value for {bad}: {[getattr(self, n) for n in bad]}")


AdaptQueries = Literal["sentences", "generated", "both"]


@dataclass(frozen=True)
class AdaptConfig:
    """How ``aigc support index --adapt`` adapts the encoder to one knowledge base (settings only:
    adapting is asked for per build, so a later rebuild never re-adapts by itself).

    The encoder's LoRA is trained with in-batch negatives on (query, entry) pairs whose queries are
    sentences cut from the entries (inverse cloze task, :mod:`core.inverse_cloze`), questions the
    answer model writes, or both (``queries``); the adapter is kept only when it lifts recall@1 on
    a held-out split of the KB's own questions (curated questions when the KB has enough, else
    questions the answer model wrote for held-out entries) by more than ``min_gain``.
    """

    answer_model: str = field(default="smollm2-135m-instruct", metadata={"help": "Model writing questions"})
    backend: str | None = field(
        default=None, metadata={"help": "Generation backend: auto, llamacpp or torch (None: env or auto)"}
    )
    # 8 minutes of generation: one question an entry costs ~0.6 CPU-seconds, so 2 workers on 2 free
    # cores finish 1,000 entries in ~5 minutes and --adapt stays under 15 (docs/benchmarks/support.md);
    # on a busy machine entries past the budget get no question (they still serve as negatives).
    generation: QuestionGenConfig = field(default_factory=lambda: QuestionGenConfig(max_seconds=480.0))
    queries: AdaptQueries = field(
        default="sentences",
        metadata={
            "help": "Training queries: sentences cut from the entries (inverse cloze task; questions "
            "are then written only for the held-out entries), questions the answer model writes, or both"
        },
    )
    cloze: InverseClozeConfig = field(default_factory=lambda: InverseClozeConfig(per_passage=2))
    heldout_fraction: float = field(
        default=0.2, metadata={"help": "Share of entries whose questions are held out to judge the adapter"}
    )
    judge_all: bool = field(
        default=True,
        metadata={
            "help": "With sentences as training queries and no curated questions, judge on a written "
            "question for every entry (none of them is trained on) instead of the held-out share"
        },
    )
    judge_file: str | None = field(
        default=None,
        metadata={
            "help": "CSV of real questions with their entry ids (query,gold_ids: the retrieval-eval "
            "format) that judge the adapter instead of held-out curated or written ones"
        },
    )
    min_curated: int = field(
        default=20, metadata={"help": "Curated questions needed to hold those out (else generated ones)"}
    )
    min_gain: float = field(
        default=0.0, metadata={"help": "Held-out recall@1 gain the adapter must exceed to be kept"}
    )
    max_p_value: float = field(
        default=0.05,
        metadata={
            "help": "Keep the adapter only when its held-out wins are significant: one-sided exact "
            "sign test on the questions whose rank-1 result changed (1.0: off)"
        },
    )
    filter_top_k: int = field(
        default=0,
        metadata={
            "help": "Train only on generated questions whose entry the frozen encoder ranks in this "
            "top k (round-trip filter; 0: off)"
        },
    )
    epochs: int = field(default=2, metadata={"help": "Passes over the training pairs"})
    batch_size: int = field(default=32, metadata={"help": "Pairs per batch (the in-batch negatives)"})
    # chosen on the validation questions of COVID-QA and StackFAQ (docs/benchmarks/support.md)
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate of the LoRA weights"})
    temperature: float = field(default=0.05, metadata={"help": "Softmax temperature of InfoNCE"})
    max_query_length: int = field(default=48, metadata={"help": "Token limit of a question when training"})
    max_item_length: int = field(default=128, metadata={"help": "Token limit of an entry when training"})
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = field(default=0, metadata={"help": "Seed of the held-out split, batches and LoRA init"})

    def __post_init__(self) -> None:
        checks = {
            "heldout_fraction": 0.0 < self.heldout_fraction < 1.0,
            "max_p_value": 0.0 < self.max_p_value <= 1.0,
            "min_curated": self.min_curated >= 1,
            "filter_top_k": self.filter_top_k >= 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "temperature": self.temperature > 0,
            "queries": self.queries in get_args(AdaptQueries),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"AdaptConfig: invalid value for {bad}: {[getattr(self, n) for n in bad]}")


@dataclass(frozen=True)
class KBConfig:
    """How a knowledge base is built."""

    embedding_model: str = field(default="minilm-l6", metadata={"help": "Encoder spec for the dense index"})
    batch_size: int = field(default=64, metadata={"help": "Texts per embedding batch"})
    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    bm25: BM25Config = field(default_factory=BM25Config)
    calibration_queries: str | None = field(
        default=None,
        metadata={"help": "In-scope CSV (query,gold_ids): recalibrate the answer gate when entries change"},
    )
    calibration_out_of_scope: str | None = field(
        default=None, metadata={"help": "Out-of-scope CSV (query) used with calibration_queries"}
    )
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


@dataclass(frozen=True)
class AnswerConfig:
    """How answers are written from retrieved passages (when no curated FAQ answer is quoted).

    ``mode: extractive`` (the default) quotes the passage sentences that best answer the question;
    ``mode: generate`` lets the answer model write the answer, and keeps only the sentences the
    grounding verifier finds supported by a cited passage (falling back to the extractive answer
    when too little survives). A KB can choose its own mode in ``answering.json``
    (``aigc support answering --kb-dir DIR --mode generate``).
    """

    mode: AnswerMode = field(
        default="extractive",
        metadata={"help": "extractive (quote passage sentences) or generate (verified generated answers)"},
    )
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "Causal LM spec for answers"})
    adapter: str | None = field(
        default=None, metadata={"help": "LoRA adapter directory for the answer model"}
    )
    backend: str | None = field(
        default=None, metadata={"help": "Generation backend: auto, llamacpp or torch (None: env or auto)"}
    )
    # 2 passages and 64 tokens (were 3 and 96): the generated-answer latency target (p50 <= 2 s on
    # 2 cores) with the same gold-citation rate; see docs/benchmarks/support_latency.md.
    passages: int = field(default=2, metadata={"help": "Retrieved passages given to the model"})
    passage_chars: int = field(default=600, metadata={"help": "Characters kept of each passage"})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest generated answer, in tokens"})
    repetition_penalty: float = field(default=1.1, metadata={"help": "Decoding repetition penalty"})
    # Extractive answers (core.extractive.SentencePicker).
    sentences_per_passage: int = field(default=3, metadata={"help": "Most sentences quoted from one passage"})
    max_answer_chars: int = field(default=600, metadata={"help": "Longest extractive answer, in characters"})
    passage_margin: float = field(
        default=0.06,
        metadata={"help": "A second passage is quoted when its best sentence scores within this of the best"},
    )
    min_sentence_score: float = field(
        default=0.15,
        metadata={"help": "Below this question-sentence score nothing in the passages answers: hand off"},
    )
    # Verified generation (core.grounding.GroundingVerifier).
    support_threshold: float = field(
        default=DEFAULT_SUPPORT_THRESHOLD,
        metadata={"help": "Cosine a generated sentence needs to its best cited passage sentence"},
    )
    word_coverage: float = field(
        default=DEFAULT_WORD_COVERAGE,
        metadata={"help": "Share of a generated sentence's content words its cited text must contain"},
    )
    min_supported_share: float = field(
        default=0.5,
        metadata={"help": "Below this share of supported sentences a generated answer is replaced"},
    )


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the confidence gate; a KB's ``calibration.json`` replaces the defaults."""

    handoff_threshold: float = field(
        default=0.5, metadata={"help": "Below this confidence the bot hands off instead of answering"}
    )
    verbatim_margin: float = field(
        default=0.25,
        metadata={"help": "A top FAQ hit leading the second by this much is returned verbatim"},
    )
    use_calibration: bool = field(
        default=True, metadata={"help": "Read thresholds from calibration.json in the KB dir when present"}
    )
    out_of_scope_ratio: float = field(
        default=0.5,
        metadata={
            "help": "A gate hand-off below this fraction of the hand-off threshold is reported as "
            "out_of_scope, above it as low_confidence"
        },
    )
    detect_human_request: bool = field(
        default=True,
        metadata={"help": "Hand off at once (reason asked_for_human) when the customer asks for a person"},
    )
    specifics: str = field(
        default="name",
        metadata={
            "help": "Kinds of question specifics a verbatim FAQ answer must mention (comma list of "
            "name, number, rare; '' turns the check off): core/lexical_coverage.py"
        },
    )
    max_term_share: float = field(
        default=0.0,
        metadata={
            "help": "A specific mentioned in more than this share of KB entries is not required; one "
            "the KB never mentions always is (0: only those; chosen on validation, "
            "docs/benchmarks/support.md)"
        },
    )
    uncovered_penalty: float = field(
        default=0.5,
        metadata={"help": "Confidence factor when the question names a specific the FAQ does not cover"},
    )

    def __post_init__(self) -> None:
        if not 0 <= self.out_of_scope_ratio <= 1:
            raise ValueError(
                f"GateConfig.out_of_scope_ratio must be in [0, 1], got {self.out_of_scope_ratio}"
            )
        unknown = set(self.specific_kinds) - set(SPECIFIC_KINDS)
        if unknown:
            raise ValueError(
                f"GateConfig.specifics: unknown kind(s) {sorted(unknown)}; use {', '.join(SPECIFIC_KINDS)}"
            )
        if not 0 <= self.max_term_share <= 1 or not 0 <= self.uncovered_penalty <= 1:
            raise ValueError(
                "GateConfig.max_term_share and uncovered_penalty must be in [0, 1], got "
                f"{self.max_term_share} and {self.uncovered_penalty}"
            )

    @property
    def specific_kinds(self) -> tuple[str, ...]:
        """The kinds named in :attr:`specifics`."""
        return tuple(k.strip() for k in self.specifics.split(",") if k.strip())


@dataclass(frozen=True)
class RewriteConfig:
    """Follow-up rewriting before retrieval."""

    enabled: bool = field(default=True, metadata={"help": "Rewrite short or anaphoric follow-ups"})
    max_words: int = field(default=3, metadata={"help": "Questions this short count as follow-ups"})
    max_terms: int = field(default=8, metadata={"help": "Key terms carried over from the last user turn"})


@dataclass(frozen=True)
class BotConfig:
    """Everything the :class:`~apps.customer_service.bot.SupportBot` needs besides the KB."""

    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    rewrite: RewriteConfig = field(default_factory=RewriteConfig)
    intent_model: str | None = field(
        default=None,
        metadata={
            "help": "TextClassifier directory for intents (None: $AIGC_DATA_DIR/support/intents if any)"
        },
    )
    top_k: int = field(default=5, metadata={"help": "Hits retrieved (and shown as sources at most)"})
    max_question_chars: int = field(
        default=4000, metadata={"help": "Longer questions are truncated, with a notice"}
    )


@dataclass(frozen=True)
class GapsConfig:
    """The knowledge-gap report (:mod:`apps.customer_service.gaps`): which questions count, how they
    are clustered, and how each cluster's draft answer is written."""

    low_confidence: float = field(
        default=0.5,
        metadata={"help": "An answer below this confidence counts as not answered (hand-offs always do)"},
    )
    clustering: ClusterConfig = field(
        # Threshold chosen on BANKING77 train questions (docs/benchmarks/support.md, gap report).
        default_factory=lambda: ClusterConfig(distance_threshold=0.45),
        metadata={"help": "How questions are grouped (core.clustering.ClusterConfig)"},
    )
    nearest: int = field(default=3, metadata={"help": "Nearest KB entries listed per cluster"})
    examples: int = field(default=3, metadata={"help": "Example questions shown per cluster in tables"})
    label_terms: int = field(default=3, metadata={"help": "Distinctive terms in a cluster's label"})
    draft: DraftMode = field(
        default="generate",
        metadata={"help": "generate (answer model, verified) or extractive (quoted passage sentences)"},
    )
    recheck: bool = field(
        default=True,
        metadata={"help": "Ask stored questions again: ones the current KB now answers do not count"},
    )
    max_questions: int = field(
        default=5000, metadata={"help": "Cluster at most this many (the most recent) stored questions"}
    )

    def __post_init__(self) -> None:
        checks = {
            "low_confidence": 0.0 <= self.low_confidence <= 1.0,
            "nearest": self.nearest >= 1,
            "examples": self.examples >= 1,
            "label_terms": self.label_terms >= 1,
            "draft": self.draft in ("generate", "extractive"),
            "max_questions": self.max_questions >= 2,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"GapsConfig: invalid value for {bad}: {[getattr(self, n) for n in bad]}")


@dataclass(frozen=True)
class RefreshConfig:
    """``aigc support refresh``: what the intent model and the answer adapter are retrained on, the
    frozen held-out set, and the guard that promotes a new version only if it is not worse."""

    intents_data: str | None = field(
        default=None,
        metadata={"help": "CSV of text,label utterances the intent model learns (None: the shipped sample)"},
    )
    pairs_data: str | None = field(
        default=None,
        metadata={"help": "Extra question,answer file (past dialogues) for the answer adapter"},
    )
    encoder: str = field(default="minilm-l6", metadata={"help": "Encoder of the intent classifier"})
    answer_model: str | None = field(
        default=None, metadata={"help": "Base model of the answer adapter (None: bot answer.model)"}
    )
    heldout_fraction: float = field(
        default=0.2, metadata={"help": "Share of the data frozen as the held-out set at the first refresh"}
    )
    max_heldout_pairs: int = field(
        default=20, metadata={"help": "Most question-answer pairs held out (each is generated twice)"}
    )
    min_pairs: int = field(
        default=5, metadata={"help": "Fewer training pairs than this: the answer adapter is not retrained"}
    )
    tolerance: float = field(
        default=0.0,
        metadata={"help": "Drop allowed on each held-out score (0-1 scale; BLEU counts as BLEU/100)"},
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer generated when evaluating"})
    seed: int = field(default=42, metadata={"help": "Seed of the held-out split"})
    intent_training: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "ClassifierTrainConfig values, e.g. {epochs: 3} (--set intent_training.epochs=3)"},
    )
    answer_training: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "CausalLMTrainConfig values, e.g. {epochs: 1} (--set answer_training.epochs=1)"},
    )

    def __post_init__(self) -> None:
        checks = {
            "heldout_fraction": 0.0 < self.heldout_fraction < 1.0,
            "max_heldout_pairs": self.max_heldout_pairs >= 1,
            "min_pairs": self.min_pairs >= 2,
            "tolerance": 0.0 <= self.tolerance <= 1.0,
            "max_new_tokens": self.max_new_tokens >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"RefreshConfig: invalid value for {bad}: {[getattr(self, n) for n in bad]}")


@dataclass(frozen=True)
class QueueConfig:
    """Notifications of new hand-offs: one webhook POST per hand-off, through a durable outbox."""

    webhook_url_env: str = field(
        default="AIGC_SUPPORT_HANDOFF_WEBHOOK_URL",
        metadata={
            "help": "Environment variable holding the webhook URL (URLs often hold a token, so the URL "
            "itself is never in a config file); unset or empty: no notifications"
        },
    )
    webhook_token_env: str = field(
        default="", metadata={"help": "Environment variable whose value is sent as 'Authorization: Bearer'"}
    )
    webhook_allow: tuple[str, ...] = field(
        default=(),
        metadata={"help": "Hosts, addresses or networks exempt from the public-address rule (10.0.0.0/8)"},
    )
    webhook_timeout_s: float = field(default=5.0, metadata={"help": "Seconds to connect and per read"})
    webhook_max_attempts: int = field(default=8, metadata={"help": "Attempts before a delivery is dead"})
    webhook_backoff_s: float = field(default=2.0, metadata={"help": "Wait after the first failed attempt"})
    webhook_max_backoff_s: float = field(default=600.0, metadata={"help": "Longest wait between attempts"})
    poll_s: float = field(
        default=5.0, metadata={"help": "Seconds between outbox passes of a sender (new hand-offs wake it)"}
    )

    def __post_init__(self) -> None:
        if self.webhook_timeout_s <= 0 or self.poll_s <= 0:
            raise ValueError("QueueConfig: webhook_timeout_s and poll_s must be positive")


def default_config_path() -> Path:
    """``configs/customer_service.yaml`` in the checkout."""
    return project_root() / "configs" / CONFIG_FILE


def load_bot_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> BotConfig:
    """Defaults, then the ``bot:`` section of ``path`` (default :func:`default_config_path` if it
    exists), then ``a.b=c`` overrides.

    Raises:
        core.config.ConfigError: A bad file, key or value (naming it).
    """
    if path is None and default_config_path().is_file():
        path = default_config_path()
    return load_config(BotConfig, path, overrides=overrides, section=SECTION)


def load_gaps_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> GapsConfig:
    """Defaults, then the ``gaps:`` section of ``path`` (default :func:`default_config_path` if it
    exists), then ``a.b=c`` overrides (e.g. ``clustering.distance_threshold=0.4``).

    Raises:
        core.config.ConfigError: A bad file, key or value (naming it).
    """
    if path is None and default_config_path().is_file():
        path = default_config_path()
    return load_config(GapsConfig, path, overrides=overrides, section=GAPS_SECTION)


def load_refresh_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RefreshConfig:
    """Defaults, then the ``refresh:`` section of ``path`` (default :func:`default_config_path` if it
    exists), then ``a.b=c`` overrides.

    Raises:
        core.config.ConfigError: A bad file, key or value (naming it).
    """
    if path is None and default_config_path().is_file():
        path = default_config_path()
    return load_config(RefreshConfig, path, overrides=overrides, section=REFRESH_SECTION)


def load_queue_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> QueueConfig:
    """Defaults, then the ``queue:`` section of ``path`` (default: the shipped file), then ``a=b`` overrides.

    Raises:
        core.config.ConfigError: A bad file, key or value (naming it).
    """
    if path is None and default_config_path().is_file():
        path = default_config_path()
    return load_config(QueueConfig, path, overrides=overrides, section=QUEUE_SECTION)


__all__ = [
    "ANSWER_MODES",
    "MODES",
    "AdaptConfig",
    "AnswerConfig",
    "AnswerMode",
    "BM25Config",
    "BotConfig",
    "ChunkConfig",
    "DraftMode",
    "Fusion",
    "GapsConfig",
    "GateConfig",
    "KBConfig",
    "Mode",
    "RefreshConfig",
    "QueueConfig",
    "RetrievalConfig",
    "RewriteConfig",
    "default_config_path",
    "load_bot_config",
    "load_gaps_config",
    "load_refresh_config",
    "load_queue_config",
]
