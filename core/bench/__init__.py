"""``aigc bench``: the project's hot paths measured against the tools users would pick instead.

Benchmarks (each a module with ``run(reps, quick, out) -> dict``):

* ``generation``: decode tokens/s and time to first token vs llama.cpp and transformers (base + LoRA);
* ``embeddings``: sentences/s vs sentence-transformers, with cosine to its vectors;
* ``classification``: items/s vs a transformers ``pipeline``, with label agreement;
* ``index``: VectorIndex build time, memory, p50/p99 latency and recall@10 at 10k/100k/1M vectors;
* ``finetune``: training samples/s of the core loop vs transformers ``Trainer``.

Apps add their own with :func:`register_bench` when their CLI module is imported (the support app's
``concurrency``: 20 agents at once against one bot and store).

Run with ``aigc bench NAME [--json]`` or ``python -m bench.NAME``; see :mod:`core.bench.harness`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.bench.harness import BenchSkipped, environment, pin_threads, results_dir, write_results

logger = logging.getLogger(__name__)

BENCHES = ("generation", "embeddings", "classification", "index", "finetune")
# Benchmarks of the apps: name -> "module:function", registered at import of the app's CLI.
_APP_BENCHES: dict[str, str] = {}


def register_bench(name: str, target: str) -> None:
    """Make ``aigc bench NAME`` run ``target`` (``"package.module:run"``, imported when it runs).

    The function takes ``reps``, ``quick`` and ``out`` like the core benchmarks, plus any of the
    command's extra options it names (``agents``, ``questions``).

    Raises:
        ValueError: ``name`` is a core benchmark, or ``target`` is not ``module:function``.
    """
    if name in BENCHES or name == "all":
        raise ValueError(f"benchmark name {name!r} is taken by the core")
    if target.count(":") != 1:
        raise ValueError(f"benchmark target must be 'module:function', got {target!r}")
    _APP_BENCHES[name] = target


def bench_names() -> list[str]:
    """Core benchmarks, then the apps' registered ones."""
    return [*BENCHES, *sorted(_APP_BENCHES)]


def runner(name: str) -> Callable[..., dict[str, Any]]:
    """The ``run`` function of benchmark ``name``.

    Raises:
        ValueError: for an unknown name.
    """
    if name in _APP_BENCHES:
        module, function = _APP_BENCHES[name].split(":")
        return getattr(importlib.import_module(module), function)
    if name not in BENCHES:
        raise ValueError(f"Unknown benchmark {name!r}; choose one of {', '.join(bench_names())} or all")
    return importlib.import_module(f"core.bench.{name}").run


def run_bench(
    name: str,
    reps: int = 5,
    quick: bool = False,
    out: str | Path | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one benchmark (or ``all``) pinned to 2 threads; a skipped one reports why instead of numbers.

    Args:
        name: A name from :data:`BENCHES`, or ``all``.
        reps: Timed repetitions per contestant (after one warm-up).
        quick: Smaller inputs (a smoke run; numbers are less stable).
        out: Result directory (default ``./bench/results``).
        options: Extra options (``agents``, ``questions``), passed to benchmarks that take them.

    Returns:
        The result dict (for ``all``: ``{name: result}``).
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    pin_threads()
    if name == "all":
        results = {n: run_bench(n, reps, quick, out) for n in BENCHES}
        _write_summary(results, out)
        return results
    run = runner(name)
    accepted = inspect.signature(run).parameters
    extra = {k: v for k, v in (options or {}).items() if k in accepted and v is not None}
    try:
        return run(reps=reps, quick=quick, out=out, **extra)
    except BenchSkipped as skip:
        logger.warning("benchmark skipped", extra={"bench": name, "reason": str(skip)})
        result = {"bench": name, "skipped": str(skip), "env": environment()}
        write_results(name, result, f"### {name}\n\nskipped: {skip}\n", out)
        return result


def _write_summary(results: dict[str, dict[str, Any]], out: str | Path | None) -> None:
    """``README.md`` in the result directory: every benchmark's Markdown table, in order."""
    directory = results_dir(out)
    parts = ["# Benchmarks (`aigc bench all`)\n"]
    for name in results:
        md = directory / f"{name}.md"
        if md.is_file():
            parts.append(md.read_text())
    (directory / "README.md").write_text("\n".join(parts))


__all__ = ["BENCHES", "BenchSkipped", "bench_names", "register_bench", "run_bench", "runner"]
