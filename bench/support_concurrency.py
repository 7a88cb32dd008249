"""``aigc bench concurrency``: 20 agents asking at once, as Streamlit sessions do, against one bot and store.

Builds the shipped sample KB (MiniLM) in a temporary directory and calibrates its answer gate,
then starts ``agents`` threads that share one :class:`SupportBot` and one :class:`SupportStore`
(SQLite in WAL mode in the temporary directory, like the UI's default). Each agent opens its own
conversation and asks ``questions`` questions drawn in turn from the sample set's mix of quoted
(verbatim FAQ), generated and out-of-scope (hand-off) questions, storing every exchange.

Two contestants run in the same process, one after the other, on the same questions:

* ``worker``: generated answers go through :class:`core.generation.worker.GenerationWorker`
  (FIFO, bounded queue, per-request deadline after which the agent gets a hand-off with sources);
* ``lock`` (the peer: how the UI worked before): every thread calls the generator directly and
  waits on llama.cpp's lock in no particular order.

Latency is measured per question from the agent's click to the stored answer, grouped by the route
the agent saw (``quoted`` / ``generated`` / ``handoff``); hand-offs because the model was busy are
also counted apart (``busy_handoffs``). ``tokens_per_s`` is generated tokens over the run's wall
time. With ``batching`` the module also measures aggregate decode tokens/s for 1, 4 and 8
concurrent requests: llama.cpp one at a time (what the worker does) against the torch backend
decoding them as one batch.

Writes ``concurrency.json`` / ``.md`` / ``.png`` to the result directory (default ``bench/results``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.harness import environment, markdown_table, save_plot, write_results

logger = logging.getLogger(__name__)

NAME = "concurrency"
ROUTE_NAMES = {"faq": "quoted", "extract": "quoted", "generate": "generated", "handoff": "handoff"}
ROUTES = ("quoted", "generated", "handoff")
TARGETS = {"errors": 0, "lost_messages": 0, "quoted_p95_s": 1.0, "generated_p95_s": 10.0}
DEADLINE_S = 10.0  # the worker's per-request deadline in this bench (the generated-answer target)
BATCH_SIZES = (1, 4, 8)
BATCH_NEW_TOKENS = 48


def _questions(count: int) -> list[str]:
    """A fixed shuffle of the sample's in-scope and out-of-scope questions, repeated to ``count``."""
    from apps.customer_service.confidence import read_out_of_scope
    from apps.customer_service.demo import OUT_OF_SCOPE, QUERIES
    from apps.customer_service.retrieval_eval import read_queries

    pool = [q.query for q in read_queries(QUERIES)] + read_out_of_scope(OUT_OF_SCOPE)
    pool = [pool[i] for i in np.random.default_rng(0).permutation(len(pool))]
    return [pool[i % len(pool)] for i in range(count)]


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values)
    return round(float(np.percentile(arr, 50)), 3), round(float(np.percentile(arr, 95)), 3)


def drive(bot: Any, store: Any, agents: int, questions: int, token_count: Any) -> dict[str, Any]:
    """``agents`` threads, each asking its ``questions`` in its own conversation; the measured outcome."""
    from apps.customer_service.bot import BUSY_HANDOFF

    asked = _questions(agents * questions)
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    conversations: list[str] = []
    start_gate = threading.Barrier(agents)

    def agent(i: int) -> None:
        conv = store.start_conversation(f"agent {i}", owner=f"agent{i:02d}")
        with lock:
            conversations.append(conv)
        history: list[dict[str, str]] = []
        start_gate.wait()
        for q in asked[i * questions : (i + 1) * questions]:
            t0 = time.perf_counter()
            try:
                stream = bot.stream(q, history)
                "".join(stream)
                answer = stream.answer
                store.add_exchange(conv, q, answer)
            except Exception as err:  # noqa: BLE001 - counted, the bench goes on
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            seconds = time.perf_counter() - t0
            generated = (answer.verification or {}).get("generated", "")
            busy = answer.text == BUSY_HANDOFF
            # Whatever the model was asked to write counts as generated (also when verification then
            # fell back to quoting): that is the path that waits for the model.
            route = "generated" if answer.verification is not None else ROUTE_NAMES[answer.route]
            with lock:
                rows.append(
                    {
                        "route": "handoff" if busy or answer.handoff else route,
                        "seconds": seconds,
                        "busy": busy,
                        "tokens": token_count(generated),
                    }
                )
            history += [{"role": "user", "content": q}, {"role": "assistant", "content": answer.text}]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(agents) as pool:
        list(pool.map(agent, range(agents)))
    wall = time.perf_counter() - t0
    stored = sum(len(store.messages(c)) for c in conversations)
    sent = 2 * agents * questions
    by_route = {r: [row["seconds"] for row in rows if row["route"] == r] for r in ROUTES}
    pct = {r: _percentiles(v) for r, v in by_route.items()}
    tokens = sum(row["tokens"] for row in rows)
    return {
        "agents": agents,
        "questions": questions,
        "errors": len(errors),
        "lost_messages": sent - stored,
        "p50_s": {r: p[0] for r, p in pct.items()},
        "p95_s": {r: p[1] for r, p in pct.items()},
        "tokens_per_s": round(tokens / wall, 2),
        "answers": {r: len(v) for r, v in by_route.items()},
        "busy_handoffs": sum(1 for row in rows if row["busy"]),
        "wall_s": round(wall, 2),
        "error_samples": errors[:5],
    }


def measure_batching(generator: Any, torch_generator: Any) -> dict[str, Any]:
    """Aggregate decode tokens/s for 1, 4, 8 concurrent requests: llama.cpp in turn vs a torch batch."""
    from core.generation import GenerationWorker

    prompts = [
        [{"role": "user", "content": f"Write two sentences about returning item number {i}."}]
        for i in range(8)
    ]
    worker = GenerationWorker(generator, max_queue=16, deadline_s=600)
    out: dict[str, Any] = {"new_tokens": BATCH_NEW_TOKENS, "sizes": {}}
    for n in BATCH_SIZES:
        batch = prompts[:n]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            texts = list(
                pool.map(lambda p: "".join(worker.stream(p, max_new_tokens=BATCH_NEW_TOKENS)), batch)
            )
        llama_s = time.perf_counter() - t0
        llama_tokens = sum(len(generator.tokenizer.encode(t, add_special_tokens=False)) for t in texts)
        t0 = time.perf_counter()
        results = torch_generator.generate_batch(batch, batch_size=n, max_new_tokens=BATCH_NEW_TOKENS)
        torch_s = time.perf_counter() - t0
        torch_tokens = sum(len(r.token_ids) for r in results)
        out["sizes"][str(n)] = {
            "llamacpp_sequential_tokens_per_s": round(llama_tokens / llama_s, 1),
            "torch_batched_tokens_per_s": round(torch_tokens / torch_s, 1),
        }
    best = {n: max(v, key=lambda k: v[k]).removesuffix("_tokens_per_s") for n, v in out["sizes"].items()}
    out["winner"] = best
    out["kept"] = "llamacpp_sequential" if all(w == "llamacpp_sequential" for w in best.values()) else "mixed"
    return out


def run(
    reps: int = 1,
    quick: bool = False,
    out: str | Path | None = None,
    agents: int = 20,
    questions: int = 5,
    batching: bool = True,
) -> dict[str, Any]:
    """Run the benchmark (see the module docs); ``quick`` uses 4 agents x 2 questions and no batching."""
    del reps  # one run: the 20-thread load itself is the measurement
    import torch

    from apps.customer_service.bot import SupportBot
    from apps.customer_service.confidence import calibrate_kb
    from apps.customer_service.config import load_bot_config
    from apps.customer_service.demo import OUT_OF_SCOPE, QUERIES, SAMPLE_SOURCES
    from apps.customer_service.knowledge_base import KnowledgeBase
    from apps.customer_service.storage import SupportStore
    from core.generation import GenerationWorker, Generator

    if quick:
        agents, questions, batching = min(agents, 4), min(questions, 2), False
    torch.set_num_threads(2)
    result: dict[str, Any] = {"bench": NAME, "env": environment(), "load_avg_before": os.getloadavg(),
                              "deadline_s": DEADLINE_S, "targets": TARGETS}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aigc-bench-concurrency-") as tmp:
        kb_dir = Path(tmp) / "kb"
        KnowledgeBase.build(list(SAMPLE_SOURCES), kb_dir)
        # Generated answers are what 20 agents queue for: the KB answers in ``generate`` mode here (the
        # default, ``extractive``, never calls the model).
        config = load_bot_config(overrides=["answer.mode=generate"])
        calibrate_kb(kb_dir, QUERIES, OUT_OF_SCOPE, passages=config.answer.passages)
        generator = Generator(config.answer.model, config.answer.adapter, backend=config.answer.backend)  # type: ignore[arg-type]
        result["backend"] = generator.backend

        def tokens(text: str) -> int:
            return len(generator.tokenizer.encode(text, add_special_tokens=False)) if text else 0

        contestants = {
            "worker": GenerationWorker(generator, max_queue=64, deadline_s=DEADLINE_S),
            "lock": generator,
        }
        result["contestants"] = {}
        for name, gen in contestants.items():
            store = SupportStore(f"sqlite:///{Path(tmp) / f'{name}.db'}")
            bot = SupportBot.from_dir(kb_dir, config, generator=gen)
            bot.answer("can i return a mattress after sleeping on it")  # warm-up: encoder, model, caches
            logger.info("Driving the bot", extra={"contestant": name, "agents": agents})
            result["contestants"][name] = drive(bot, store, agents, questions, tokens)
            store.engine.dispose()
        if batching:
            result["batching"] = measure_batching(generator, Generator(config.answer.model, backend="torch"))
    main = result["contestants"]["worker"]
    result.update({k: main[k] for k in ("agents", "questions", "errors", "lost_messages", "p50_s", "p95_s",
                                         "tokens_per_s")})  # fmt: skip
    result["load_avg_after"] = os.getloadavg()
    result["plot"] = _plot(result, out)
    write_results(NAME, result, _markdown(result), out)
    return result


def _markdown(result: dict[str, Any]) -> str:
    rows = []
    for name, res in result["contestants"].items():
        for route in ROUTES:
            rows.append([name, route, res["answers"][route], res["p50_s"][route], res["p95_s"][route]])
    lines = [
        f"### concurrency ({result['agents']} agents x {result['questions']} questions, "
        f"backend {result['backend']}, deadline {result['deadline_s']:.0f} s)\n",
        markdown_table(["contestant", "route", "answers", "p50 s", "p95 s"], rows),
        markdown_table(
            ["contestant", "errors", "lost messages", "busy hand-offs", "tokens/s", "wall s"],
            [
                [n, r["errors"], r["lost_messages"], r["busy_handoffs"], r["tokens_per_s"], r["wall_s"]]
                for n, r in result["contestants"].items()
            ],
        ),
    ]
    if "batching" in result:
        sizes = result["batching"]["sizes"]
        lines.append(
            markdown_table(
                ["concurrent requests", "llama.cpp one at a time tok/s", "torch batched tok/s"],
                [
                    [n, v["llamacpp_sequential_tokens_per_s"], v["torch_batched_tokens_per_s"]]
                    for n, v in sizes.items()
                ],
            )
        )
    return "\n".join(lines)


def _plot(result: dict[str, Any], out: str | Path | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    routes = list(ROUTES)
    width = 0.2
    for i, (name, res) in enumerate(result["contestants"].items()):
        for j, stat in enumerate(("p50_s", "p95_s")):
            values = [res[stat][r] or 0 for r in routes]
            ax.bar(np.arange(len(routes)) + (2 * i + j) * width, values, width, label=f"{name} {stat[:3]}")
    ax.axhline(TARGETS["quoted_p95_s"], color="#4c78a8", linestyle=":", label="quoted p95 target (1 s)")
    ax.axhline(
        TARGETS["generated_p95_s"], color="#e45756", linestyle="--", label="generated p95 target (10 s)"
    )
    ax.set_xticks(np.arange(len(routes)) + 1.5 * width, routes)
    ax.set_ylabel("seconds from question to stored answer")
    ax.set_title(f"{result['agents']} agents x {result['questions']} questions, one bot, one SQLite store")
    ax.legend(fontsize=8)
    return save_plot(fig, NAME, out)


def main() -> None:
    """``python -m bench.support_concurrency [--agents 20] [--questions 5] [--quick]``."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-batching", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(quick=args.quick, out=args.out, agents=args.agents, questions=args.questions,
                 batching=not args.no_batching)  # fmt: skip
    keys = ("agents", "questions", "errors", "lost_messages", "p50_s", "p95_s", "tokens_per_s")
    sys.stdout.write(json.dumps({k: result[k] for k in keys}, indent=2) + "\n")


if __name__ == "__main__":
    main()
