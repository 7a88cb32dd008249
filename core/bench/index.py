"""``aigc bench index``: :class:`core.index.VectorIndex` build time, memory, latency and recall.

For each size (10k, 100k, 1M vectors of dim 384) the index is built with the default configuration
(``kind="auto"``: exact below ``flat_threshold``, HNSW above, IVF-SQ8 above ``ivf_threshold``);
reported are the build time, the resident memory the index added (each size is measured in a
fresh process, so memory freed by earlier benchmarks of ``aigc bench all`` cannot hide it), p50/p99
latency of single-vector queries and recall@10 against exact search (FAISS ``IndexFlatIP``). The
vectors are clustered synthetic unit vectors (a mixture of 1,000 Gaussian clusters), standing in for
sentence embeddings at sizes the data sets here do not reach; queries are held-out points of the same
mixture.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.harness import current_rss_mb, environment, markdown_table, write_results

logger = logging.getLogger(__name__)

DIM = 384
QUERIES = 200
K = 10


def clustered_vectors(n: int, seed: int = 0, clusters: int = 1000, spread: float = 0.6) -> np.ndarray:
    """``n`` unit vectors of dim 384 from a mixture of Gaussian clusters (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        noise = rng.standard_normal((m, DIM)).astype(np.float32) * (spread / np.sqrt(DIM))
        block = centres[rng.integers(0, clusters, m)] + noise
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def config_for(n: int) -> Any:
    """The index configuration measured at ``n`` vectors: the default (``auto``: flat, then HNSW above
    50k, then IVF with 8-bit codes above 500k, where HNSW over floats would need ~1.8 GB at 1M)."""
    from core.index import IndexConfig

    return IndexConfig()


def measure(n: int, config: Any = None, seed: int = 0) -> dict[str, Any]:
    """Build a :class:`VectorIndex` of ``n`` vectors (``config``: :func:`config_for`) and measure it."""
    import faiss

    from core.index import VectorIndex

    config = config or config_for(n)

    data = clustered_vectors(n + QUERIES, seed)
    base, queries = data[:n], data[n:]
    ids = [f"v{i}" for i in range(n)]
    gc.collect()
    _release_free_heap()  # else the index reuses pages the vector generation freed, and RSS hides it
    rss0 = current_rss_mb()
    t0 = time.perf_counter()
    index = VectorIndex.from_config(DIM, "bench-synthetic", config)
    step = n  # one bulk add, as the apps build their indexes (auto picks the kind for the total)
    for start in range(0, n, step):
        index.add(ids[start : start + step], base[start : start + step])
    build_s = time.perf_counter() - t0
    rss_mb = current_rss_mb() - rss0
    latencies = []
    found = []
    for q in queries:
        t = time.perf_counter()
        hits, _ = index.search(q, K)
        latencies.append(time.perf_counter() - t)
        found.append(hits[0])
    exact = faiss.IndexFlatIP(DIM)
    exact.add(base)
    _, truth = exact.search(queries, K)
    recall = np.mean(
        [len({f"v{j}" for j in row} & set(hit)) / K for row, hit in zip(truth, found, strict=True)]
    )
    lat = np.array(latencies) * 1000
    return {
        "n": n,
        "kind": index.kind + ("-sq8" if index.kind == "ivf" and index.config.ivf_storage == "sq8" else ""),
        "build_s": round(build_s, 3),
        "rss_added_mb": round(rss_mb, 1),
        "vectors_mb": round(base.nbytes / 2**20, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "recall_at_10": round(float(recall), 4),
    }


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure_isolated(n: int) -> dict[str, Any]:
    """:func:`measure` in a fresh (spawned) process, so the RSS delta starts from a clean heap."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, n).result()


def run(
    reps: int = 5, quick: bool = False, out: str | Path | None = None, sizes: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """Run the index benchmark at each size; ``quick`` stops at 100k. ``reps`` is not used (one build)."""
    sizes = sizes or ((10_000, 100_000) if quick else (10_000, 100_000, 1_000_000))
    per_size = {}
    for n in sizes:
        per_size[str(n)] = measure_isolated(n)
        logger.info("index measured", extra=per_size[str(n)])
    result: dict[str, Any] = {
        "bench": "index",
        "dim": DIM,
        "queries": QUERIES,
        "k": K,
        "sizes": per_size,
        "targets_1m": {"p50_ms": 2.0, "recall_at_10": 0.95, "memory_gb": 0.8},
        "env": environment(),
        "skipped": {} if "1000000" in per_size else {"1000000": "not run (quick mode)"},
    }
    rows = [
        [r["n"], r["kind"], r["build_s"], r["rss_added_mb"], r["p50_ms"], r["p99_ms"], r["recall_at_10"]]
        for r in per_size.values()
    ]
    table = markdown_table(
        ["vectors", "kind", "build s", "RSS added MB", "p50 ms", "p99 ms", "recall@10"], rows
    )
    result["plot"] = _plot(per_size, out)
    md = f"### Vector index (dim {DIM})\n\n" + table + f"\n![index]({result['plot']})\n"
    write_results("index", result, md, out)
    return result


def _plot(per_size: dict[str, dict[str, Any]], out: str | Path | None) -> str:
    """Latency, memory and recall against the number of vectors (``index.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_plot

    rows = list(per_size.values())
    n = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    axes[0].plot(n, [r["p50_ms"] for r in rows], "o-", label="p50")
    axes[0].plot(n, [r["p99_ms"] for r in rows], "s--", label="p99")
    axes[0].set_ylabel("query latency (ms)")
    axes[0].legend()
    axes[1].plot(n, [r["rss_added_mb"] for r in rows], "o-")
    axes[1].set_ylabel("resident memory added (MB)")
    axes[2].plot(n, [r["recall_at_10"] for r in rows], "o-")
    axes[2].set_ylabel("recall@10")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("vectors")
    fig.suptitle("VectorIndex (dim 384, " + ", ".join(f"{r['n']:,}: {r['kind']}" for r in rows) + ")")
    return save_plot(fig, "index", out)
