"""Benchmark: batch-scoring throughput (users/s, top-100) vs catalogue size, local engine vs Ray.

The catalogue is synthetic (:class:`apps.recommender.batch.synthetic.SyntheticCatalogue`: seeded unit
item vectors, dim 64, 20 history items per user), at 10k, 100k and 1M items: uniform random vectors
(``--catalogue random``, the hardest case for approximate search) or a mixture of Gaussians with
1,000 items per cluster and users drawn from two clusters (``--catalogue clustered``, closer to real
embeddings). Search is exact (``--index flat``) or the core index's ``auto`` kinds (HNSW above 50k,
IVF-SQ8 above 500k). An approximate index is built, calibrated for the job's search size (the
cheapest efSearch/nprobe reaching recall 0.95 against exact search on held-out users) and saved once
before the jobs; the jobs load it (``index_dir``) as a production job would. Both engines run the
same job through :func:`apps.recommender.batch.job.run_batch` (chunk files, assembly of the Parquet
output), so the numbers include what a real job pays: model load (each Ray actor loads its own
copy), scoring, chunk writes and the final file. Ray runs on a local instance started once before
the timings (its start-up time is reported separately); the local engine's load time is reported
too, and the scoring-only rate beside the end-to-end one. The outputs of the engines are compared
byte for byte, and an approximate index's lists with exact search (recall@100 over 256 users).

The machine is shared with other jobs, so besides wall-clock users/s each local run records its CPU
seconds (``time.process_time``, this process, all threads): ``users_per_cpu_s`` is what one quiet
core gives, and ``projected_users_per_s_2_cores`` = 2 x that (two actors or processes, one thread
each; a projection, not a measurement).

Run (results: ``bench/results/recommender_batch.json`` and ``.png``)::

    nice -n 5 .venv/bin/python -m bench.recommender_batch
    nice -n 5 .venv/bin/python -m bench.recommender_batch --sizes 10000,100000 --workers 2
    nice -n 5 .venv/bin/python -m bench.recommender_batch --index auto --catalogue random,clustered \
        --engines local --sizes 100000,1000000   # approximate search + recall@100
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
ITEMS_PER_CLUSTER = 1000  # clustered catalogue: 1,000 items per Gaussian cluster


@dataclass(frozen=True)
class TimedLoad:
    """Wraps a factory to record how long the local engine spends loading the model."""

    spec: SyntheticCatalogue

    def __call__(self) -> SyntheticScorer:
        started, cpu = time.perf_counter(), time.process_time()
        scorer = self.spec()
        LOADS.append((time.perf_counter() - started, time.process_time() - cpu))
        BUILT[self.spec] = scorer
        return scorer

    def fingerprint(self) -> str:
        return self.spec.fingerprint()


LOADS: list[tuple[float, float]] = []
BUILT: dict[SyntheticCatalogue, SyntheticScorer] = {}  # the local engine's model, reused for recall


def recall_vs_exact(spec: SyntheticCatalogue, n_users: int = 256) -> float:
    """Mean recall@K of the approximate index's top-K lists against exact search (same users)."""
    users = [f"u{u:06d}" for u in range(min(n_users, spec.n_users))]
    approx = (BUILT.get(spec) or spec()).recommend_chunk(users, K)
    exact = dataclasses.replace(spec, index="flat", index_dir=None)().recommend_chunk(users, K)
    found = approx.groupby("user_id")["item_id"].apply(set)
    truth = exact.groupby("user_id")["item_id"].apply(set)
    return float(np.mean([len(found.get(u, set()) & truth[u]) / len(truth[u]) for u in truth.index]))


def build_saved_index(spec: SyntheticCatalogue, directory: Path) -> tuple[SyntheticCatalogue, dict[str, Any]]:
    """Build, calibrate and save the index once (what a production pipeline does before its jobs)."""
    started, cpu = time.perf_counter(), time.process_time()
    path = spec.build_index(directory, K)
    info: dict[str, Any] = {
        "build_seconds": round(time.perf_counter() - started, 1),
        "build_cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    info["kind"] = manifest["kind"]
    info["calibration"] = manifest.get("calibration")
    logger.info("built index %s", info)
    return dataclasses.replace(spec, index_dir=str(path)), info


def run_size(
    n_items: int,
    n_users: int,
    chunk_size: int,
    workers: int,
    tmp: Path,
    index: str = "flat",
    engines: tuple[str, ...] = ("local", "local_mt", "ray"),
    catalogue: str = "random",
) -> list[dict[str, Any]]:
    clusters = max(1, n_items // ITEMS_PER_CLUSTER) if catalogue == "clustered" else 0
    spec = SyntheticCatalogue(
        n_items=n_items, n_users=n_users, dim=DIM, history=HISTORY, index=index, clusters=clusters
    )
    built: dict[str, Any] = {}
    if index != "flat":
        spec, built = build_saved_index(spec, tmp / f"index-{catalogue}-{n_items}")
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
        load_average = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
        result = run_batch(factory, out, users, config, show_progress_bar=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        row: dict[str, Any] = {
            "n_items": n_items,
            "n_users": n_users,
            "catalogue": catalogue,
            "engine": name,
            "workers": workers if engine == "ray" else 1,
            "threads": threads,
            "chunks": result.n_chunks,
            "rows": result.n_rows,
            "seconds": round(seconds, 2),
            "users_per_s": round(n_users / seconds, 1),
            "index": index,
            "load_average_1m": {"start": round(load_average, 1), "end": round(os.getloadavg()[0], 1)},
        }
        if engine == "local":
            load_s, load_cpu = LOADS[0]
            row["load_seconds"] = round(load_s, 2)
            row["scoring_users_per_s"] = round(n_users / (seconds - load_s), 1)
            # CPU of this process (the Ray actors' CPU is not visible here).
            row["cpu_seconds"] = round(cpu, 2)
            row["load_cpu_seconds"] = round(load_cpu, 2)
            row["users_per_cpu_s"] = round(n_users / cpu, 1)
            row["projected_users_per_s_2_cores"] = round(2 * n_users / cpu, 1)
            row["scoring_users_per_cpu_s"] = round(n_users / max(cpu - load_cpu, 1e-9), 1)
        if built:
            row["index_build"] = built
        rows.append(row)
        outputs[name] = out.read_bytes()
        out.unlink()
        logger.info("measured %s (load average %.1f)", row, os.getloadavg()[0])
    for row in rows:
        row["identical_to_local"] = outputs[row["engine"]] == outputs.get("local", outputs[row["engine"]])
    if index != "flat":
        recall = round(recall_vs_exact(spec), 4)
        for row in rows:
            row[f"recall@{K}_vs_exact"] = recall
    BUILT.clear()
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    labels = {
        "local": "local, 1 thread",
        "local_mt": "local, 2 threads",
        "ray": "Ray, 2 actors x 1 thread",
    }
    colours = {"random": "tab:blue", "clustered": "tab:orange"}
    for catalogue in dict.fromkeys(r.get("catalogue", "random") for r in rows):
        mine = [r for r in rows if r.get("catalogue", "random") == catalogue]
        colour = colours.get(catalogue, "tab:gray")
        for engine, style in (("local", "o-"), ("local_mt", "^-"), ("ray", "s-")):
            sel = [r for r in mine if r["engine"] == engine]
            if sel:
                ax.plot(
                    [r["n_items"] for r in sel],
                    [r["users_per_s"] for r in sel],
                    style,
                    color=colour,
                    label=f"{catalogue}: {labels[engine]} (wall, shared machine)",
                )
        sel = [r for r in mine if r["engine"] == "local" and "projected_users_per_s_2_cores" in r]
        if sel:
            ax.plot(
                [r["n_items"] for r in sel],
                [r["projected_users_per_s_2_cores"] for r in sel],
                "o--",
                color=colour,
                alpha=0.7,
                label=f"{catalogue}: 2 quiet cores, projected from CPU time",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("users / s (top-100, end to end)")
    index = rows[0].get("index", "flat") if rows else "flat"
    ax.set_title(f"Batch scoring throughput, synthetic catalogue (dim 64, index {index})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
    parser.add_argument("--catalogue", default="random", help="random and/or clustered, comma-separated")
    parser.add_argument("--out", type=Path, default=None, help="default: recommender_batch[_auto].json")
    parser.add_argument(
        "--users",
        type=int,
        default=None,
        help="users per job (default: 8,192 / 4,096 / 1,024 by catalogue size)",
    )
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
            for catalogue in args.catalogue.split(","):
                for size in (int(s) for s in args.sizes.split(",")):
                    rows += run_size(
                        size,
                        args.users or USERS.get(size, 512),
                        args.chunk_size,
                        workers,
                        Path(tmp),
                        args.index,
                        engines,
                        catalogue,
                    )
    finally:
        ray.shutdown()

    def rate(catalogue: str, size: int, engine: str) -> float | None:
        found = [
            r["users_per_s"]
            for r in rows
            if r["n_items"] == size and r["engine"] == engine and r["catalogue"] == catalogue
        ]
        return found[0] if found else None

    def ratio(catalogue: str, size: int, a: str, b: str) -> float | None:
        x, y = rate(catalogue, size, a), rate(catalogue, size, b)
        return round(x / y, 2) if x and y else None

    sizes = sorted({r["n_items"] for r in rows})
    ratios = {
        f"{c}:{name}": {str(n): ratio(c, n, a, b) for n in sizes}
        for c in args.catalogue.split(",")
        for name, a, b in (("ray_over_local", "ray", "local"), ("ray_over_local_mt", "ray", "local_mt"))
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
            "catalogues": args.catalogue.split(","),
            "items_per_cluster": ITEMS_PER_CLUSTER,
            "target_recall": 0.95,
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
