"""``aigc bench api``: load on the HTTP API, served locally (uvicorn) and on Ray Serve, on this machine.

For each engine the command starts ``aigc serve`` as a subprocess over the current ``AIGC_DATA_DIR``
and ``AIGC_DB_URL`` (the demo state: run ``aigc prepare-demo`` first), creates a throw-away admin user
and key (revoked afterwards), and runs closed-loop clients (each sends its next request when the last
one answered) for a few client counts up to ``--clients``. Every client cycles through the apps'
sample requests (:attr:`core.api.ApiPlugin.bench_requests`: FAQ questions whose answers are quoted, a
batch of 32 headlines to classify, recommendations and similar items), so each endpoint gets the same
share of requests. Reported per engine and client count: requests/s, and per endpoint count, errors,
p50/p95/p99 latency and items/s. The clients run on the same CPUs as the server: on a 2-core machine
that costs the server part of its capacity, and the numbers say so rather than hide it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests

from core.bench.harness import BenchSkipped, environment, markdown_table, save_plot, write_results

logger = logging.getLogger(__name__)

NAME = "api"
ENGINES = ("local", "ray")
# Targets of the issue on 2 cores (checked in the report, never asserted in tests).
TARGETS = {"classify_texts_per_s": 200.0, "recommend_users_p95_ms": 50.0, "support_ask_p95_ms": 1000.0}


def client_steps(clients: int) -> list[int]:
    """Client counts of the curve: 1, 5, 10 and ``clients`` (those not above it)."""
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    return sorted({c for c in (1, 5, 10) if c < clients} | {clients})


def _requests_mix() -> list[Any]:
    from core.api.plugin import api_plugins

    per_app = []
    for name, plugin in api_plugins().items():
        if plugin.bench_requests is None:
            continue
        reqs = plugin.bench_requests()
        by_name: dict[str, list[Any]] = defaultdict(list)
        for req in reqs:
            by_name[req.name].append(req)
        per_app.extend(by_name.values())
        logger.info("bench requests", extra={"app": name, "requests": len(reqs)})
    if not per_app:
        raise BenchSkipped("no installed app offers bench requests (entry points aigc.api)")
    return per_app


def _start_server(engine: str, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "core.cli", "serve", "--engine", engine, "--port", str(port)]
    if engine == "ray":
        cmd += ["--replicas", "1", "--num-cpus", "1"]
    env = {**os.environ, "AIGC_API_RATE_PER_S": "0", "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchSkipped(f"aigc serve exited: {log.read_text()[-1500:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise BenchSkipped(f"the API was not ready within {timeout_s:.0f} s (run `aigc prepare-demo` first?)")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bench_key() -> tuple[str, str]:
    """A fresh admin user and key for the run: ``(key, key prefix)``."""
    from core.auth import add_user, create_api_key

    name = f"bench-{secrets.token_hex(4)}"
    add_user(name, "admin", secrets.token_urlsafe(24), actor="aigc bench api")
    info, key = create_api_key(name, label="aigc bench api", actor="aigc bench api")
    return key, info.prefix


def _drive(url: str, key: str, mix: list[list[Any]], clients: int, seconds: float) -> dict[str, Any]:
    """Closed-loop load from ``clients`` threads for ``seconds``; per-endpoint latencies and errors."""
    samples: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    items: dict[str, int] = defaultdict(int)
    error_examples: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        # Endpoints in turn (each client starting at another), each endpoint's requests in turn.
        queues = [itertools.cycle(group[index % len(group) :] + group[: index % len(group)]) for group in mix]
        turn = index
        while time.perf_counter() < deadline:
            req = next(queues[turn % len(queues)])
            turn += 1
            t0 = time.perf_counter()
            try:
                response = session.request(req.method, url + req.path, json=req.body, timeout=60)
                ok, detail = response.status_code < 400, f"{response.status_code} {response.text[:120]}"
            except requests.RequestException as err:
                ok, detail = False, type(err).__name__
            elapsed = time.perf_counter() - t0
            name = req.name
            if ok and req.label_field:
                with contextlib.suppress(ValueError):
                    name = f"{req.name} ({response.json().get(req.label_field)})"
            with lock:
                if ok:
                    samples[name].append(elapsed)
                    items[name] += req.items
                else:
                    errors[req.name] += 1
                    if len(error_examples) < 5:
                        error_examples.append(f"{req.name}: {detail}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    endpoints = {}
    for name in sorted(set(samples) | set(errors)):
        lat = np.asarray(samples.get(name, []), dtype=float) * 1000
        endpoints[name] = {
            "requests": int(lat.size),
            "errors": errors.get(name, 0),
            "requests_per_s": round(lat.size / wall, 2),
            "items_per_s": round(items.get(name, 0) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        }
    total = sum(e["requests"] for e in endpoints.values())
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests_per_s": round(total / wall, 2),
        "errors": sum(errors.values()),
        "error_examples": error_examples,
        "endpoints": endpoints,
    }


def _tree_cpu_s(proc: Any) -> float:
    """CPU seconds (user + system) of a process and its living descendants (Ray's workers)."""
    import psutil

    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def cpu_per_request(
    url: str, key: str, mix: list[list[Any]], pid: int, per_endpoint: int = 40, idle_s: float = 2.0
) -> dict[str, Any]:
    """CPU time per request of each endpoint, from one client sending one request at a time.

    The server's CPU (its process tree, less the idle rate measured first: Ray's own processes
    tick along) and this client's are read around every request, so the numbers hold on a busy
    machine where latencies do not: a request costs the same CPU whoever else runs.

    Returns:
        ``{"endpoints": {name: {"requests", "server_cpu_ms", "client_cpu_ms", "wall_ms"}},
        "idle_server_cpu_per_s": ...}``; names split by ``label_field`` like the load steps.
    """
    import psutil

    proc = psutil.Process(pid)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    before, t0 = _tree_cpu_s(proc), time.perf_counter()
    time.sleep(idle_s)
    idle = max(0.0, (_tree_cpu_s(proc) - before) / (time.perf_counter() - t0))
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for group in mix:
        for req in itertools.islice(itertools.cycle(group), per_endpoint):
            server0, client0, wall0 = _tree_cpu_s(proc), time.process_time(), time.perf_counter()
            response = session.request(req.method, url + req.path, json=req.body, timeout=120)
            name = req.name
            if response.status_code >= 400:
                name = f"{req.name} [{response.status_code}]"  # errors are cheap: never mix them in
            elif req.label_field:
                with contextlib.suppress(ValueError):
                    name = f"{req.name} ({response.json().get(req.label_field)})"
            client, wall = time.process_time() - client0, time.perf_counter() - wall0
            server = _tree_cpu_s(proc) - server0 - idle * wall
            row = totals[name]
            row[0] += 1
            row[1] += server
            row[2] += client
            row[3] += wall
    endpoints = {
        name: {
            "requests": int(n),
            "server_cpu_ms": round(1000 * server / n, 2),
            "client_cpu_ms": round(1000 * client / n, 2),
            "wall_ms": round(1000 * wall / n, 2),
        }
        for name, (n, server, client, wall) in sorted(totals.items())
    }
    return {"endpoints": endpoints, "idle_server_cpu_per_s": round(idle, 4)}


def cpu_bound_capacity(profile: dict[str, Any], mix: list[list[Any]], cores: float) -> dict[str, Any]:
    """What ``cores`` fully busy CPUs can serve of the benchmark's mix, from the CPU per request.

    Closed-loop clients send each endpoint the same share of requests, so one round of the mix
    (one request per endpoint) costs the sum of their CPU (server and client, which share the
    machine); the busy machine completes ``cores / that`` rounds a second whatever the number of
    clients. Returns rounds/s and classified texts/s at that ceiling.
    """
    endpoints = profile["endpoints"]
    round_s = 0.0
    for group in mix:
        name = group[0].name
        rows = [e for n, e in endpoints.items() if n == name or n.startswith(f"{name} (")]
        if not rows:
            continue
        n = sum(r["requests"] for r in rows)
        round_s += sum(r["requests"] * (r["server_cpu_ms"] + r["client_cpu_ms"]) for r in rows) / n / 1000
    rounds = cores / round_s if round_s > 0 else None
    texts = {group[0].name: group[0].items for group in mix}.get("finance/classify", 0)
    return {
        "cores": cores,
        "round_cpu_ms": round(1000 * round_s, 1),
        "rounds_per_s": None if rounds is None else round(rounds, 2),
        "classify_texts_per_s": None if rounds is None else round(rounds * texts, 1),
    }


def bench_engine(engine: str, clients: int, seconds: float, port: int = 8765) -> dict[str, Any]:
    """Serve with ``engine``, then run the client steps (``seconds`` each); the server is stopped after."""
    mix = _requests_mix()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="aigc-bench-api-") as tmp:
        log = Path(tmp) / "serve.log"
        proc = _start_server(engine, port, log)
        t0 = time.perf_counter()
        try:
            _wait_ready(proc, url, log)
            ready_s = time.perf_counter() - t0
            key, prefix = _bench_key()
            try:
                _drive(url, key, mix, min(clients, 2), min(5.0, seconds))  # warm-up, not reported
                cpu = cpu_per_request(url, key, mix, proc.pid)
                steps = [_drive(url, key, mix, c, seconds) for c in client_steps(clients)]
            finally:
                from core.auth import revoke_api_key

                revoke_api_key(prefix, actor="aigc bench api")
        finally:
            _stop(proc)
    cores = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    cpu["capacity"] = cpu_bound_capacity(cpu, mix, cores)
    return {"engine": engine, "ready_s": round(ready_s, 1), "cpu": cpu, "steps": steps}


def _quoted_p95(endpoints: dict[str, Any]) -> float | None:
    names = ("support/ask (faq)", "support/ask (extract)")
    quoted = [endpoints[n]["p95_ms"] for n in names if endpoints.get(n, {}).get("p95_ms") is not None]
    if quoted:
        return max(quoted)
    return endpoints.get("support/ask", {}).get("p95_ms")


def check_targets(step: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against one step (the most clients): value, target, met."""
    ep = step["endpoints"]
    values = {
        "classify_texts_per_s": ep.get("finance/classify", {}).get("items_per_s"),
        "recommend_users_p95_ms": ep.get("recommend/users", {}).get("p95_ms"),
        # Quoted answers (routes faq and extract; generated ones are reported beside them): the
        # larger p95 of the two bounds the p95 of both together.
        "support_ask_p95_ms": _quoted_p95(ep),
    }
    out: dict[str, Any] = {"errors": {"value": step["errors"], "target": 0, "met": step["errors"] == 0}}
    for name, target in TARGETS.items():
        value = values[name]
        met = None if value is None else (value >= target if name.endswith("per_s") else value <= target)
        out[name] = {"value": value, "target": target, "met": met}
    return out


def _markdown(result: dict[str, Any]) -> str:
    rows = []
    for run in result["engines"].values():
        for step in run["steps"]:
            for name, e in step["endpoints"].items():
                rows.append(
                    [run["engine"], step["clients"], name, e["requests"], e["errors"], e["requests_per_s"],
                     e["items_per_s"], e["p50_ms"], e["p95_ms"], e["p99_ms"]]
                )  # fmt: skip
    table = markdown_table(
        [
            "engine",
            "clients",
            "endpoint",
            "requests",
            "errors",
            "req/s",
            "items/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ],
        rows,
    )
    targets = []
    for engine, run in result["engines"].items():
        for name, t in run["targets"].items():
            targets.append(
                [engine, name, t["value"], t["target"], {True: "met", False: "**miss**"}.get(t["met"], "–")]
            )
    cpu_rows, capacity = [], []
    for engine, run in result["engines"].items():
        for name, e in run.get("cpu", {}).get("endpoints", {}).items():
            cpu_rows.append(
                [engine, name, e["requests"], e["server_cpu_ms"], e["client_cpu_ms"], e["wall_ms"]]
            )
        cap = run.get("cpu", {}).get("capacity")
        if cap:
            capacity.append([engine, cap["cores"], cap["round_cpu_ms"], cap["rounds_per_s"],
                             cap["classify_texts_per_s"]])  # fmt: skip
    return (
        f"### api (`aigc bench api --clients {result['clients']} --seconds {result['seconds']}`)\n\n"
        + table
        + "\n\nTargets at the most clients:\n\n"
        + markdown_table(["engine", "target", "value", "goal", "status"], targets)
        + "\n\nCPU per request (one client, one request at a time):\n\n"
        + markdown_table(
            ["engine", "endpoint", "requests", "server CPU ms", "client CPU ms", "wall ms"], cpu_rows
        )
        + "\n\nCPU-bound ceiling of the mix (all cores busy):\n\n"
        + markdown_table(["engine", "cores", "CPU ms per round", "rounds/s", "classify texts/s"], capacity)
        + "\n"
    )


def _plot(result: dict[str, Any], out: str | Path | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_p95) = plt.subplots(1, 2, figsize=(11, 4))
    for engine, run in result["engines"].items():
        clients = [s["clients"] for s in run["steps"]]
        ax_rps.plot(clients, [s["requests_per_s"] for s in run["steps"]], marker="o", label=engine)
        names = sorted({n for s in run["steps"] for n in s["endpoints"]})
        for name in names:
            p95 = [s["endpoints"].get(name, {}).get("p95_ms") for s in run["steps"]]
            style = "-" if engine == "local" else "--"
            ax_p95.plot(clients, p95, style, marker="o", label=f"{engine} {name}")
    ax_rps.set(xlabel="concurrent clients", ylabel="requests/s (all endpoints)", title="Throughput")
    ax_p95.set(xlabel="concurrent clients", ylabel="p95 latency (ms)", title="p95 latency", yscale="log")
    ax_rps.legend()
    ax_p95.legend(fontsize=7)
    for ax in (ax_rps, ax_p95):
        ax.grid(alpha=0.3)
    return save_plot(fig, NAME, out)


def run_api_bench(
    clients: int = 20,
    seconds: float = 60.0,
    engines: Sequence[str] = ENGINES,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Run the load benchmark on each engine; writes ``api.json``, ``api.md`` and ``api.png``.

    Args:
        clients: Most concurrent clients (the curve also runs 1, 5 and 10 below it).
        seconds: Duration of each client step.
        engines: ``local`` and/or ``ray``.
        out: Result directory (default ``./bench/results``).

    Raises:
        ValueError: Bad arguments.
        BenchSkipped: The API cannot be started or is not ready (no demo state).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {', '.join(ENGINES)}")
    result: dict[str, Any] = {"bench": NAME, "clients": clients, "seconds": seconds, "env": environment()}
    result["engines"] = {}
    for engine in engines:
        run = bench_engine(engine, clients, seconds)
        run["targets"] = check_targets(run["steps"][-1])
        result["engines"][engine] = run
    result["plot"] = _plot(result, out)
    write_results(NAME, result, _markdown(result), out)
    return result


__all__ = ["ENGINES", "TARGETS", "bench_engine", "check_targets", "client_steps", "run_api_bench"]
