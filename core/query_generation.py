"""Synthetic questions for passages (doc2query): what a user might ask that a passage answers.

A causal LM (the answer model, SmolLM2-135M-Instruct by default) reads each passage, cut to
``passage_chars`` characters, and writes ``questions`` short questions, one per line, greedily. The
lines are cleaned (numbering, bullets and quotes dropped), kept only when they read as a question of
a sane length, and de-duplicated per passage. The questions train a retriever to map real questions
onto passages that have none (:mod:`core.finetune.contrastive`).

Generation is the slow part (one prompt per passage, ``max_new_tokens`` each); ``max_seconds``
bounds it: passages not reached in time get no questions, and the result says how many were done.

Example:
    >>> gen = Generator()
    >>> result = generate_questions(gen, ["Refunds take 5-7 business days after we receive the item."])
    >>> result.questions[0]
    ['How long does a refund take?', ...]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

PROMPT = (
    "Here is a help-center answer:\n\n{passage}\n\n"
    "Write {n} different short questions a user could ask that this answer solves. One question per line."
)
_PREFIX = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|q\d*[.:)]|question\s*\d*\s*[.:)])\s*", re.IGNORECASE)


@dataclass(frozen=True)
class QuestionGenConfig:
    """How synthetic questions are generated."""

    questions: int = field(default=2, metadata={"help": "Questions asked for per passage."})
    max_new_tokens: int = field(default=40, metadata={"help": "Token budget of one passage's answer."})
    passage_chars: int = field(
        default=600, metadata={"help": "Characters of the passage shown to the model."}
    )
    repetition_penalty: float = field(default=1.1, metadata={"help": "Decoding repetition penalty."})
    min_chars: int = field(default=12, metadata={"help": "Shortest question kept, in characters."})
    max_chars: int = field(default=200, metadata={"help": "Longest question kept, in characters."})
    max_seconds: float | None = field(
        default=None, metadata={"help": "Stop generating after this many seconds (None: no limit)."}
    )

    def __post_init__(self) -> None:
        checks = {
            "questions": self.questions >= 1,
            "max_new_tokens": self.max_new_tokens >= 8,
            "passage_chars": self.passage_chars >= 50,
            "min_chars": 1 <= self.min_chars < self.max_chars,
            "max_seconds": self.max_seconds is None or self.max_seconds > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"QuestionGenConfig: invalid value for {bad}")


@dataclass
class GeneratedQuestions:
    """Questions per passage (empty where none survived or time ran out) and what it cost."""

    questions: list[list[str]]
    attempted: int
    seconds: float
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        """Questions kept over all passages."""
        return sum(len(q) for q in self.questions)


def prompt_for(passage: str, config: QuestionGenConfig) -> str:
    """The user message asking for ``config.questions`` questions about ``passage``."""
    text = " ".join(passage.split())
    if len(text) > config.passage_chars:
        text = text[: config.passage_chars].rsplit(" ", 1)[0] + " …"
    return PROMPT.format(passage=text, n=config.questions)


def parse_questions(text: str, config: QuestionGenConfig | None = None) -> list[str]:
    """Clean questions out of a model's answer: one per line, numbering dropped, de-duplicated.

    A line is kept when, after cleaning, it is ``min_chars``-``max_chars`` long and ends with a
    question mark (text after the first question mark is dropped); at most ``questions`` are kept.
    """
    config = config or QuestionGenConfig()
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = _PREFIX.sub("", line).strip().strip("\"'`*").strip()
        if "?" not in line:
            continue
        line = line[: line.index("?") + 1].strip()
        key = " ".join(line.lower().split())
        if not config.min_chars <= len(line) <= config.max_chars or key in seen:
            continue
        seen.add(key)
        out.append(line)
        if len(out) == config.questions:
            break
    return out


def generate_questions(
    generator: Any,
    passages: Sequence[str],
    config: QuestionGenConfig | None = None,
    show_progress_bar: bool = False,
) -> GeneratedQuestions:
    """Ask ``generator`` for questions about each passage, one prompt per passage, in order.

    Args:
        generator: A :class:`core.generation.Generator` (or anything with its ``generate``).
        passages: The passage texts.
        config: How many questions, token and time budgets, filters.
        show_progress_bar: Show a tqdm bar.

    Returns:
        Questions per passage; passages past ``config.max_seconds`` get none (``attempted`` says
        how many were tried).
    """
    config = config or QuestionGenConfig()
    started = time.perf_counter()
    questions: list[list[str]] = [[] for _ in passages]
    attempted = tokens = 0
    for i, passage in enumerate(tqdm(passages, desc="Generating questions", disable=not show_progress_bar)):
        if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
            logger.warning(
                "Question generation ran out of time", extra={"done": attempted, "passages": len(passages)}
            )
            break
        result = generator.generate(
            prompt_for(passage, config),
            max_new_tokens=config.max_new_tokens,
            repetition_penalty=config.repetition_penalty,
        )
        questions[i] = parse_questions(result.text, config)
        attempted += 1
        tokens += result.completion_tokens
    seconds = time.perf_counter() - started
    out = GeneratedQuestions(questions, attempted, seconds, tokens)
    logger.info(
        "Generated questions",
        extra={"passages": len(passages), "attempted": attempted, "questions": out.total, "seconds": seconds},
    )
    return out


__all__ = [
    "PROMPT",
    "GeneratedQuestions",
    "QuestionGenConfig",
    "generate_questions",
    "parse_questions",
    "prompt_for",
]
