"""Adapt the retriever's encoder to one knowledge base (``aigc support index --adapt``).

1. **Held-out split.** When the KB has at least ``min_curated`` curated questions (FAQ and
   dialogue entries), those of a seeded ``heldout_fraction`` of their entries are held out and
   the rest join the training pairs. A KB of documents has none: then a seeded
   ``heldout_fraction`` of the entries is held out and judged with the questions the answer model
   writes for them; those entries' generated questions are never trained on (split by entry, so a
   held-out question never has a sibling in training). With ``queries`` ``sentences`` (the
   default) no written question is trained on at all, so every entry's judges (``judge_all``).
   A **judge file** (``judge_file``: real questions with their entry ids, e.g. tickets the team
   resolved) replaces all of this: its questions judge, and nothing is held out of training.
2. **Questions.** The answer model writes questions
   (:func:`core.query_generation.generate_questions`) for the entries that need them: the held-out
   entries of a documents KB first, then, when ``queries`` is ``generated`` or ``both``, every other
   entry. Questions of entries whose content hash is unchanged since the last adapted build are
   reused from ``adapter/questions.jsonl``.
3. **Training.** The encoder's LoRA is trained with in-batch negatives by
   :func:`core.finetune.contrastive.train_contrastive` (InfoNCE, the shared loop) on (query, entry)
   pairs: with ``queries`` ``sentences`` (the default) or ``both``, sentences cut from every entry
   with the rest of the entry as the positive (inverse cloze task, :mod:`core.inverse_cloze`: no
   model needed; the 135M answer model's questions rarely pin down their entry, see
   ``docs/benchmarks/support.md``); with ``generated`` or ``both``, the generated questions of the
   training entries; always the curated questions not held out.
4. **Judging.** Held-out questions are ranked against every entry's content with the frozen and
   with the adapted encoder; the adapter is kept only when its recall@1 is higher by more than
   ``min_gain`` and the gain is significant (:func:`sign_test` on the questions whose rank-1
   result changed, ``p <= max_p_value``): written questions are a noisy judge, and a gain of a
   few of them is what a harmful adapter gets by chance (``docs/benchmarks/support.md``).
   Otherwise it is discarded and the report says so (the KB is then built with the
   frozen encoder, as without ``--adapt``).

A kept adapter is written into the KB directory as ``adapter/`` (peft's ``adapter_config.json``
and ``adapter_model.safetensors``, plus ``adaptation.json`` with this report and
``questions.jsonl``); the KB's ``embedding_model`` is then ``"<base>+lora:<sha256[:12]>"`` and
:func:`load_encoder` gives queries the same adapted encoder the entries were embedded with.
Nothing here imports torch: the model code is in ``core``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from apps.customer_service.config import AdaptConfig
from apps.customer_service.entries import Entry
from apps.customer_service.errors import KBFormatError
from apps.customer_service.eval_queries import read_queries
from core.embeddings import CachedEncoder, Embedder
from core.finetune.contrastive import (
    ADAPTER_WEIGHTS,
    ContrastivePairs,
    ContrastiveTrainConfig,
    adapter_model_id,
    load_adapted_embedder,
    train_contrastive,
)
from core.inverse_cloze import inverse_cloze_pairs
from core.metrics import hit_rate_at_k, mrr_at_k
from core.query_generation import generate_questions, generate_questions_in_workers

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
REPORT_FILE = "adaptation.json"
QUESTIONS_FILE = "questions.jsonl"
MRR_K = 10


@dataclass
class AdaptationReport:
    """What an adaptation did and whether its adapter was kept (recorded in the KB manifest)."""

    kept: bool
    reason: str
    base: str
    model_id: str | None = None
    heldout: str = "generated"
    heldout_queries: int = 0
    frozen: dict[str, float] = field(default_factory=dict)
    adapted: dict[str, float] = field(default_factory=dict)
    gain: dict[str, float] = field(default_factory=dict)
    significance: dict[str, float] = field(default_factory=dict)
    questions_generated: int = 0
    questions_reused: int = 0
    entries_with_questions: int = 0
    pairs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


@dataclass
class Adaptation:
    """An adaptation's report, its adapter files (when kept), encoder and questions per entry."""

    report: AdaptationReport
    embedder: Any
    files: dict[str, bytes] = field(default_factory=dict)
    questions: dict[str, tuple[str, list[str]]] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        """Write ``adapter/`` (weights only when kept; report and questions always) into ``directory``."""
        target = directory / ADAPTER_DIR
        target.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (target / name).write_bytes(data)
        (target / REPORT_FILE).write_text(
            json.dumps(self.report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        with (target / QUESTIONS_FILE).open("w", encoding="utf-8") as fh:
            for entry_id, (content_hash, questions) in self.questions.items():
                row = {"id": entry_id, "content_hash": content_hash, "questions": questions}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_questions(kb_dir: Path | None) -> dict[str, tuple[str, list[str]]]:
    """Generated questions stored by the last adapted build in ``kb_dir`` (empty when none)."""
    path = (kb_dir / ADAPTER_DIR / QUESTIONS_FILE) if kb_dir is not None else None
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            out[str(row["id"])] = (str(row["content_hash"]), [str(q) for q in row["questions"]])
        except (ValueError, KeyError, TypeError):
            logger.warning("Skipping a bad line of stored questions", extra={"path": str(path)})
    return out


def read_adapter(kb_dir: Path, manifest: dict[str, Any]) -> Adaptation | None:
    """The kept adapter of the KB in ``kb_dir`` (files, report, questions), or ``None``."""
    report = manifest.get("adaptation")
    if not isinstance(report, dict) or not report.get("kept"):
        return None
    folder = kb_dir / ADAPTER_DIR
    files = {name: (folder / name).read_bytes() for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)}
    return Adaptation(AdaptationReport(**report), None, files, read_questions(kb_dir))


def load_encoder(kb_path: Path | None, manifest: dict[str, Any]) -> Embedder:
    """The query encoder of a knowledge base: its kept adapter merged into the base, else the base.

    Raises:
        KBFormatError: The manifest names an adapter that is missing or whose weights do not hash to
            the KB's ``embedding_model``.
    """
    report = manifest.get("adaptation")
    if not isinstance(report, dict) or not report.get("kept"):
        return Embedder(str(manifest["embedding_model"]))
    folder = (kb_path or Path(".")) / ADAPTER_DIR
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise KBFormatError(f"{folder}: the manifest names an adapted encoder but its weights are missing")
    base = str(report["base"])
    if adapter_model_id(base, folder) != manifest["embedding_model"]:
        raise KBFormatError(f"{folder}: adapter weights do not match embedding_model; rebuild the KB")
    return load_adapted_embedder(base, folder)


# ------------------------------------------------------------------------------------- adapting
def _questions(
    entries: Sequence[Entry],
    config: AdaptConfig,
    previous: dict[str, tuple[str, list[str]]],
    generator: Any,
    show_progress_bar: bool,
) -> tuple[dict[str, tuple[str, list[str]]], int, int, dict[str, float]]:
    """Questions per entry id of ``entries`` (reused when the content hash is unchanged, generated
    otherwise, in the order given), the numbers generated and reused, and the generation's
    wall-clock and CPU seconds."""
    out: dict[str, tuple[str, list[str]]] = {}
    todo = []
    for entry in entries:
        old = previous.get(entry.id)
        if old is not None and old[0] == entry.content_hash:
            out[entry.id] = old
        else:
            todo.append(entry)
    reused = sum(len(q) for _, q in out.values())
    seconds = {"generate": 0.0, "generate_cpu": 0.0}
    generated = 0
    if todo:
        texts = [e.content_field() for e in todo]
        if generator is not None:
            result = generate_questions(generator, texts, config.generation, show_progress_bar)
        else:
            result = generate_questions_in_workers(
                texts, config.generation, config.answer_model, config.backend, show_progress_bar
            )
        seconds = {"generate": round(result.seconds, 1), "generate_cpu": round(result.cpu_seconds, 1)}
        generated = result.total
        for entry, questions, done in zip(todo, result.questions, result.done, strict=True):
            if done:  # entries past the time budget are tried again next build
                out[entry.id] = (entry.content_hash, questions)
    return out, generated, reused, seconds


def _curated(entries: Sequence[Entry]) -> list[int]:
    """Positions of the entries with a curated question (FAQ and dialogue entries)."""
    return [i for i, e in enumerate(entries) if e.kind != "doc" and e.question.strip()]


def heldout_plan(entries: Sequence[Entry], config: AdaptConfig) -> tuple[str, set[int]]:
    """``(kind, held)``: ``"curated"`` and the held-out curated entries when the KB has at least
    ``min_curated`` curated questions, else ``"generated"`` and a seeded share of all entries."""
    rng = np.random.default_rng(config.seed)
    curated = _curated(entries)
    if len(curated) >= config.min_curated:
        n_held = max(1, round(config.heldout_fraction * len(curated)))
        return "curated", set(rng.permutation(curated)[:n_held].tolist())
    if config.queries == "sentences" and config.judge_all:
        # no written question is trained on, so every entry's can judge (5x the held-out share)
        return "generated", set(range(len(entries)))
    n_held = max(1, round(config.heldout_fraction * len(entries))) if entries else 0
    return "generated", set(rng.permutation(len(entries))[:n_held].tolist())


def split_heldout(
    entries: Sequence[Entry],
    questions: dict[str, tuple[str, list[str]]],
    config: AdaptConfig,
    plan: tuple[str, set[int]] | None = None,
) -> tuple[str, list[tuple[str, int]], list[tuple[str, int]]]:
    """``(kind, train, heldout)``: (question, entry position) pairs of the curated and generated
    questions (``plan``, default :func:`heldout_plan`, decides what is held out; see the module
    docstring)."""
    kind, held = plan or heldout_plan(entries, config)
    generated = [(q, i) for i, e in enumerate(entries) for q in questions.get(e.id, ("", []))[1]]
    if kind == "curated":
        curated = _curated(entries)
        heldout = [(entries[i].question, i) for i in sorted(held)]
        return kind, generated + [(entries[i].question, i) for i in curated if i not in held], heldout
    return (
        kind,
        [(q, i) for q, i in generated if i not in held],
        [(q, i) for q, i in generated if i in held],
    )


def cloze_pairs(entries: Sequence[Entry], config: AdaptConfig) -> tuple[list[str], list[str], list[int]]:
    """``(queries, contexts, entry positions)`` of the inverse-cloze pairs of every entry's text."""
    pairs = inverse_cloze_pairs(
        [e.text for e in entries],
        config.cloze,
        config.seed,
        prefixes=[e.title if e.kind == "doc" else "" for e in entries],  # as Entry.content_field
    )
    return [p.query for p in pairs], [p.context for p in pairs], [p.source for p in pairs]


#: A judging question and its entry position, or the positions of all its entries (a judge file).
Gold = int | frozenset[int]


def _gold(gold: Gold) -> set[str]:
    return {str(gold)} if isinstance(gold, int) else {str(i) for i in gold}


def read_judge(path: str | Path, entries: Sequence[Entry]) -> list[tuple[str, frozenset[int]]]:
    """Real questions that judge the adapter (``adapt.judge_file``): the retrieval-eval CSV
    (``query,gold_ids``, ids ``;``-separated), each gold id one of ``entries``; rows with empty
    ``gold_ids`` (questions of a labelling sample nobody could place) are left out.

    Raises:
        FileNotFoundError: The file does not exist.
        SourceError: A malformed file, or a gold id that is not an entry (naming row and field).
    """
    positions = {e.id: i for i, e in enumerate(entries)}
    labelled = read_queries(path, kb=positions, skip_unlabelled=True)
    return [(q.query, frozenset(positions[g] for g in q.gold_ids)) for q in labelled]


def _ranked(encoder: Any, entries: Sequence[Entry], heldout: Sequence[tuple[str, Gold]]) -> list[list[str]]:
    """The top ``MRR_K`` entry positions (as strings) of each held-out question."""
    contents = encoder.encode([e.content_field() for e in entries])
    queries = encoder.encode([q for q, _ in heldout])
    top = np.argsort(-(queries @ contents.T), axis=1, kind="stable")[:, :MRR_K]
    return [[str(j) for j in row] for row in top]


def judge_heldout(
    encoder: Any, entries: Sequence[Entry], heldout: Sequence[tuple[str, Gold]]
) -> tuple[dict[str, float], np.ndarray]:
    """Held-out questions ranked once against every entry's content: recall@1 (the share with their
    entry, or one of them, first: hit@1), recall@5 and MRR@10, and whether each question's entry is
    ranked first (bool per question, the input of :func:`sign_test`)."""
    if not heldout:
        return {}, np.zeros(0, dtype=bool)
    ranked = _ranked(encoder, entries, heldout)
    gold = [_gold(g) for _, g in heldout]
    metrics = {
        "recall@1": round(hit_rate_at_k(ranked, gold, 1), 4),
        "recall@5": round(hit_rate_at_k(ranked, gold, 5), 4),
        f"mrr@{MRR_K}": round(mrr_at_k(ranked, gold, MRR_K), 4),
    }
    return metrics, np.asarray([row[0] in g for row, g in zip(ranked, gold, strict=True)], dtype=bool)


def sign_test(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """One-sided exact sign test of ``after`` over ``before`` (paired rank-1 hits of one question set).

    Only the questions whose result changed count: ``wins`` (missed before, found after) against
    ``losses``; ``p_value`` is the chance of at least ``wins`` heads in ``wins + losses`` fair coin
    flips, i.e. of a gain this large from an adapter that changes results at random.
    """
    wins = int(np.sum(~before & after))
    losses = int(np.sum(before & ~after))
    changed = wins + losses
    p_value = float(binomtest(wins, changed, 0.5, alternative="greater").pvalue) if changed else 1.0
    return {"wins": wins, "losses": losses, "p_value": round(p_value, 4)}


def guard_keeps(gain: float, significance: dict[str, float], config: AdaptConfig) -> bool:
    """The guard's rule: held-out recall@1 rose by more than ``min_gain``, significantly
    (:func:`sign_test` p-value at most ``max_p_value``)."""
    return gain > config.min_gain and significance.get("p_value", 1.0) <= config.max_p_value


def round_trip_filter(
    encoder: Any,
    entries: Sequence[Entry],
    pairs: list[tuple[str, int]],
    top_k: int,
    keep: set[tuple[str, int]] | None = None,
) -> tuple[list[tuple[str, int]], int]:
    """Training pairs whose entry the frozen ``encoder`` ranks within ``top_k`` for the question.

    Round-trip consistency (as in Promptagator and PAQ): a generated question whose own entry the
    frozen encoder does not even place in the top ``top_k`` is usually off topic ("What's your
    favourite movie?") and teaches the encoder noise. Pairs in ``keep`` (curated questions) always
    stay. Returns the kept pairs and how many were dropped.
    """
    keep = keep or set()
    todo = [j for j, pair in enumerate(pairs) if pair not in keep]
    if not todo:
        return list(pairs), 0
    contents = encoder.encode([e.content_field() for e in entries])
    queries = encoder.encode([pairs[j][0] for j in todo])
    scores = queries @ contents.T
    own = scores[np.arange(len(todo)), [pairs[j][1] for j in todo]]
    rank = (scores > own[:, None]).sum(axis=1)
    dropped = {j for j, r in zip(todo, rank, strict=True) if r >= top_k}
    return [pair for j, pair in enumerate(pairs) if j not in dropped], len(dropped)


def train_config(config: AdaptConfig) -> ContrastiveTrainConfig:
    """The core loop's settings for ``config`` (no validation split: the held-out split judges)."""
    return ContrastiveTrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        temperature=config.temperature,
        logq_correction=False,
        val_fraction=0.0,
        patience=0,
        max_query_length=config.max_query_length,
        max_item_length=config.max_item_length,
        lora=config.lora,
        seed=config.seed,
        show_progress_bar=False,
    )


def adapt_encoder(
    entries: Sequence[Entry],
    base: str,
    config: AdaptConfig | None = None,
    frozen: Any = None,
    generator: Any = None,
    previous_questions: dict[str, tuple[str, list[str]]] | None = None,
    show_progress_bar: bool = False,
) -> Adaptation:
    """Generate questions, train the LoRA, judge it on the held-out split; keep it only if it helps.

    Args:
        entries: The KB's entries.
        base: Encoder spec (the KB's ``embedding_model``).
        config: Adaptation settings.
        frozen: The frozen encoder (default: loaded from ``base``); wrapped in a cache, so texts it
            embeds while judging are not embedded again by the build.
        generator: The answer model (default: loaded from ``config.answer_model``).
        previous_questions: Questions of the last adapted build (:func:`read_questions`).
        show_progress_bar: Show tqdm bars.

    Returns:
        The :class:`Adaptation`; its ``embedder`` is the adapted encoder when kept, else ``frozen``.
    """
    config = config or AdaptConfig()
    judge = read_judge(config.judge_file, entries) if config.judge_file else None  # a bad file fails first
    frozen = frozen if isinstance(frozen, CachedEncoder) else CachedEncoder(frozen or Embedder(base))
    # with a judge file nothing is held out of training (the curated plan holding none out trains
    # on every curated and written question); the file's questions judge
    kind, held = ("curated", set()) if judge else heldout_plan(entries, config)
    # the judge's questions first (so a time budget never leaves the held-out split short), in a
    # seeded random order (a budget that stops early leaves a random sample of them, not the first
    # entries), then the training entries' when generated questions are trained on
    order = np.random.default_rng(config.seed + 1).permutation(len(entries)).tolist()
    wanted = [i for i in order if i in held] if kind == "generated" else []
    if config.queries != "sentences":
        wanted += [i for i in range(len(entries)) if not (kind == "generated" and i in held)]
    questions, generated, reused, gen_seconds = _questions(
        [entries[i] for i in wanted], config, previous_questions or {}, generator, show_progress_bar
    )
    kind, train, heldout = split_heldout(entries, questions, config, (kind, held))
    if judge:
        kind, heldout = "file", judge
    cloze_queries, cloze_contexts, cloze_sources = (
        cloze_pairs(entries, config) if config.queries != "generated" else ([], [], [])
    )
    report = AdaptationReport(
        kept=False,
        reason="",
        base=base,
        heldout=kind,
        heldout_queries=len(heldout),
        questions_generated=generated,
        questions_reused=reused,
        entries_with_questions=sum(bool(q) for _, q in questions.values()),
        pairs=len(train) + len(cloze_queries),
        seconds=dict(gen_seconds),
    )
    report.training["queries"] = config.queries
    report.training["cloze_pairs"] = len(cloze_queries)
    if report.pairs < 2 * config.batch_size or not heldout:
        report.reason = (
            f"too few questions to adapt: {report.pairs} training pairs (need {2 * config.batch_size}) "
            f"and {len(heldout)} held out"
        )
        logger.warning("Adapter not trained", extra={"reason": report.reason})
        return Adaptation(report, frozen, questions=questions)
    started = time.perf_counter()
    report.frozen, frozen_hits = judge_heldout(frozen, entries, heldout)
    judge_s = time.perf_counter() - started
    if config.filter_top_k:
        curated = {(entries[i].question, i) for i in _curated(entries)}
        train, dropped = round_trip_filter(frozen, entries, train, config.filter_top_k, keep=curated)
        report.training["filtered_out"] = dropped
        report.pairs = len(train) + len(cloze_queries)
        if report.pairs < 2 * config.batch_size:
            report.reason = (
                f"too few questions left after the round-trip filter: {report.pairs} training pairs"
            )
            logger.warning("Adapter not trained", extra={"reason": report.reason})
            return Adaptation(report, frozen, questions=questions)
    # items 0..n-1 are the entries' contents, then one context per cloze pair; an item's group is
    # its entry, so texts of one entry are never each other's in-batch negatives
    n = len(entries)
    pairs = ContrastivePairs(
        queries=[q for q, _ in train] + cloze_queries,
        items=np.asarray([i for _, i in train] + list(range(n, n + len(cloze_queries))), dtype=np.int64),
        item_texts=[e.content_field() for e in entries] + cloze_contexts,
        item_groups=np.asarray(list(range(n)) + cloze_sources, dtype=np.int64),
    )
    with tempfile.TemporaryDirectory(prefix="aigc-adapt-") as tmp:
        result = train_contrastive(pairs, Path(tmp) / ADAPTER_DIR, base, train_config(config))
        files = {name: (result.adapter_dir / name).read_bytes() for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)}
        # The same loader as at query time (the base's token limit, not the training one).
        adapted = CachedEncoder(load_adapted_embedder(base, result.adapter_dir))
    report.seconds["train"] = round(result.seconds, 1)
    report.training.update(
        epochs_run=result.report.get("epochs_run"),
        loss=[row.get("train_loss") for row in result.report.get("history", [])],
    )
    started = time.perf_counter()
    report.adapted, adapted_hits = judge_heldout(adapted, entries, heldout)
    report.seconds["judge"] = round(judge_s + time.perf_counter() - started, 1)
    report.gain = {k: round(report.adapted[k] - report.frozen[k], 4) for k in report.frozen}
    report.significance = sign_test(frozen_hits, adapted_hits)
    report.kept = guard_keeps(report.gain["recall@1"], report.significance, config)
    report.model_id = result.model_id if report.kept else None
    before, after, gain = report.frozen["recall@1"], report.adapted["recall@1"], report.gain["recall@1"]
    wins, losses, p_value = (report.significance[k] for k in ("wins", "losses", "p_value"))
    verdict = "kept" if report.kept else "discarded, the frozen encoder stays"
    if not report.kept and gain > config.min_gain:
        verdict += f" (not significant: p {p_value:.3f} > {config.max_p_value})"
    report.reason = (
        f"held-out recall@1 {before:.3f} -> {after:.3f} ({100 * gain:+.1f} points; {wins} questions "
        f"won, {losses} lost) on {len(heldout)} {kind} questions: adapter {verdict}"
    )
    logger.info("Adaptation judged", extra={"kept": report.kept, "gain": report.gain, "heldout": kind})
    if not report.kept:
        return Adaptation(report, frozen, questions=questions)
    return Adaptation(report, adapted, files, questions)


__all__ = [
    "ADAPTER_DIR",
    "Adaptation",
    "AdaptationReport",
    "adapt_encoder",
    "load_encoder",
    "read_adapter",
    "read_questions",
    "cloze_pairs",
    "guard_keeps",
    "heldout_plan",
    "round_trip_filter",
    "read_judge",
    "judge_heldout",
    "sign_test",
    "split_heldout",
]
