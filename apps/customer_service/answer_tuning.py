"""Learning from past dialogues: fine-tune the answer model on question -> answer pairs, and score it.

Past support exchanges come as question -> best-answer pairs in the same files the knowledge base
reads as dialogues (CSV, JSON or JSON Lines with ``question`` and ``answer``; optional ``id``,
``title``, ``url``, ``category``), so one file serves both
(see :func:`apps.customer_service.sources.read_qa_file`).

* :func:`finetune_answers` holds out a share of the pairs (``heldout.jsonl`` in the output
  directory), then trains a LoRA adapter of the answer model on the rest with
  :func:`core.finetune.train_causal_lm` — the loss covers the answer tokens only;
* :func:`evaluate_answer_model` generates answers to held-out questions with the base model and with the
  adapter, and scores both against the reference answers with ROUGE-L and BLEU
  (:mod:`core.metrics`); :func:`score_answer_model` scores one model (the refresh loop compares the
  served adapter with a candidate this way).

Example:
    >>> report = finetune_answers("past_dialogues.jsonl", "runs/answers", epochs=2)
    >>> evaluate_answer_model("runs/answers/heldout.jsonl", adapter="runs/answers")["after"]["rouge_l"]
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.customer_service.sources import read_qa_file
from core.atomic import write_bytes_atomic
from core.config import write_json_atomic
from core.errors import check_path_kind
from core.finetune import CausalLMTrainConfig, train_causal_lm, with_overrides
from core.finetune.causal_lm import KIND as ADAPTER_KIND
from core.finetune.loop import REPORT_FILE, RUN_STATE
from core.generation import GenerateSettings, Generator
from core.io.artifacts import open_artifact
from core.metrics import bleu, rouge_l
from core.models import DEFAULT_GENERATOR
from core.paths import data_dir

logger = logging.getLogger(__name__)

HELDOUT_FILE = "heldout.jsonl"
#: Artifact kind of an answer-adapter directory (a core causal-LM adapter plus its held-out pairs).
KIND = "support-answer-adapter"
SUPPORT_SYSTEM_PROMPT = (
    "You are a customer-support assistant for an online store. Answer the customer's question "
    "briefly, politely and factually."
)


@dataclass(frozen=True)
class QAPair:
    """One past question and the answer that resolved it."""

    question: str
    answer: str
    id: str


def default_adapter_dir() -> Path:
    """Where ``aigc support finetune`` saves the answer adapter by default."""
    return data_dir() / "support" / "answer-adapter"


def read_dialogue_pairs(path: str | Path) -> list[QAPair]:
    """Read question -> answer pairs from a CSV, JSON or JSON Lines file.

    Raises:
        FileNotFoundError: The file does not exist.
        SourceError: Bad encoding, malformed file, missing/empty ``question`` or ``answer``, or a
            duplicate id — naming the file, row and field.
    """
    path = check_path_kind(path, "file")
    if not path.exists():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    return [QAPair(e.question, e.text, e.id) for e in read_qa_file(path, kind="dialogue")]


def split_heldout(
    pairs: Sequence[QAPair], fraction: float = 0.1, seed: int = 42, min_heldout: int = 1
) -> tuple[list[QAPair], list[QAPair]]:
    """Shuffle ``pairs`` with ``seed`` and split off ``fraction`` (at least ``min_heldout``) for testing.

    Returns:
        ``(train, heldout)``; ``heldout`` is empty when ``fraction`` is 0.

    Raises:
        ValueError: ``fraction`` outside [0, 1), or too few pairs to keep one for training.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return list(pairs), []
    n = max(min_heldout, round(len(pairs) * fraction))
    if n >= len(pairs):
        raise ValueError(f"{len(pairs)} pair(s) are too few to hold out {n} and still train on some")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:n])
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def write_pairs_jsonl(path: str | Path, pairs: Sequence[QAPair]) -> Path:
    """Write pairs as JSON Lines (``id``, ``question``, ``answer``), atomically."""
    path = Path(path)
    lines = (json.dumps({"id": p.id, "question": p.question, "answer": p.answer}) + "\n" for p in pairs)
    write_bytes_atomic(path, "".join(lines).encode("utf-8"))
    return path


def finetune_answers(
    pairs: str | Path | Sequence[QAPair],
    out_dir: str | Path | None = None,
    model: str = DEFAULT_GENERATOR,
    heldout_fraction: float = 0.1,
    config: CausalLMTrainConfig | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a LoRA adapter of the answer model on past question -> answer pairs.

    Args:
        pairs: A pairs file (see :func:`read_dialogue_pairs`) or pairs.
        out_dir: Adapter directory (default :func:`default_adapter_dir`); also gets ``heldout.jsonl``,
            the pairs kept out of training for :func:`evaluate_answer_model`.
        model: Base causal LM spec (default SmolLM2-135M-Instruct).
        heldout_fraction: Share of pairs kept for testing (0: train on all).
        config: Training settings; the system prompt defaults to :data:`SUPPORT_SYSTEM_PROMPT`.
        **overrides: Replace config fields, e.g. ``epochs=2``.

    Returns:
        The training report (see :func:`core.finetune.train_causal_lm`) plus ``heldout`` (count)
        and ``heldout_file``.

    Raises:
        FileNotFoundError: Missing pairs file.
        SourceError: Bad pairs file.
        ValueError: Too few pairs, or an unknown config field.
    """
    items = read_dialogue_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    config = config or CausalLMTrainConfig(system_prompt=SUPPORT_SYSTEM_PROMPT)
    config = with_overrides(config, overrides)
    train, heldout = split_heldout(items, heldout_fraction, config.seed)
    out_dir = Path(out_dir or default_adapter_dir())
    # Built aside and swapped in whole; a directory holding anything but an answer adapter is refused.
    with open_artifact(
        out_dir, KIND, legacy=(ADAPTER_KIND,), unhashed=RUN_STATE, embeds=(ADAPTER_KIND,)
    ) as build:
        report = train_causal_lm([(p.question, p.answer) for p in train], build, model, config)
        report["pairs"] = len(items)
        report["heldout"] = len(heldout)
        report["output_dir"] = str(out_dir)
        if heldout:
            write_pairs_jsonl(build / HELDOUT_FILE, heldout)
            report["heldout_file"] = str(out_dir / HELDOUT_FILE)
        write_json_atomic(build / REPORT_FILE, report)
    return report


def _adapter_system_prompt(adapter: str | Path) -> str | None:
    manifest = Path(adapter) / "aigc_adapter.json"
    if manifest.is_file():
        return json.loads(manifest.read_text(encoding="utf-8")).get("system_prompt")
    return None


def _score(generator: Generator, pairs: Sequence[QAPair], settings: GenerateSettings) -> dict[str, Any]:
    start = time.perf_counter()
    results = generator.generate_batch([p.question for p in pairs], settings, batch_size=8)
    hypotheses = [r.text.strip() for r in results]
    references = [p.answer for p in pairs]
    return {
        "rouge_l": round(rouge_l(hypotheses, references), 4),
        "bleu": round(bleu(hypotheses, references), 2),
        "seconds": round(time.perf_counter() - start, 1),
        "samples": [
            {"question": p.question, "reference": p.answer, "answer": h}
            for p, h in zip(pairs[:3], hypotheses[:3], strict=False)
        ],
    }


def _answer_setup(
    adapter: str | Path | None, model: str | None, system_prompt: str | None
) -> tuple[str | None, str]:
    if system_prompt is None:
        system_prompt = (_adapter_system_prompt(adapter) if adapter else None) or SUPPORT_SYSTEM_PROMPT
    if model is None and adapter is not None:
        from core.generation import adapter_base_model

        model = adapter_base_model(adapter)
    return model, system_prompt


def score_answer_model(
    pairs: Sequence[QAPair],
    adapter: str | Path | None = None,
    model: str | None = None,
    max_new_tokens: int = 128,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """ROUGE-L (0-1) and BLEU (0-100) of one answer model (the base, or the base with ``adapter``).

    Greedy decoding, so two models compared on the same pairs differ only by their weights.

    Args:
        pairs: Question -> reference answer pairs.
        adapter: Adapter directory from :func:`finetune_answers` (``None``: the base model).
        model: Base model spec (default: the adapter's base, else SmolLM2-135M-Instruct).
        max_new_tokens: Longest generated answer.
        system_prompt: System message (default: the adapter's, else :data:`SUPPORT_SYSTEM_PROMPT`).

    Returns:
        ``{"rouge_l", "bleu", "seconds", "samples"}`` (three question/reference/answer samples).

    Raises:
        ValueError: No pairs.
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    model, system_prompt = _answer_setup(adapter, model, system_prompt)
    generator = Generator(model, adapter=adapter, system_prompt=system_prompt)
    return _score(generator, list(pairs), GenerateSettings(max_new_tokens=max_new_tokens))


def evaluate_answer_model(
    pairs: str | Path | Sequence[QAPair],
    adapter: str | Path | None = None,
    model: str | None = None,
    max_new_tokens: int = 128,
    limit: int | None = None,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """ROUGE-L (0-1) and BLEU (0-100) of generated answers against reference answers.

    The base model's answers are scored as ``before``; with ``adapter``, the adapted model's as
    ``after``. Both use greedy decoding and the adapter's training system prompt.

    Args:
        pairs: Held-out pairs (a file, e.g. ``heldout.jsonl`` from :func:`finetune_answers`).
        adapter: Adapter directory from :func:`finetune_answers`.
        model: Base model spec (default: the adapter's base, else SmolLM2-135M-Instruct).
        max_new_tokens: Longest generated answer.
        limit: Score only the first ``limit`` pairs.
        system_prompt: System message (default: the adapter's, else :data:`SUPPORT_SYSTEM_PROMPT`).

    Returns:
        ``{"pairs", "before": {"rouge_l", "bleu", "seconds", "samples"}, "after": {...} | None,
        "delta": {"rouge_l", "bleu"} | None}``.
    """
    items = read_dialogue_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    if limit is not None:
        items = items[:limit]
    if not items:
        raise ValueError("no pairs to evaluate")
    model, system_prompt = _answer_setup(adapter, model, system_prompt)
    result: dict[str, Any] = {"pairs": len(items), "before": None, "after": None, "delta": None}
    result["before"] = score_answer_model(items, None, model, max_new_tokens, system_prompt)
    if adapter is not None:
        result["after"] = score_answer_model(items, adapter, model, max_new_tokens, system_prompt)
        result["delta"] = {k: round(result["after"][k] - result["before"][k], 4) for k in ("rouge_l", "bleu")}
    logger.info("Evaluated answers", extra={"pairs": len(items), "delta": result["delta"]})
    return result


__all__ = [
    "HELDOUT_FILE",
    "SUPPORT_SYSTEM_PROMPT",
    "QAPair",
    "default_adapter_dir",
    "evaluate_answer_model",
    "finetune_answers",
    "read_dialogue_pairs",
    "score_answer_model",
    "split_heldout",
    "write_pairs_jsonl",
]
