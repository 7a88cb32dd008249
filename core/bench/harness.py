"""Shared machinery of ``aigc bench``: alternating timed repetitions, medians, ratios, result files.

Every benchmark measures the project's path and its peers *in the same run*, alternating
``project, peer, project, peer, ...`` after a warm-up, so machine noise (other processes on a shared
2-core box) hits both sides alike; the ratios are the result, absolute times are context.

Result files (see :func:`write_results`): ``<out>/<name>.json`` (the full result), ``<out>/<name>.md``
(a Markdown table for the README) and, where a benchmark has a curve, ``<out>/<name>.png``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.atomic import atomic_path, write_bytes_atomic

logger = logging.getLogger(__name__)

THREADS = 2
DEFAULT_REPS = 5
SHARED_DATA_ENV = "AIGC_SHARED_DATA"


class BenchSkipped(Exception):
    """A benchmark (or one peer) cannot run here; the message says why (reported, never faked)."""


def pin_threads(threads: int = THREADS) -> None:
    """Pin torch, BLAS/OpenMP and tokenizers to ``threads`` CPU threads (set before heavy imports)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover - faiss ships with the core
        pass


def has_module(name: str) -> bool:
    """Whether a peer library is importable (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (or ``$AIGC_SHARED_DATA``).

    Raises:
        BenchSkipped: when the directory is absent.
    """
    from core.paths import project_root

    candidates = [os.environ.get(SHARED_DATA_ENV), Path.cwd().parent / "shared" / "data"]
    candidates.append(project_root().parent / "shared" / "data")
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise BenchSkipped(f"shared data not found (looked in ../shared/data; set {SHARED_DATA_ENV})")


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (``/proc``; falls back to the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


@dataclass
class Timings:
    """Seconds per repetition of each contestant, in the order they ran."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return median(self.runs[name])


def alternate(
    contestants: Mapping[str, Callable[[], Any]],
    reps: int = DEFAULT_REPS,
    warmup: int = 1,
    label: str = "",
) -> Timings:
    """Time each contestant ``reps`` times, interleaved, after ``warmup`` untimed rounds.

    Args:
        contestants: ``{name: zero-argument callable}``; the last return value of each is kept in
            :attr:`Timings.outputs` (e.g. vectors to compare).
        reps: Timed repetitions per contestant (at least 1).
        warmup: Untimed rounds first (model loading, caches, allocator).
        label: Shown in the log.

    Returns:
        The :class:`Timings`.
    """
    timings = Timings(runs={name: [] for name in contestants})
    for _ in range(warmup):
        for name, fn in contestants.items():
            timings.outputs[name] = fn()
    for rep in range(reps):
        # Alternate the starting side too, so neither always runs right after the other's cache churn.
        names = list(contestants) if rep % 2 == 0 else list(reversed(contestants))
        for name in names:
            t0 = time.perf_counter()
            timings.outputs[name] = contestants[name]()
            timings.runs[name].append(time.perf_counter() - t0)
        logger.info(
            "bench rep",
            extra={"bench": label, "rep": rep, **{n: round(v[-1], 4) for n, v in timings.runs.items()}},
        )
    return timings


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu or platform.processor(),
        "cpus_visible": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg_1m": round(load[0], 2) if load else None,
        # The fast paths depend on these: bf16 weights only pay off with AVX512-BF16/AMX.
        "cpu_fast_bf16": _fast_bf16(),
    }


def _fast_bf16() -> bool:
    from core.precision import cpu_has_fast_bf16

    return cpu_has_fast_bf16()


def results_dir(out: str | Path | None = None) -> Path:
    """Where result files go: ``out``, else ``./bench/results`` (created)."""
    path = Path(out) if out is not None else Path.cwd() / "bench" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(name: str, result: dict[str, Any], markdown: str, out: str | Path | None = None) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` atomically; returns the JSON path."""
    directory = results_dir(out)
    path = directory / f"{name}.json"
    write_bytes_atomic(path, (json.dumps(result, indent=2, default=str) + "\n").encode())
    write_bytes_atomic(directory / f"{name}.md", markdown.encode())
    return path


def save_figure(fig: Any, path: str | Path, dpi: int = 120, **kwargs: Any) -> Path:
    """Write a matplotlib figure to ``path`` atomically (temporary sibling, then rename) and close it.

    Args:
        fig: The figure.
        path: Target file; the format follows its suffix.
        dpi: Resolution.
        **kwargs: Passed to ``fig.savefig`` (e.g. ``bbox_inches="tight"``).

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, **kwargs)
    finally:
        plt.close(fig)
    return path


def save_plot(fig: Any, name: str, out: str | Path | None = None) -> str:
    """Save a matplotlib figure as ``<name>.png`` in the result directory; returns the file name."""
    return save_figure(fig, results_dir(out) / f"{name}.png", dpi=110, bbox_inches="tight").name


def ratio(project: float | None, peer: float | None) -> float | None:
    """``project / peer`` rounded to 3 places (``None`` when either is missing or the peer is 0)."""
    if project is None or peer is None or peer == 0:
        return None
    return round(project / peer, 3)
