"""The engines of a batch job: where chunks of users are scored (this process, or Ray actors).

Both engines run the same :class:`ChunkScorer` on the same chunks and hand each result to the job's
``sink`` (:mod:`apps.recommender.batch.job` validates and writes it), so their outputs are identical
and a killed job resumes the same way whichever engine ran it.

* :func:`score_chunks_local`: chunks one after another in this process.
* :func:`score_chunks_ray`: a pool of Ray actors, each loading the model once from the job's
  :class:`ScorerFactory` (for a saved model: its directory path, so the directory must be readable
  from every node: a shared filesystem or object-store mount), then scoring whole chunks. Results
  come back to the driver, which writes them exactly as the local engine does.

Where Ray runs:

* no Ray running in this process and no ``RAY_ADDRESS``: ``ray.init()`` starts a local instance
  for the job and shuts it down afterwards;
* ``RAY_ADDRESS=ray://head-node:10001`` (Ray Client) or ``RAY_ADDRESS=auto`` / ``head:6379`` on a
  cluster node: the job connects to that cluster; one actor per CPU of the cluster unless
  ``ray_workers`` says otherwise. Every node needs this package installed (same version), e.g.
  in the cluster's image, or shipped with ``RAY_RUNTIME_ENV_JSON='{"py_modules": [...]}'``
  (read by the driver here);
* Ray already initialised by the caller (tests, notebooks): that instance is used and left running.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import pandas as pd

from core.batching import map_ordered
from core.progress import progress_bar

logger = logging.getLogger(__name__)


class ChunkScorer(Protocol):
    """A loaded model that scores users in chunks."""

    def user_ids(self) -> list[str]:
        """Every user the model knows, in a stable order (``--users all``)."""
        ...

    def recommend_chunk(self, user_ids: Sequence[str], k: int) -> pd.DataFrame:
        """Top-``k`` unseen items per user (``OUTPUT_COLUMNS`` of the job), users in input order, by rank."""
        ...


class ScorerFactory(Protocol):
    """A picklable recipe for a :class:`ChunkScorer` (Ray workers call it to load their copy)."""

    def __call__(self) -> ChunkScorer:
        """Load the scorer."""
        ...

    def fingerprint(self) -> str:
        """Identity of the model (path and content hash), recorded in the job manifest."""
        ...


def limit_threads(threads: int | None) -> AbstractContextManager[Any]:
    """Cap BLAS and OpenMP threads (``None``: leave them alone)."""
    if threads is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def score_chunks_local(
    factory: ScorerFactory,
    chunks: Sequence[tuple[int, list[str]]],
    k: int,
    sink: Callable[[int, pd.DataFrame], None],
    show_progress_bar: bool = True,
    scorer: ChunkScorer | None = None,
    threads: int | None = 1,
    workers: int = 1,
) -> None:
    """The local engine: score ``chunks`` in this process and pass each to ``sink``, in chunk order.

    ``workers`` chunks are scored at once on threads sharing the one loaded scorer (numpy and scipy
    release the GIL in their kernels, so a second thread puts the second core to work without a
    second copy of the model; 1: one after another). Each chunk's frame is the same whatever the
    count: the BLAS/OpenMP cap (``threads``) is set once for the whole loop, not per chunk, because
    threadpoolctl's limits are process-wide.
    """
    scorer = scorer if scorer is not None else factory()
    bar = progress_bar(total=len(chunks), desc="Scoring", unit="chunk", disable=not show_progress_bar)
    with bar, limit_threads(threads):
        frames = map_ordered(lambda chunk: (chunk[0], scorer.recommend_chunk(chunk[1], k)), chunks, workers)
        for index, frame in frames:
            sink(index, frame)
            bar.update()


RUNTIME_ENV_VAR = "RAY_RUNTIME_ENV_JSON"


class ChunkWorker:
    """Actor body: holds one loaded scorer and scores chunks with it."""

    def __init__(self, factory: ScorerFactory, threads: int | None = 1) -> None:
        self.scorer: ChunkScorer = factory()
        self.threads = threads

    def score(self, index: int, user_ids: list[str], k: int) -> tuple[int, pd.DataFrame]:
        """Top-``k`` rows of one chunk, tagged with its index (same thread cap as the local engine)."""
        with limit_threads(self.threads):
            return index, self.scorer.recommend_chunk(user_ids, k)


def _init_ray() -> bool:
    """Connect to ``RAY_ADDRESS`` or start a local instance; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env: dict[str, Any] | None = None
    if os.environ.get(RUNTIME_ENV_VAR):
        runtime_env = json.loads(os.environ[RUNTIME_ENV_VAR])
    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
    logger.info(
        "Ray initialised", extra={"address": address or "local", "resources": ray.cluster_resources()}
    )
    return True


def score_chunks_ray(
    factory: ScorerFactory,
    chunks: Sequence[tuple[int, list[str]]],
    k: int,
    sink: Callable[[int, pd.DataFrame], None],
    workers: int | None = None,
    show_progress_bar: bool = True,
    threads: int | None = 1,
) -> None:
    """Score ``chunks`` on Ray actors; ``sink(index, frame)`` runs in the driver as each one returns.

    Args:
        factory: Picklable model loader, called once per actor.
        chunks: ``(chunk index, user ids)`` pairs still to score.
        k: Items per user.
        sink: Writes a finished chunk (in completion order; chunk files make order irrelevant).
        workers: Actors; default one per CPU in the cluster (at most one per chunk).
        show_progress_bar: tqdm bar over chunks.
        threads: BLAS/OpenMP threads per actor (also its CPU reservation); ``None``: Ray's default.

    Raises:
        ImportError: Ray is not installed (``pip install "ray[data]"``).
    """
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as err:
        raise ImportError('the Ray engine needs Ray: pip install "ray[data]"') from err
    started = _init_ray()
    actors: list[Any] = []
    try:
        cpus = threads or 1
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)
        n = max(1, min(n, len(chunks)))
        remote_worker = ray.remote(num_cpus=cpus)(ChunkWorker)
        actors = [remote_worker.remote(factory, threads) for _ in range(n)]
        pool = ActorPool(actors)
        logger.info("Ray scoring", extra={"actors": n, "chunks": len(chunks)})
        results = pool.map_unordered(
            lambda actor, chunk: actor.score.remote(chunk[0], chunk[1], k), list(chunks)
        )
        for index, frame in progress_bar(
            results, total=len(chunks), desc="Scoring (ray)", unit="chunk", disable=not show_progress_bar
        ):
            sink(index, frame)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
