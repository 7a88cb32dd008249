"""``aigc bench embeddings``: sentences/s of :class:`core.embeddings.Embedder` vs sentence-transformers.

10,000 real texts of mixed length (support answers, finance sentences, banking queries, tweets), the
same model (MiniLM-L6) and batch size (64) on both sides, alternated rep by rep. The project path is the
default ``Embedder()`` (bf16 on a CPU with fast bf16; batches sorted by token count, see
:mod:`core.batching`); the cosine of its vectors to sentence-transformers' fp32 vectors is reported
(target >= 0.99). ``Embedder(precision="fp32")`` runs beside them, so the same run also shows what a
CPU without fast bf16 gets (the batching alone).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.data import mixed_sentences
from core.bench.harness import (
    BenchSkipped,
    alternate,
    environment,
    has_module,
    markdown_table,
    ratio,
    write_results,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 64


def _cosine_to(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Row-wise cosine of unit vectors ``got`` to the reference rows ``ref``."""
    return (got * ref).sum(axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)


def run(reps: int = 5, quick: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """Run the embeddings benchmark; returns the result dict (also written to ``out``)."""
    from core import models
    from core.embeddings import Embedder

    if not has_module("sentence_transformers"):
        raise BenchSkipped("sentence-transformers is not installed (pip install -e .[bench])")
    from sentence_transformers import SentenceTransformer

    n = 250 if quick else 10_000
    texts = mixed_sentences(n)
    project = Embedder()
    project_fp32 = Embedder(precision="fp32")
    peer = SentenceTransformer(str(models.model_path(models.DEFAULT_ENCODER)), device="cpu")
    contestants = {
        "project": lambda: project.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False),
        "project_fp32": lambda: project_fp32.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False),
        "sentence_transformers": lambda: peer.encode(
            texts, batch_size=BATCH_SIZE, convert_to_numpy=True, normalize_embeddings=True
        ),
    }
    timings = alternate(contestants, reps=reps, warmup=1, label="embeddings")
    ref = timings.outputs["sentence_transformers"]
    cosine = _cosine_to(timings.outputs["project"], ref)
    cosine32 = _cosine_to(timings.outputs["project_fp32"], ref)
    rates = {name: round(n / timings.median(name), 1) for name in contestants}
    lengths = [len(t) for t in texts]
    result: dict[str, Any] = {
        "bench": "embeddings",
        "model": models.DEFAULT_ENCODER,
        "texts": n,
        "chars_median": int(np.median(lengths)),
        "chars_p95": int(np.percentile(lengths, 95)),
        "batch_size": BATCH_SIZE,
        "reps": reps,
        "project_precision": str(project.model.dtype).removeprefix("torch."),
        "sentences_per_s": rates,
        "seconds_median": {name: round(timings.median(name), 3) for name in contestants},
        "ratio_vs_sentence_transformers": ratio(rates["project"], rates["sentence_transformers"]),
        "cosine_min": round(float(cosine.min()), 5),
        "cosine_mean": round(float(cosine.mean()), 5),
        "fp32_ratio_vs_sentence_transformers": ratio(rates["project_fp32"], rates["sentence_transformers"]),
        "fp32_cosine_min": round(float(cosine32.min()), 5),
        "env": environment(),
        "skipped": {},
    }
    table = markdown_table(
        ["contestant", "sentences/s", "median s", "cosine to peer (min / mean)"],
        [
            [f"project Embedder ({result['project_precision']})", rates["project"],
             result["seconds_median"]["project"], f"{result['cosine_min']} / {result['cosine_mean']}"],
            ["project Embedder (fp32)", rates["project_fp32"], result["seconds_median"]["project_fp32"],
             f"{result['fp32_cosine_min']} / -"],
            ["sentence-transformers", rates["sentence_transformers"],
             result["seconds_median"]["sentence_transformers"], "1 / 1"],
        ],
    )  # fmt: skip
    head = (
        f"### Embeddings ({result['model']}, {n} real texts, batch {BATCH_SIZE}, "
        f"{result['env']['threads']} threads): ratio {result['ratio_vs_sentence_transformers']}x\n\n"
    )
    write_results("embeddings", result, head + table, out)
    return result
