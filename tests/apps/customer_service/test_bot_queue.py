"""The bot behind the shared generation worker: a generated answer that cannot come in time hands off."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from apps.customer_service.bot import BUSY_HANDOFF, SupportBot
from apps.customer_service.confidence import Calibration
from apps.customer_service.config import BotConfig
from core.generation import GenerationWorker
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, tiny_generator  # noqa: F401

GENERATED = "how long until i get my money back after a return"


@pytest.fixture
def bot(calibrated_kb_dir, minilm, tiny_generator) -> SupportBot:  # noqa: F811
    worker = GenerationWorker(tiny_generator, max_queue=1, deadline_s=60)
    config = BotConfig(answer=replace(BotConfig().answer, mode="generate"))
    bot = SupportBot.from_dir(calibrated_kb_dir, config, embedder=minilm, generator=worker)
    # Force generation: a near-tie between two entries is not quoted verbatim.
    bot.calibration = Calibration(**{**bot.calibration.__dict__, "verbatim_margin": 2.0})
    return bot


def test_a_full_queue_hands_off_with_the_retrieved_sources(bot):
    worker: GenerationWorker = bot.generator
    gate = threading.Lock()
    gate.acquire()
    real_stream = worker.generator.stream

    decoding = threading.Event()

    def held(*args, **kwargs):  # the model is busy until the test lets it go
        decoding.set()
        with gate:
            yield from real_stream(*args, **kwargs)

    worker.generator.stream = held
    busy, waiting = bot.stream(GENERATED), bot.stream(GENERATED)  # the model starts when iterated
    runners = [threading.Thread(target=lambda s=s: list(s)) for s in (busy, waiting)]
    try:
        runners[0].start()  # decoding (held by the gate)
        assert decoding.wait(timeout=60)
        runners[1].start()  # waits in the one queue slot
        while worker.waiting < 1:
            time.sleep(0.01)
        refused = bot.stream(GENERATED)  # queue full
        chunks = list(refused)
        reply = refused.answer
        assert reply.handoff and reply.route == "handoff" and "".join(chunks) == BUSY_HANDOFF
        assert reply.sources and {s.id for s in reply.sources} <= {s.id for s in reply.related}
        assert "already waiting" in reply.notice
        # The agent who takes it over sees the quoted answer the bot could not generate in time.
        assert reply.handoff_reason == "deadline" and reply.suggestion and reply.suggestion_sources
    finally:
        gate.release()
        for runner in runners:
            runner.join()
        del worker.generator.stream
    assert busy.answer is not None and busy.answer.text != BUSY_HANDOFF
    assert waiting.answer is not None and waiting.answer.text != BUSY_HANDOFF


def test_quoted_answers_do_not_touch_the_queue(bot):
    bot.calibration = Calibration(**{**bot.calibration.__dict__, "verbatim_margin": 0.0})
    reply = bot.answer("i forgot my login password")
    assert reply.route == "faq" and bot.generator.served == 0
