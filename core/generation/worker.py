"""One shared generation worker per process: a bounded first-come queue in front of a generator.

Every Streamlit session (or API request) of a process shares one model. Without a queue, each
thread blocks on the model's lock in no particular order, and an answer can wait for minutes with
nothing to show for it. :class:`GenerationWorker` wraps a :class:`core.generation.Generator` and
presents its ``stream(prompt, **overrides)`` interface, so a bot takes it as its ``generator``:

* requests are decoded one at a time by one worker thread, in arrival order (FIFO);
* at most ``max_queue`` requests wait; one more gets :class:`QueueFullError` (when iterated);
* while a request waits, :func:`queue_status` callbacks hear its position (1 = next), which the
  chat shows as "queued (position N)";
* each request has a deadline (``deadline_s`` from submission): a request still waiting, or
  still decoding, when it passes ends with :class:`DeadlineExceededError`, and the worker moves on.

Callers catch :class:`~core.generation.types.GenerationUnavailableError` (both errors) and hand off
instead of failing. Work that needs no generation (verbatim FAQ answers, hand-offs) never enters the queue.

Example:
    >>> worker = shared_worker(Generator())          # one per process and generator
    >>> for chunk in worker.stream(messages, max_new_tokens=200):
    ...     print(chunk, end="")
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from core.generation.types import GenerationUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = int(os.environ.get("AIGC_GENERATION_QUEUE", "32"))
DEFAULT_DEADLINE_S = float(os.environ.get("AIGC_GENERATION_DEADLINE_S", "60"))
# How often a waiting request reports its position.
_POLL_S = 0.25

_STATUS: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "aigc_generation_queue_status", default=None
)


class QueueFullError(GenerationUnavailableError):
    """The generation queue already holds ``max_queue`` requests."""


class DeadlineExceededError(GenerationUnavailableError, TimeoutError):
    """The request's deadline passed while it waited or decoded."""


@contextlib.contextmanager
def queue_status(callback: Callable[[int], None]) -> Iterator[None]:
    """Within the block, requests iterated on this thread report their queue position to ``callback``.

    ``callback(n)`` is called with ``n >= 1`` while ``n - 1`` requests are ahead (``n == 1``: next)
    and once with ``0`` when decoding starts.
    """
    token = _STATUS.set(callback)
    try:
        yield
    finally:
        _STATUS.reset(token)


class _Request:
    __slots__ = ("args", "cancelled", "chunks", "deadline", "kwargs", "started", "submitted")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float) -> None:
        self.args, self.kwargs, self.deadline = args, kwargs, deadline
        self.submitted = time.monotonic()
        self.chunks: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.started = threading.Event()
        self.cancelled = threading.Event()


class GenerationWorker:
    """A FIFO queue and one decoding thread in front of ``generator`` (see the module docs).

    Args:
        generator: Anything with ``stream(prompt, **kwargs) -> Iterator[str]`` (a
            :class:`core.generation.Generator`); ``encode`` and ``max_positions`` are passed through.
        max_queue: Requests that may wait (not counting the one decoding).
        deadline_s: Seconds from submission until a request gives up.
    """

    def __init__(
        self, generator: Any, max_queue: int = DEFAULT_MAX_QUEUE, deadline_s: float = DEFAULT_DEADLINE_S
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
        self.generator = generator
        self.max_queue = max_queue
        self.deadline_s = deadline_s
        self._waiting: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.served = 0
        self.expired = 0
        self.rejected = 0

    # The generator's other attributes (encode, max_positions, backend...) pass through.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)

    @property
    def waiting(self) -> int:
        """Requests waiting now (not counting the one decoding)."""
        with self._cond:
            return len(self._waiting)

    def stream(self, *args: Any, deadline_s: float | None = None, **kwargs: Any) -> Iterator[str]:
        """Queue a request now; iterate the result for its text chunks.

        Args:
            *args: Passed to ``generator.stream`` (the prompt, settings...).
            deadline_s: This request's deadline (default: the worker's).
            **kwargs: Passed to ``generator.stream`` (``max_new_tokens=...``).

        Returns:
            An iterator of text chunks. Iterating raises :class:`QueueFullError` when the queue was
            full at submission, :class:`DeadlineExceededError` when the deadline passes first.
        """
        request = _Request(args, kwargs, time.monotonic() + (deadline_s or self.deadline_s))
        with self._cond:
            full = len(self._waiting) >= self.max_queue
            if full:
                self.rejected += 1
            else:
                self._waiting.append(request)
                self._ensure_thread()
                self._cond.notify_all()
        if full:
            return self._refused()
        return self._consume(request)

    def _refused(self) -> Iterator[str]:
        raise QueueFullError(f"{self.max_queue} answers are already waiting for the model")
        yield ""  # pragma: no cover - makes this a generator: the error surfaces when iterated

    def position(self, request: _Request) -> int:
        """1-based position of a waiting request; 0 once it is decoding (or gone)."""
        with self._cond:
            try:
                return self._waiting.index(request) + 1
            except ValueError:
                return 0

    def _consume(self, request: _Request) -> Iterator[str]:
        report = _STATUS.get()
        try:
            last = -1
            while not request.started.wait(timeout=_POLL_S):
                if time.monotonic() >= request.deadline:
                    self._drop(request)
                    raise DeadlineExceededError(
                        f"no answer within {self.deadline_s:.0f} s: waited in the queue the whole time"
                    )
                where = self.position(request)
                if report is not None and where != last and where > 0:
                    report(where)
                    last = where
            if report is not None:
                report(0)
            while True:
                timeout = request.deadline - time.monotonic()
                try:
                    kind, value = request.chunks.get(timeout=max(timeout, 0.001))
                except queue.Empty:
                    raise DeadlineExceededError(
                        f"no complete answer within {self.deadline_s:.0f} s (the model was still writing)"
                    ) from None
                if kind == "chunk":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            request.cancelled.set()  # stops decoding if the consumer left early or gave up

    def _drop(self, request: _Request) -> None:
        with self._cond:
            with contextlib.suppress(ValueError):
                self._waiting.remove(request)
            self.expired += 1

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="aigc-generation-worker", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                request = self._waiting.popleft()
            if request.cancelled.is_set() or time.monotonic() >= request.deadline:
                with self._cond:
                    self.expired += 1
                request.started.set()
                continue
            request.started.set()
            self._decode(request)

    def _decode(self, request: _Request) -> None:
        chunks = None
        try:
            chunks = self.generator.stream(*request.args, **request.kwargs)
            for chunk in chunks:
                if request.cancelled.is_set() or time.monotonic() >= request.deadline:
                    with self._cond:
                        self.expired += 1
                    return
                request.chunks.put(("chunk", chunk))
            request.chunks.put(("done", None))
            with self._cond:
                self.served += 1
        except Exception as err:  # noqa: BLE001 - handed to the waiting consumer, never lost
            logger.exception("Generation failed")
            request.chunks.put(("error", err))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


_SHARED: dict[int, GenerationWorker] = {}
_SHARED_LOCK = threading.Lock()


def shared_worker(
    generator: Any, max_queue: int = DEFAULT_MAX_QUEUE, deadline_s: float = DEFAULT_DEADLINE_S
) -> GenerationWorker:
    """The process's one worker for ``generator`` (created on first call; later settings are ignored)."""
    if isinstance(generator, GenerationWorker):
        return generator
    with _SHARED_LOCK:
        worker = _SHARED.get(id(generator))
        if worker is None or worker.generator is not generator:
            worker = GenerationWorker(generator, max_queue=max_queue, deadline_s=deadline_s)
            _SHARED[id(generator)] = worker
        return worker


__all__ = [
    "DeadlineExceededError",
    "GenerationWorker",
    "QueueFullError",
    "queue_status",
    "shared_worker",
]
