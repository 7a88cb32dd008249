"""The shared generation worker: FIFO, bounded queue, positions, deadlines.

A scripted generator stands in for the model here (the order and timing of its chunks is what is
under test); ``test_worker_streams_the_real_model`` runs SmolLM2 through it.
"""

from __future__ import annotations

import threading
import time

import pytest

from core.generation import (
    DeadlineExceededError,
    GenerationWorker,
    QueueFullError,
    queue_status,
    shared_worker,
)


class Scripted:
    """Streams ``prompt`` word by word, ``delay`` seconds a word, recording the order it served."""

    max_positions = 2048

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.served: list[str] = []
        self.lock = threading.Lock()

    def encode(self, prompt: str) -> list[int]:
        return list(range(len(prompt.split())))

    def stream(self, prompt: str, **_kw):
        with self.lock:  # like llama.cpp: one decode at a time
            self.served.append(prompt)
            for word in prompt.split():
                time.sleep(self.delay)
                yield word + " "


def test_requests_are_served_first_come_first_served():
    gen = Scripted()
    worker = GenerationWorker(gen, max_queue=10, deadline_s=30)
    streams = [worker.stream(f"p{i} a b c") for i in range(6)]  # queued in this order
    results: dict[int, str] = {}

    def read(i: int) -> None:
        results[i] = "".join(streams[i])

    threads = [threading.Thread(target=read, args=(i,)) for i in reversed(range(6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gen.served == [f"p{i} a b c" for i in range(6)]
    assert results == {i: f"p{i} a b c " for i in range(6)}
    assert worker.encode("x y") == [0, 1] and worker.max_positions == 2048  # passed through


def test_a_full_queue_refuses_and_waiting_requests_see_their_position():
    gen = Scripted(delay=0.05)
    worker = GenerationWorker(gen, max_queue=2, deadline_s=30)
    first = worker.stream("one two three four five six")
    while worker.waiting:  # the worker picks the first up at once; the next two wait behind it
        time.sleep(0.005)
    second = worker.stream("x")
    third = worker.stream("y")
    with pytest.raises(QueueFullError):
        list(worker.stream("z"))
    assert worker.rejected == 1
    seen: list[int] = []
    t = threading.Thread(target=lambda: list(first))
    t.start()
    with queue_status(seen.append):
        assert "".join(third) == "y "
    t.join()
    assert "".join(second) == "x "
    assert seen[0] >= 1 and seen[-1] == 0 and max(seen) <= 2


def test_deadline_gives_up_waiting_and_decoding():
    gen = Scripted(delay=0.2)
    worker = GenerationWorker(gen, max_queue=4, deadline_s=0.5)
    slow = worker.stream("a b c d e f g h")
    queued = worker.stream("never served")
    t0 = time.monotonic()
    holder: list[BaseException] = []

    def read_slow() -> None:
        try:
            list(slow)
        except DeadlineExceededError as err:
            holder.append(err)

    t = threading.Thread(target=read_slow)
    t.start()
    with pytest.raises(DeadlineExceededError):
        list(queued)
    t.join()
    assert time.monotonic() - t0 < 3 and holder  # both gave up near their deadline
    time.sleep(0.5)
    assert "never served" not in gen.served
    assert "".join(worker.stream("after", deadline_s=5)) == "after "  # the worker goes on


def test_shared_worker_is_one_per_generator():
    gen = Scripted()
    assert shared_worker(gen) is shared_worker(gen)
    assert shared_worker(shared_worker(gen)) is shared_worker(gen)
    with pytest.raises(ValueError):
        GenerationWorker(gen, max_queue=0)


@pytest.mark.slow
def test_worker_streams_the_real_model():
    from core.generation import Generator

    gen = Generator()
    worker = GenerationWorker(gen, deadline_s=120)
    prompt = [{"role": "user", "content": "Say hello."}]
    text = "".join(worker.stream(prompt, max_new_tokens=8))
    assert text == gen.generate(prompt, max_new_tokens=8).text
