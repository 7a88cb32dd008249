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
import multiprocessing
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.progress import progress_bar

logger = logging.getLogger(__name__)

PROMPT = (
    "Here is a help-center answer:\n\n{passage}\n\nWrite {what} a user could ask that this answer solves."
)
_PREFIX = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|q\d*[.:)]|question\s*\d*\s*[.:)])\s*", re.IGNORECASE)


@dataclass(frozen=True)
class QuestionGenConfig:
    """How synthetic questions are generated."""

    # One question, 24 new tokens and 400 characters of passage: 0.55 CPU-seconds a passage with one
    # llama.cpp thread (prefill of ~140 prompt tokens is most of it), against 7.4 for 2 questions,
    # 40 tokens and 600 characters with 2 threads on the shared 2 cores (docs/benchmarks/support.md).
    questions: int = field(default=1, metadata={"help": "Questions asked for per passage."})
    max_new_tokens: int = field(default=24, metadata={"help": "Token budget of one passage's answer."})
    passage_chars: int = field(
        default=400, metadata={"help": "Characters of the passage shown to the model."}
    )
    repetition_penalty: float = field(default=1.1, metadata={"help": "Decoding repetition penalty."})
    min_chars: int = field(default=12, metadata={"help": "Shortest question kept, in characters."})
    max_chars: int = field(default=200, metadata={"help": "Longest question kept, in characters."})
    max_seconds: float | None = field(
        default=None, metadata={"help": "Stop generating after this many seconds (None: no limit)."}
    )

    workers: int = field(
        default=2,
        metadata={
            "help": "Generator processes, one llama.cpp thread each (1: in the calling process); "
            "used when no generator is passed in"
        },
    )

    def __post_init__(self) -> None:
        checks = {
            "questions": self.questions >= 1,
            "max_new_tokens": self.max_new_tokens >= 8,
            "passage_chars": self.passage_chars >= 50,
            "min_chars": 1 <= self.min_chars < self.max_chars,
            "max_seconds": self.max_seconds is None or self.max_seconds > 0,
            "workers": self.workers >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"QuestionGenConfig: invalid value for {bad}")


@dataclass
class GeneratedQuestions:
    """Questions per passage (empty where none survived or time ran out) and what it cost.

    ``done[i]`` says whether passage ``i`` was tried (``False``: the time budget ran out first);
    ``cpu_seconds`` is the CPU time of the generation calls (all worker processes together, model
    loading excluded), which depends less on other load than ``seconds`` (wall clock, loading included).
    """

    questions: list[list[str]]
    attempted: int
    seconds: float
    completion_tokens: int = 0
    done: list[bool] = field(default_factory=list)
    cpu_seconds: float = 0.0
    workers: int = 1

    @property
    def total(self) -> int:
        """Questions kept over all passages."""
        return sum(len(q) for q in self.questions)


def prompt_for(passage: str, config: QuestionGenConfig) -> str:
    """The user message asking for ``config.questions`` questions about ``passage``."""
    text = " ".join(passage.split())
    if len(text) > config.passage_chars:
        text = text[: config.passage_chars].rsplit(" ", 1)[0] + " …"
    if config.questions == 1:
        return PROMPT.format(passage=text, what="one short question")
    what = f"{config.questions} different short questions"
    return PROMPT.format(passage=text, what=what) + " One question per line."


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
    started, cpu_started = time.perf_counter(), time.process_time()
    questions: list[list[str]] = [[] for _ in passages]
    done = [False] * len(passages)
    attempted = tokens = 0
    for i, passage in enumerate(
        progress_bar(passages, desc="Generating questions", disable=not show_progress_bar)
    ):
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
        done[i] = True
        attempted += 1
        tokens += result.completion_tokens
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    out = GeneratedQuestions(questions, attempted, seconds, tokens, done, cpu)
    logger.info(
        "Generated questions",
        extra={"passages": len(passages), "attempted": attempted, "questions": out.total, "seconds": seconds},
    )
    return out


# ------------------------------------------------------------------------------ worker processes
_WORKER_GENERATOR: Any = None


def _init_worker(model: str | None, backend: str | None) -> None:
    """Load the answer model once per worker process, with one CPU thread."""
    global _WORKER_GENERATOR
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import torch

    torch.set_num_threads(1)
    from core.generation import Generator

    _WORKER_GENERATOR = Generator(model, backend=backend, n_threads=1)  # type: ignore[arg-type]


def _worker_generate(
    task: tuple[str, QuestionGenConfig, float | None],
) -> tuple[list[str], int, float] | None:
    """One passage's questions in a worker: ``(questions, tokens, CPU seconds)``, or ``None`` when late."""
    passage, config, deadline = task
    if deadline is not None and time.time() > deadline:
        return None
    cpu = time.process_time()
    result = _WORKER_GENERATOR.generate(
        prompt_for(passage, config),
        max_new_tokens=config.max_new_tokens,
        repetition_penalty=config.repetition_penalty,
    )
    return parse_questions(result.text, config), result.completion_tokens, time.process_time() - cpu


def generate_questions_in_workers(
    passages: Sequence[str],
    config: QuestionGenConfig | None = None,
    model: str | None = None,
    backend: str | None = None,
    show_progress_bar: bool = False,
) -> GeneratedQuestions:
    """Like :func:`generate_questions`, with ``config.workers`` processes each running the answer model.

    llama.cpp decodes one sequence at a time and a 135M model cannot keep two threads busy on one
    token (each step is a few milliseconds of work split across threads that wait on each other), so
    two single-threaded processes, each with its own copy of the model (~0.5 GB), get more questions
    per second out of two cores than one process with two threads. Passages are handed out one at a
    time in order; ``config.max_seconds`` counts from the call (model loading included), and
    passages not started by then get no questions.

    Args:
        passages: The passage texts.
        config: How many questions, budgets, filters and ``workers``.
        model: The answer model's spec (default: :data:`core.models.DEFAULT_GENERATOR`).
        backend: Generation backend of the workers (see :class:`core.generation.Generator`).
        show_progress_bar: Show a tqdm bar.
    """
    config = config or QuestionGenConfig()
    if config.workers == 1 or len(passages) < 2:
        from core.generation import Generator

        # One thread: on a shared 2-core machine two llama.cpp threads mostly wait for each other.
        generator = Generator(model, backend=backend, n_threads=1)  # type: ignore[arg-type]
        return generate_questions(generator, passages, config, show_progress_bar)
    started = time.perf_counter()
    deadline = None if config.max_seconds is None else time.time() + config.max_seconds
    questions: list[list[str]] = [[] for _ in passages]
    done = [False] * len(passages)
    tokens, cpu = 0, 0.0
    workers = min(config.workers, len(passages))
    context = multiprocessing.get_context("spawn")  # torch and llama.cpp threads do not survive fork
    tasks = [(passage, config, deadline) for passage in passages]
    with context.Pool(workers, initializer=_init_worker, initargs=(model, backend)) as pool:
        results = pool.imap(_worker_generate, tasks, chunksize=1)
        for i, row in enumerate(
            progress_bar(
                results, total=len(tasks), desc="Generating questions", disable=not show_progress_bar
            )
        ):
            if row is not None:
                questions[i], done[i] = row[0], True
                tokens += row[1]
                cpu += row[2]
        pool.close()  # let the workers exit (and free their models) before the pool is torn down
        pool.join()
    attempted = sum(done)
    if attempted < len(passages):
        logger.warning(
            "Question generation ran out of time", extra={"done": attempted, "passages": len(passages)}
        )
    out = GeneratedQuestions(
        questions, attempted, time.perf_counter() - started, tokens, done, cpu, workers=workers
    )
    logger.info(
        "Generated questions",
        extra={
            "passages": len(passages),
            "attempted": attempted,
            "questions": out.total,
            "seconds": out.seconds,
            "cpu_seconds": cpu,
            "workers": workers,
        },
    )
    return out


__all__ = [
    "PROMPT",
    "GeneratedQuestions",
    "QuestionGenConfig",
    "generate_questions",
    "generate_questions_in_workers",
    "parse_questions",
    "prompt_for",
]
