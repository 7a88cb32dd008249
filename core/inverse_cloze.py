"""Inverse cloze task (ICT): (sentence, the rest of its passage) training pairs without any model.

A sentence taken out of a passage is a pseudo-query whose positive is the passage it came from
(Lee, Chang & Toutanova 2019, "Latent Retrieval for Weakly Supervised Open Domain QA"). Most of
the time the sentence is removed from the positive, so the encoder must match it by meaning and
by the passage's vocabulary rather than by copying; sometimes it is kept, so that an exact match
still scores high. Contrastive training on such pairs adapts an encoder to a corpus's vocabulary
and topics, which helps when no good question writer is at hand
(:mod:`apps.customer_service.adaptation`, ``docs/benchmarks/support.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.sentences import split_sentences

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InverseClozeConfig:
    """How ICT pairs are cut from passages."""

    per_passage: int = field(default=4, metadata={"help": "Most sentences used as queries per passage."})
    keep_sentence: float = field(
        default=0.1, metadata={"help": "Share of pairs whose positive still contains the query sentence."}
    )
    min_words: int = field(default=5, metadata={"help": "Shortest sentence used as a query, in words."})

    def __post_init__(self) -> None:
        checks = {
            "per_passage": self.per_passage >= 1,
            "keep_sentence": 0.0 <= self.keep_sentence <= 1.0,
            "min_words": self.min_words >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"InverseClozeConfig: invalid value for {bad}: {[getattr(self, n) for n in bad]}"
            )


@dataclass(frozen=True)
class ClozePair:
    """One pair: the query sentence, the positive text and the index of the passage it came from."""

    query: str
    context: str
    source: int


def inverse_cloze_pairs(
    passages: Sequence[str],
    config: InverseClozeConfig | None = None,
    seed: int = 0,
    prefixes: Sequence[str] | None = None,
) -> list[ClozePair]:
    """ICT pairs of every passage with at least two sentences of ``config.min_words`` words.

    Args:
        passages: Passage texts (sentences are split with :func:`core.sentences.split_sentences`).
        config: How many sentences per passage and how often the sentence stays in its context.
        seed: Seed of the sentence choice and of the keep/remove draws (same seed, same pairs).
        prefixes: Text put before each passage's context (a title), one per passage, or ``None``.

    Returns:
        Pairs in passage order. Only sentences of ``config.min_words`` words become queries; a
        context keeps every other sentence. A passage with fewer than two such sentences gives none
        (what would be left of it is too little to match).
    """
    config = config or InverseClozeConfig()
    if prefixes is not None and len(prefixes) != len(passages):
        raise ValueError(f"{len(prefixes)} prefixes for {len(passages)} passages")
    rng = np.random.default_rng(seed)
    pairs: list[ClozePair] = []
    for index, passage in enumerate(passages):
        sentences = [s.text.strip() for s in split_sentences(passage)]
        long = [j for j, s in enumerate(sentences) if len(s.split()) >= config.min_words]
        if len(long) < 2:
            continue
        prefix = f"{prefixes[index]}\n" if prefixes is not None and prefixes[index] else ""
        for chosen in rng.permutation(long)[: config.per_passage].tolist():
            keep = rng.random() < config.keep_sentence
            rest = sentences if keep else [s for j, s in enumerate(sentences) if j != chosen]
            pairs.append(ClozePair(sentences[chosen], prefix + " ".join(rest), index))
    logger.info("Inverse cloze pairs", extra={"passages": len(passages), "pairs": len(pairs)})
    return pairs


__all__ = ["ClozePair", "InverseClozeConfig", "inverse_cloze_pairs"]
