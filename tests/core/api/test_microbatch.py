"""MicroBatcher: concurrent calls share model calls, each caller gets its own slice, errors reach all."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.api.microbatch import MicroBatcher


def test_concurrent_calls_are_batched_and_answered_in_order() -> None:
    calls: list[list[int]] = []
    release = threading.Event()

    def square(items: list[int]) -> list[int]:
        calls.append(list(items))
        release.wait(5)  # the first call holds the worker while the others queue up
        return [i * i for i in items]

    batcher = MicroBatcher(square, max_items=100, name="square")
    requests = [list(range(10 * r, 10 * r + 3)) for r in range(8)]
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher, requests[0])
        while not calls:
            time.sleep(0.01)
        rest = [pool.submit(batcher, items) for items in requests[1:]]
        while sum(len(j.items) for j in batcher._queue) < 21:  # noqa: SLF001 - all seven queued
            time.sleep(0.01)
        release.set()
        answers = [first.result(5)] + [f.result(5) for f in rest]
    assert answers == [[i * i for i in items] for items in requests]
    assert len(calls) == 2 and sorted(calls[1]) == sorted(i for items in requests[1:] for i in items)
    assert batcher.calls == 2 and batcher.items == 24
    batcher.close()


def test_batches_stay_under_max_items_and_errors_reach_every_caller() -> None:
    sizes: list[int] = []

    def check(items: list[str]) -> list[str]:
        sizes.append(len(items))
        if "bad" in items:
            raise ValueError("bad item")
        return [s.upper() for s in items]

    batcher = MicroBatcher(check, max_items=4, workers=2, name="check")
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(batcher, ["a", "b"]) for _ in range(6)]
        assert all(f.result(5) == ["A", "B"] for f in futures)
    assert max(sizes) <= 4
    assert batcher([]) == []
    with pytest.raises(ValueError, match="bad item"):
        batcher(["ok", "bad"])
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher(["a"])


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread niceness is a Linux feature")
def test_worker_threads_run_at_lower_priority() -> None:
    batcher = MicroBatcher(lambda items: [os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
                                          for _ in items], nice=3, name="nice")  # fmt: skip
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert batcher([0]) == [min(base + 3, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller's is unchanged
    batcher.close()
