"""Benchmark: answer quality of the support bot on StackFAQ (gold citations, ROUGE-L, hand-off, latency).

KB: the StackFAQ knowledge base of :mod:`bench.support_retrieval` (the 719 answers of the 125
threads, question field = thread title). Questions:

* **in scope**: a fixed sample (``--questions``, default 100, seed 0) of the **test** paraphrases;
  a question's gold sources are all answers of its thread;
* **out of scope**: ``bench/data/stackfaq_out_of_scope.csv``, questions we wrote that are off-topic
  for web-app help (cooking, tax law, sports, medicine …), with a ``split`` column.

The answer gate (:func:`apps.customer_service.confidence.calibrate`) is calibrated on the **dev**
paraphrases (all of them) plus the dev half of the out-of-scope file; the report uses only the test
paraphrases and the test half. Every question is answered once, without history, by the real
:class:`~apps.customer_service.bot.SupportBot` with the app's configuration
(``configs/customer_service.yaml``) and the default SmolLM2 through llama.cpp on 2 threads.

Reported: rate of in-scope questions whose answer cites a gold source (a hand-off cites nothing),
ROUGE-L F1 of each answered in-scope question against the thread's answers (max over them;
:func:`core.metrics.rouge_l`) next to a copy baseline (the first as many words of the cited passage
as the answer has), hand-off rates on in-scope and out-of-scope questions, the route mix
(verbatim FAQ / generated / hand-off), and p50/p95 time to first token and to the full answer, with
process CPU time per answer beside the wall clock (the machine is shared).

Run (results: ``bench/results/support_answers.json`` and ``.png``)::

    nice -n 5 .venv/bin/python -m bench.support_answers
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.customer_service.bot import SupportBot
from apps.customer_service.confidence import calibrate
from apps.customer_service.config import load_bot_config
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from apps.customer_service.retrieval_eval import EvalQuery
from bench.support_latency import percentiles
from bench.support_retrieval import DATA, CachedEmbedder, load_stackfaq
from core.config import to_dict, write_json_atomic
from core.generation import Generator
from core.metrics import rouge_l

logger = logging.getLogger("bench.support_answers")

ROOT = Path(__file__).resolve().parents[1]
OUT_OF_SCOPE = ROOT / "bench" / "data" / "stackfaq_out_of_scope.csv"
RESULTS = ROOT / "bench" / "results"
NAME = "support_answers"
SPLITS = ("dev", "test")
ROUTES = ("faq", "generate", "handoff")
LEAD = "rouge_l_lead_baseline"


def read_out_of_scope_splits(path: Path = OUT_OF_SCOPE) -> dict[str, list[str]]:
    """The out-of-scope questions per split (``query,split,topic`` CSV).

    Raises:
        ValueError: A missing column, an empty query, an unknown split, or a repeated question.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"query", "split", "topic"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        out: dict[str, list[str]] = {split: [] for split in SPLITS}
        seen: set[str] = set()
        for row, record in enumerate(reader):
            query, split = (record["query"] or "").strip(), (record["split"] or "").strip()
            if not query or split not in out or query.lower() in seen:
                raise ValueError(
                    f"{path}: row {row}: empty or repeated query, or split {split!r} not in {SPLITS}"
                )
            seen.add(query.lower())
            out[split].append(query)
    return out


def sample_questions(queries: list[EvalQuery], n: int, seed: int = 0) -> list[EvalQuery]:
    """``n`` queries drawn without replacement with a fixed seed (all of them when ``n`` is larger)."""
    if n >= len(queries):
        return list(queries)
    picked = np.random.default_rng(seed).choice(len(queries), size=n, replace=False)
    return [queries[i] for i in sorted(picked)]


def best_rouge_l(answer: str, references: list[str]) -> float:
    """ROUGE-L F1 of ``answer`` against its best-matching reference."""
    return max(rouge_l([answer], [ref]) for ref in references)


def answer_all(bot: SupportBot, questions: list[tuple[str, EvalQuery | None]]) -> list[dict[str, Any]]:
    """Answer each question once; one record per question (route, sources, timings, text)."""
    rows = []
    for i, (text, query) in enumerate(questions):
        cpu = time.process_time()
        reply = bot.answer(text)
        cpu_ms = 1000 * (time.process_time() - cpu)
        row: dict[str, Any] = {
            "question": text,
            "in_scope": query is not None,
            "route": reply.route,
            "confidence": round(reply.confidence, 4),
            "sources": [s.id for s in reply.sources],
            "ttft_ms": round(reply.ttft_ms, 1),
            "latency_ms": round(reply.latency_ms, 1),
            "cpu_ms": round(cpu_ms, 1),
            "answer": reply.text,
        }
        if query is not None:
            refs = [bot.kb.get(id_).text for id_ in query.gold_ids]
            row["gold_ids"] = list(query.gold_ids)
            row["cites_gold"] = any(s in query.gold_ids for s in row["sources"])
            row["rouge_l"] = None if reply.handoff else round(best_rouge_l(reply.text, refs), 4)
            if not reply.handoff and reply.sources:
                # Baseline: as many words from the start of the cited passage as the answer has.
                lead = bot.kb.get(reply.sources[0].id).text.split()[: len(reply.text.split())]
                row[LEAD] = round(best_rouge_l(" ".join(lead), refs), 4)
        rows.append(row)
        if (i + 1) % 10 == 0:
            logger.info("answered %d/%d", i + 1, len(questions))
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Quality rates, route mix and latency percentiles of the answered questions."""
    inside = [r for r in rows if r["in_scope"]]
    outside = [r for r in rows if not r["in_scope"]]
    answered = [r for r in inside if r["route"] != "handoff"]

    def rate(chosen: list[dict[str, Any]], total: list[dict[str, Any]]) -> float | None:
        return round(len(chosen) / len(total), 4) if total else None

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 4) if values else None

    quality: dict[str, Any] = {
        "in_scope": len(inside),
        "out_of_scope": len(outside),
        "gold_citation_rate": rate([r for r in inside if r["cites_gold"]], inside),
        "gold_citation_rate_of_answered": rate([r for r in answered if r["cites_gold"]], answered),
        "rouge_l_answered": mean([r["rouge_l"] for r in answered]),
        "rouge_l_lead_baseline": mean(
            [r["rouge_l_lead_baseline"] for r in answered if "rouge_l_lead_baseline" in r]
        ),
        "answer_words_p50": percentiles([len(r["answer"].split()) for r in answered]).get("p50"),
        "handoff_rate_in_scope": rate([r for r in inside if r["route"] == "handoff"], inside),
        "handoff_rate_out_of_scope": rate([r for r in outside if r["route"] == "handoff"], outside),
    }
    quality["by_route"] = {
        route: {
            "in_scope": sum(r["route"] == route for r in inside),
            "out_of_scope": sum(r["route"] == route for r in outside),
            "gold_citation_rate": rate(
                [r for r in inside if r["route"] == route and r["cites_gold"]],
                [r for r in inside if r["route"] == route],
            ),
            "rouge_l": mean(
                [r["rouge_l"] for r in inside if r["route"] == route and r["rouge_l"] is not None]
            ),
        }
        for route in ROUTES
    }
    latency: dict[str, Any] = {}
    for name, chosen in [("all", rows)] + [
        (route, [r for r in rows if r["route"] == route]) for route in ROUTES
    ]:
        latency[name] = {
            key: percentiles([r[key] for r in chosen]) for key in ("ttft_ms", "latency_ms", "cpu_ms")
        }
    quality["latency"] = latency
    return quality


def plot(results: dict[str, Any], path: Path) -> None:
    """Quality rates (left) and the route mix of in-scope vs out-of-scope questions (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    s = results["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    names = ["gold citation", "ROUGE-L (answered)", "hand-off in scope", "hand-off out of scope"]
    values = [
        s["gold_citation_rate"] or 0,
        s["rouge_l_answered"] or 0,
        s["handoff_rate_in_scope"] or 0,
        s["handoff_rate_out_of_scope"] or 0,
    ]
    bars = left.bar(names, values, color=["#4c78a8", "#72b7b2", "#f58518", "#54a24b"])
    left.bar_label(bars, fmt="%.2f", fontsize=8)
    left.set_ylim(0, 1.08)
    left.tick_params(axis="x", labelsize=7)
    left.set_title(
        f"StackFAQ: {s['in_scope']} test paraphrases, {s['out_of_scope']} out-of-scope", fontsize=9
    )
    groups = ("in_scope", "out_of_scope")
    bottom = np.zeros(len(groups))
    for route, colour in zip(ROUTES, ("#4c78a8", "#f58518", "#bab0ac"), strict=True):
        counts = np.array([s["by_route"][route][g] for g in groups], dtype=float)
        right.bar(["in scope", "out of scope"], counts, bottom=bottom, label=route, color=colour)
        bottom += counts
    right.set_title("route mix (questions)", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out-of-scope", type=Path, default=OUT_OF_SCOPE)
    parser.add_argument("--questions", type=int, default=100, help="test paraphrases sampled (seed 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kb-dir", type=Path, default=None, help="keep the StackFAQ KB here between runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="bot config a.b=c")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        raise SystemExit(f"StackFAQ not found at {args.data} (expected ../shared/data/support/stackfaq)")
    data = load_stackfaq(args.data)
    outside = read_out_of_scope_splits(args.out_of_scope)
    config = load_bot_config(overrides=args.overrides)
    embedder = CachedEmbedder("minilm-l6")  # the KB default encoder
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-stackfaq-answers-") as tmp:
        faq = Path(tmp) / "stackfaq.jsonl"
        faq.write_text("".join(json.dumps(e) + "\n" for e in data.entries), encoding="utf-8")
        kb = KnowledgeBase.build([faq], args.kb_dir or Path(tmp) / "kb", embedder=embedder)
        calibration = calibrate(
            Retriever(kb, config.retrieval, embedder),
            data.dev,
            outside["dev"],
            passages=config.answer.passages,
            k=config.top_k,
        )
        logger.info("calibrated on dev: %s", calibration.report)
        generator = Generator(
            config.answer.model, config.answer.adapter, backend="llamacpp", n_threads=args.threads
        )
        bot = SupportBot(kb, config, generator=generator, embedder=embedder, calibration=calibration)
        bot.answer(data.dev[0].query)  # warm-up: encoder, model, caches
        inside = sample_questions(data.test, args.questions, args.seed)
        questions = [(q.query, q) for q in inside] + [(text, None) for text in outside["test"]]
        # A fixed shuffle interleaves in-scope and out-of-scope questions (machine load drifts).
        order = np.random.default_rng(args.seed).permutation(len(questions))
        start = time.perf_counter()
        rows = answer_all(bot, [questions[i] for i in order])
        wall_s = time.perf_counter() - start
    results: dict[str, Any] = {
        "benchmark": NAME,
        "command": "nice -n 5 .venv/bin/python -m bench." + NAME,
        "data": {
            "kb_entries": len(data.entries),
            "in_scope": f"{len(inside)} of the {len(data.test)} test paraphrases (seed {args.seed})",
            "out_of_scope_test": len(outside["test"]),
            "calibration": f"{len(data.dev)} dev paraphrases + {len(outside['dev'])} dev out-of-scope",
        },
        "backend": generator.backend,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "wall_s": round(wall_s, 1),
        "bot_config": to_dict(config),
        "calibration": to_dict(calibration),
        "summary": summarize(rows),
        "answers": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in results["summary"].items() if k != "latency"}, indent=2))
    return results


if __name__ == "__main__":
    main()
