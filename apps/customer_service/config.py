"""Typed settings of the support bot (:class:`BotConfig`), loaded from ``configs/customer_service.yaml``.

The YAML file has one section per dataclass (``bot:`` here; the KB build settings stay in
:class:`~apps.customer_service.knowledge_base.KBConfig`). Command lines override single values with
``--set answer.max_new_tokens=64``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from apps.customer_service.retrieval import RetrievalConfig
from core.config import load_config
from core.grounding import DEFAULT_SUPPORT_THRESHOLD, DEFAULT_WORD_COVERAGE
from core.paths import project_root

CONFIG_FILE = "customer_service.yaml"
AnswerMode = Literal["extractive", "generate"]
ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)
SECTION = "bot"


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


__all__ = [
    "ANSWER_MODES",
    "AnswerConfig",
    "AnswerMode",
    "BotConfig",
    "GateConfig",
    "RewriteConfig",
    "default_config_path",
    "load_bot_config",
]
