"""The ``aigc bench`` command (registered on the root CLI by :mod:`core.cli`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from core.console import console, print_error


def bench(
    name: Annotated[
        str, typer.Argument(help="generation|embeddings|classification|index|finetune|concurrency|all|api")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    reps: Annotated[int, typer.Option(help="Timed repetitions per contestant (after a warm-up).")] = 5,
    quick: Annotated[bool, typer.Option(help="Smaller inputs: a smoke run, noisier numbers.")] = False,
    out: Annotated[Path | None, typer.Option(help="Result directory (default ./bench/results).")] = None,
    agents: Annotated[int | None, typer.Option(help="concurrency: simultaneous agents (default 20).")] = None,
    questions: Annotated[
        int | None, typer.Option(help="concurrency: questions per agent (default 5).")
    ] = None,
    clients: Annotated[int, typer.Option(help="api: most concurrent clients (curve at 1, 5, 10, N).")] = 20,
    seconds: Annotated[float, typer.Option(help="api: seconds of load per client count.")] = 60.0,
    engine: Annotated[
        list[str] | None, typer.Option("--engine", help="api: local and/or ray (default both).")
    ] = None,
    items: Annotated[int | None, typer.Option(help="monitor: news items published (default 20000).")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="monitor: redis, nats or folder (default redis).")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="finetune: classifier, sft or all (default all).")
    ] = None,
) -> None:
    """Measure the project's fast paths against peer libraries, alternating runs (2 threads).

    Writes NAME.json and NAME.md (and NAME.png where there is a curve) to the result directory; ratios
    are project / peer. A peer that is not installed is reported as skipped.
    """
    # Passive OpenMP waiting for every library in the process (torch, FAISS, llama.cpp) before they load:
    # spinning threads collapse on a shared CPU (see core.generation.llamacpp), and both sides get the
    # same setting.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from core.bench import bench_names, run_bench

    if name == "api":
        # Load on the HTTP API (needs the demo state: `aigc prepare-demo`); not part of `all`.
        from core.bench.api import ENGINES, run_api_bench
        from core.bench.harness import BenchSkipped

        try:
            result = run_api_bench(clients, seconds, engine or ENGINES, out)
        except (BenchSkipped, ValueError) as err:
            print_error(f"bench api: {err}")
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(result, indent=2, default=str))
        else:
            console.print_json(json.dumps(result, default=str))
        return
    if name != "all" and name not in bench_names():
        print_error(f"unknown benchmark {name!r}; choose {', '.join(bench_names())} or all")
        raise typer.Exit(2)
    if task is not None and task not in ("classifier", "sft", "all"):
        print_error(f"--task must be classifier, sft or all, got {task!r}")
        raise typer.Exit(2)
    for option, value in (("--agents", agents), ("--questions", questions), ("--items", items)):
        if value is not None and value < 1:
            print_error(f"{option} must be at least 1, got {value}")
            raise typer.Exit(2)
    result = run_bench(
        name,
        reps=reps,
        quick=quick,
        out=out,
        options={"agents": agents, "questions": questions, "items": items, "source": source, "task": task},
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        console.print_json(json.dumps(result, default=str))
