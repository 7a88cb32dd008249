"""Run the HTTP API: one uvicorn process (``local``) or Ray Serve replicas (``ray``).

On Ray each replica builds the whole app itself (:class:`RayApi.__serve_build_asgi_app__`), so every
replica loads the models once and shares nothing but the database: point ``AIGC_DB_URL`` at
PostgreSQL when replicas run on several machines. ``RAY_ADDRESS`` joins an existing cluster
(see docs/serving.md); without it a local Ray instance is started.

Both run every kernel single-threaded (:func:`single_threaded_kernels`): the API serves many
requests at once, so the cores are shared between requests, not between the threads of one matrix
product. Intra-op threads on a busy 2-core server cost more than they gain: a request's second
OpenMP (or BLAS) thread waits for a core while its partner spins at the barrier. Measured on a
loaded machine: one support question cost 250 ms of CPU with two OpenMP threads, 21 ms with one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from typing import Any, Literal

logger = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
ENGINES = ("local", "ray")


def single_threaded_kernels() -> None:
    """One thread per torch, BLAS, OpenMP and FAISS call in this process (and its children).

    The environment variables reach processes started from here (Ray workers, subprocesses);
    torch, the loaded BLAS libraries (threadpoolctl) and FAISS are told directly.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover - faiss ships with the core
        pass


def build_app(apps: Sequence[str] | None = None) -> Any:
    """The API with every installed app, or only ``apps``.

    Raises:
        ValueError: An app name that is not installed.
    """
    from core.api.app import create_app
    from core.api.plugin import api_plugins

    plugins = api_plugins()
    if apps:
        unknown = sorted(set(apps) - set(plugins))
        if unknown:
            raise ValueError(f"unknown app(s) {unknown}; installed: {', '.join(plugins) or 'none'}")
        plugins = {name: plugins[name] for name in apps}
    return create_app(plugins=plugins)


def serve_local(host: str, port: int, apps: Sequence[str] | None = None) -> None:
    """Serve with uvicorn in this process until SIGINT / SIGTERM."""
    import uvicorn

    single_threaded_kernels()
    uvicorn.run(build_app(apps), host=host, port=port, log_level="info", access_log=False)


def ray_application(apps: Sequence[str] | None = None, replicas: int = 1, num_cpus: float = 1.0) -> Any:
    """The Ray Serve application: one ingress deployment with ``replicas`` replicas of the whole API."""
    from ray import serve

    @serve.deployment(
        name="aigc-api",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus},
        max_ongoing_requests=64,
        health_check_period_s=10,
    )
    @serve.ingress()
    class RayApi:
        """One replica of the API (models loaded in the replica, once)."""

        def __init__(self, apps: list[str] | None) -> None:
            self.apps = apps

        def __serve_build_asgi_app__(self) -> Any:
            single_threaded_kernels()
            return build_app(self.apps)

    return RayApi.bind(list(apps) if apps else None)


def serve_ray(
    host: str,
    port: int,
    apps: Sequence[str] | None = None,
    replicas: int = 1,
    num_cpus: float = 1.0,
    stop: threading.Event | None = None,
) -> None:
    """Deploy on Ray Serve (``RAY_ADDRESS`` or a local instance) and wait for SIGINT / SIGTERM or ``stop``."""
    import ray
    from ray import serve

    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(ray_application(apps, replicas, num_cpus), name="aigc", route_prefix="/", blocking=False)
        logger.info("Serving on Ray", extra={"host": host, "port": port, "replicas": replicas})
        stop = stop or _stop_on_signals()
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: Engine = "local",
    apps: Sequence[str] | None = None,
    replicas: int = 1,
    num_cpus: float = 1.0,
) -> None:
    """Serve the API with ``engine`` (``local`` or ``ray``).

    Raises:
        ValueError: Unknown engine or app.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if engine == "local":
        serve_local(host, port, apps)
    else:
        serve_ray(host, port, apps, replicas, num_cpus)


__all__ = [
    "ENGINES",
    "build_app",
    "ray_application",
    "serve",
    "serve_local",
    "serve_ray",
    "single_threaded_kernels",
]
