"""Benchmark: batch-scoring throughput (users/s, top-100) vs catalogue size, local engine vs Ray.

The catalogue is synthetic (:class:`apps.recommender.batch.synthetic.SyntheticCatalogue`: seeded random
unit item vectors, dim 64, 20 history items per user; exact inner-product search in a flat
:class:`core.index.VectorIndex`), at 10k, 100k and 1M items. Both engines run the same job through
:func:`apps.recommender.batch.job.run_batch` (chunk files, assembly of the Parquet output), so the
numbers include what a real job pays: model load (each Ray actor builds its own copy), scoring,
chunk writes and the final file. Ray runs on a local instance started once before the timings
(its start-up time is reported separately); the local engine's load time is reported too, and the
scoring-only rate beside the end-to-end one. The outputs of the two engines are compared byte
for byte.

Run (results: ``bench/results/recommender_batch.json`` and ``.png``)::

    nice -n 5 .venv/bin/python -m bench.recommender_batch
    nice -n 5 .venv/bin/python -m bench.recommender_batch --sizes 10000,100000 --workers 2
    nice -n 5 .venv/bin/python -m bench.recommender_batch --index auto   # approximate search + recall@100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.recommender.batch.job import run_batch
from apps.recommender.batch.synthetic import SyntheticCatalogue, SyntheticScorer
from apps.recommender.config import BatchConfig
from core.config import write_json_atomic

logger = logging.getLogger("bench.recommender_batch")

RESULTS = Path(__file__).resolve().parent / "results"
# Users per catalogue size: enough for several chunks, small enough to keep the run under ~15 min.
USERS = {10_000: 8192, 100_000: 4096, 1_000_000: 1024}
K = 100
DIM = 64
HISTORY = 20


@dataclass(frozen=True)
class TimedLoad:
    """Wraps a factory to record how long the local engine spends loading the model."""

    spec: SyntheticCatalogue

    def __call__(self) -> SyntheticScorer:
        started = time.perf_counter()
        scorer = self.spec()
        LOADS.append(time.perf_counter() - started)
        BUILT[self.spec] = scorer
        return scorer

    def fingerprint(self) -> str:
        return self.spec.fingerprint()


LOADS: list[float] = []
BUILT: dict[SyntheticCatalogue, SyntheticScorer] = {}  # the local engine's model, reused for recall


def recall_vs_exact(spec: SyntheticCatalogue, n_users: int = 256) -> float:
    """Mean recall@K of the approximate index's top-K lists against exact search (same users)."""
    users = [f"u{u:06d}" for u in range(min(n_users, spec.n_users))]
    approx = (BUILT.get(spec) or spec()).recommend_chunk(users, K)
    exact = dataclasses.replace(spec, index="flat")().recommend_chunk(users, K)
    found = approx.groupby("user_id")["item_id"].apply(set)
    truth = exact.groupby("user_id")["item_id"].apply(set)
    return float(np.mean([len(found.get(u, set()) & truth[u]) / len(truth[u]) for u in truth.index]))


def run_size(
    n_items: int,
    n_users: int,
    chunk_size: int,
    workers: int,
    tmp: Path,
    index: str = "flat",
    engines: tuple[str, ...] = ("local", "local_mt", "ray"),
) -> list[dict[str, Any]]:
    spec = SyntheticCatalogue(n_items=n_items, n_users=n_users, dim=DIM, history=HISTORY, index=index)
    users = [f"u{u:06d}" for u in range(n_users)]
    rows = []
    outputs = {}
    # local: 1 BLAS/OpenMP thread (the default: bit-identical to Ray actors); local_mt: the
    # libraries' default threads (both cores); ray: `workers` single-threaded actors.
    for name, engine, threads in (("local", "local", 1), ("local_mt", "local", None), ("ray", "ray", 1)):
        if name not in engines:
            continue
        out = tmp / f"{name}-{n_items}.parquet"
        config = BatchConfig(k=K, chunk_size=chunk_size, engine=engine, ray_workers=workers, threads=threads)  # type: ignore[arg-type]
        LOADS.clear()
        factory = TimedLoad(spec) if engine == "local" else spec
        started = time.perf_counter()
        result = run_batch(factory, out, users, config, show_progress_bar=False)
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "n_items": n_items,
            "n_users": n_users,
            "engine": name,
            "workers": workers if engine == "ray" else 1,
            "threads": threads,
            "chunks": result.n_chunks,
            "rows": result.n_rows,
            "seconds": round(seconds, 2),
            "users_per_s": round(n_users / seconds, 1),
            "index": index,
        }
        if engine == "local":
            row["load_seconds"] = round(LOADS[0], 2)
            row["scoring_users_per_s"] = round(n_users / (seconds - LOADS[0]), 1)
        rows.append(row)
        outputs[name] = out.read_bytes()
        out.unlink()
        logger.info("measured %s (load average %.1f)", row, os.getloadavg()[0])
    for row in rows:
        row["identical_to_local"] = outputs[row["engine"]] == outputs["local"]
    if index != "flat":
        recall = round(recall_vs_exact(spec), 4)
        for row in rows:
            row[f"recall@{K}_vs_exact"] = recall
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    labels = {
        "local": "local, 1 thread (end to end)",
        "local_mt": "local, 2 threads (end to end)",
        "ray": "Ray, 2 actors x 1 thread (end to end)",
    }
    for engine, style in (("local", "o-"), ("local_mt", "^-"), ("ray", "s-")):
        sel = [r for r in rows if r["engine"] == engine]
        ax.plot([r["n_items"] for r in sel], [r["users_per_s"] for r in sel], style, label=labels[engine])
    sel = [r for r in rows if r["engine"] == "local"]
    ax.plot(
        [r["n_items"] for r in sel],
        [r["scoring_users_per_s"] for r in sel],
        "o--",
        label="local, 1 thread (scoring only)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("users / s (top-100)")
    index = rows[0].get("index", "flat") if rows else "flat"
    ax.set_title(f"Batch scoring throughput, synthetic catalogue (dim 64, index {index}), 2 CPUs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalogue sizes, comma-separated")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument(
        "--index", choices=("flat", "auto"), default="flat", help="auto: HNSW above 50k, IVF-SQ8 above 500k"
    )
    parser.add_argument("--workers", type=int, default=None, help="Ray actors (default: CPUs)")
    parser.add_argument("--engines", default="local,local_mt,ray", help="subset of local,local_mt,ray")
    parser.add_argument("--out", type=Path, default=None, help="default: recommender_batch[_auto].json")
    args = parser.parse_args()
    engines = tuple(args.engines.split(","))
    args.out = args.out or RESULTS / (
        "recommender_batch.json" if args.index == "flat" else "recommender_batch_auto.json"
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import ray

    cpus = os.cpu_count() or 1
    workers = args.workers or cpus
    load_start = round(os.getloadavg()[0], 2)  # the machine is shared: record how busy it was
    started = time.perf_counter()
    if "ray" in engines:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size in (int(s) for s in args.sizes.split(",")):
                rows += run_size(
                    size, USERS.get(size, 512), args.chunk_size, workers, Path(tmp), args.index, engines
                )
    finally:
        ray.shutdown()

    def rate(size: int, engine: str) -> float | None:
        found = [r["users_per_s"] for r in rows if r["n_items"] == size and r["engine"] == engine]
        return found[0] if found else None

    def ratio(size: int, a: str, b: str) -> float | None:
        x, y = rate(size, a), rate(size, b)
        return round(x / y, 2) if x and y else None

    sizes = sorted({r["n_items"] for r in rows})
    ratios = {
        "ray_over_local": {str(n): ratio(n, "ray", "local") for n in sizes},
        "ray_over_local_mt": {str(n): ratio(n, "ray", "local_mt") for n in sizes},
    }
    report = {
        "benchmark": "recommender_batch",
        "what": "users/s, top-100, synthetic catalogue: local engine (1 thread; default) vs Ray actors",
        "machine": {"cpus": cpus, "python": platform.python_version(), "platform": platform.platform()},
        "config": {
            "k": K,
            "dim": DIM,
            "history": HISTORY,
            "chunk_size": args.chunk_size,
            "ray_workers": workers,
            "index": args.index,
        },
        "ray_start_seconds": round(ray_start, 2),
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "results": rows,
        "ratios_users_per_s": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    plot(rows, args.out.with_suffix(".png"))
    print(json.dumps({"ratios": ratios, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
