"""Micro-batching for model endpoints: concurrent requests share model calls on a few worker threads.

Under load, twenty clients each posting 32 headlines would otherwise run twenty forward passes at
once on the request threads: two cores juggle twenty passes (and their intra-op threads), and every
pass pads to its own longest text. :class:`MicroBatcher` queues the requests' items instead; a
worker thread (one per core) takes everything queued when it becomes free (up to ``max_items``),
calls the model once over all of it (the model sorts by length and pads per batch) and hands each
request its slice. Nothing waits for a batch to fill: with one client a request is served at once,
under load requests batch up by themselves while the previous calls run.

The worker threads may run at a lower CPU priority (``nice``, Linux): throughput work (classifying
batches) then yields the CPU to latency-bound requests (recommendations, quoted answers) served on
the request threads, and takes every cycle they leave idle.

Example:
    >>> batcher = MicroBatcher(model.label, max_items=256, name="classify")
    >>> labels = batcher(["Acme beats estimates", "Globex cuts guidance"])  # from any thread
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class _Job(Generic[T, R]):
    __slots__ = ("future", "items")

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self.future: Future[list[R]] = Future()


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` over the items of concurrent calls together, on ``workers`` worker threads.

    Args:
        fn: Maps a list of items to a list of results of the same length, in order (thread-safe
            when ``workers > 1``, as an inference-mode torch model is).
        max_items: Most items in one call of ``fn`` (a single larger request still runs alone).
        workers: Worker threads, each calling ``fn`` on its own batch (with single-threaded kernels,
            one per core keeps every core busy without intra-op synchronisation).
        nice: Niceness added to the worker threads (0: same priority as the request threads;
            Linux only, ignored elsewhere).
        name: Thread name (and log field).
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        max_items: int = 256,
        workers: int = 1,
        nice: int = 0,
        name: str = "batch",
    ) -> None:
        if max_items < 1 or workers < 1:
            raise ValueError(f"max_items and workers must be >= 1, got {max_items} and {workers}")
        self.fn = fn
        self.max_items = max_items
        self.workers = workers
        self.nice = nice
        self.name = name
        self.calls = 0
        self.items = 0
        self._queue: deque[_Job[T, R]] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def __call__(self, items: Sequence[T], timeout: float | None = None) -> list[R]:
        """``fn(items)``, computed together with other threads' items; blocks until done.

        Raises:
            RuntimeError: The batcher is closed.
            TimeoutError: No result within ``timeout`` seconds.
            Exception: Whatever ``fn`` raised for the batch holding these items.
        """
        job: _Job[T, R] = _Job(list(items))
        if not job.items:
            return []
        with self._cond:
            if self._closed:
                raise RuntimeError(f"micro-batcher {self.name!r} is closed")
            self._queue.append(job)
            if not self._threads:
                for i in range(self.workers):
                    thread = threading.Thread(target=self._run, name=f"aigc-{self.name}-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._cond.notify()
        return job.future.result(timeout)

    def close(self) -> None:
        """Stop the worker after the queued jobs."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self) -> list[_Job[T, R]] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            jobs = [self._queue.popleft()]
            size = len(jobs[0].items)
            while self._queue and size + len(self._queue[0].items) <= self.max_items:
                job = self._queue.popleft()
                jobs.append(job)
                size += len(job.items)
            return jobs

    def _run(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:  # on Linux a thread's niceness is its own (and its children's, e.g. OpenMP threads)
                os.setpriority(
                    os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + self.nice
                )
            except OSError as err:
                logger.warning("Worker priority unchanged", extra={"batcher": self.name, "error": str(err)})
        while (jobs := self._take()) is not None:
            items = [item for job in jobs for item in job.items]
            try:
                results = list(self.fn(items))
                if len(results) != len(items):
                    raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} items")
            except BaseException as err:  # noqa: BLE001 - handed to every caller of the batch
                for job in jobs:
                    job.future.set_exception(err)
                continue
            with self._cond:
                self.calls += 1
                self.items += len(items)
            start = 0
            for job in jobs:
                job.future.set_result(results[start : start + len(job.items)])
                start += len(job.items)


__all__ = ["MicroBatcher"]
