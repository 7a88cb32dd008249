"""Benchmark: are the support bot's answers grounded in the sources they cite?

Two knowledge bases, each answered in the two answer modes in the same run:

* **sample** — the shipped sample KB (FAQ + policies), its gate calibrated as ``aigc prepare-demo``
  does; questions: the 38 in-scope ``queries.csv`` and the ``out_of_scope.csv`` questions.
* **stackfaq** — StackFAQ with the questions left out of the index: each of the 719 answers is a
  document (``t000-a00.txt``, no title or question), so the bot answers from passages, as for a KB
  of documents without curated questions. The gate is calibrated on the **dev** paraphrases (and
  dev out-of-scope questions); the report uses ``--questions`` test paraphrases (seed 0) and the
  test out-of-scope questions.

Modes: ``extractive`` (the default: quoted passage sentences) and ``generate`` (SmolLM2 writes the
answer, the grounding verifier keeps the supported sentences or falls back to the extractive
answer). The generate pass also records the model's text *before* verification: that is what the
bot showed until now (``unverified``), the baseline the issue measured.

Per data set, mode and route: answered share; share of answers with a number, name, URL, e-mail
address or phone number that no cited source contains (the automatic check,
:func:`core.facts.unsupported_facts`); share with a fabricated URL or contact detail; share of
answer sentences the verifier finds supported (facts, meaning, polarity); share citing a gold
entry; latency. The automatic check is validated against hand labels of 60 unverified generated
answers (``bench/data/grounding_labels.csv``: per sentence, supported or not, and whether it states
a number/name/URL its sources lack), which also calibrate the verifier's meaning threshold.

Run (results: ``bench/results/support_grounding.json`` and ``.png``)::

    nice -n 5 .venv/bin/python -m bench.support_grounding
    nice -n 5 .venv/bin/python -m bench.support_grounding --dump-labels bench/data/grounding_labels.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.customer_service.bot import SupportBot
from apps.customer_service.confidence import calibrate, read_out_of_scope
from apps.customer_service.config import BotConfig, load_bot_config
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from apps.customer_service.retrieval_eval import EvalQuery, read_queries
from bench.support_answers import OUT_OF_SCOPE, read_out_of_scope_splits, sample_questions
from bench.support_latency import percentiles
from bench.support_retrieval import DATA, CachedEmbedder, load_stackfaq
from core.config import to_dict, write_json_atomic
from core.facts import unsupported_facts
from core.generation import Generator
from core.grounding import GroundingVerifier, calibrate_threshold, strip_citations
from core.sentences import split_sentences

logger = logging.getLogger("bench.support_grounding")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "apps" / "customer_service" / "sample_data"
LABELS = ROOT / "bench" / "data" / "grounding_labels.csv"
RESULTS = ROOT / "bench" / "results"
NAME = "support_grounding"
MODES = ("extractive", "generate")
ROUTES = ("faq", "extract", "generate", "handoff")
CONTACT_KINDS = ("url", "email", "phone")


# ------------------------------------------------------------------------------ data sets
def sample_set(embedder: CachedEmbedder, tmp: Path) -> tuple[KnowledgeBase, Any, list, list[str]]:
    """The sample KB with its gate calibrated on the sample queries (as the demo does)."""
    kb = KnowledgeBase.build([SAMPLE / "faq.csv", SAMPLE / "policies"], tmp / "sample-kb", embedder=embedder)
    inside = read_queries(SAMPLE / "queries.csv", kb)
    outside = read_out_of_scope(SAMPLE / "out_of_scope.csv")
    config = load_bot_config()
    calibration = calibrate(Retriever(kb, config.retrieval, embedder), inside, outside, passages=2)
    return kb, calibration, inside, outside


def stackfaq_set(
    embedder: CachedEmbedder, tmp: Path, questions: int, seed: int
) -> tuple[KnowledgeBase, Any, list, list[str]]:
    """StackFAQ answers as documents; gate calibrated on dev, test questions returned."""
    data = load_stackfaq(DATA)
    docs = tmp / "stackfaq-docs"
    docs.mkdir()
    for entry in data.entries:
        (docs / f"{entry['id']}.txt").write_text(entry["answer"] + "\n", encoding="utf-8")
    kb = KnowledgeBase.build([docs], tmp / "stackfaq-kb", embedder=embedder)
    by_file: dict[str, list[str]] = {}
    for entry in kb.entries:
        by_file.setdefault(Path(entry.source).stem, []).append(entry.id)

    def as_docs(queries: list[EvalQuery]) -> list[EvalQuery]:
        return [
            EvalQuery(q.query, tuple(i for g in q.gold_ids for i in by_file.get(g, [])), q.row)
            for q in queries
        ]

    splits = read_out_of_scope_splits(OUT_OF_SCOPE)
    config = load_bot_config()
    calibration = calibrate(
        Retriever(kb, config.retrieval, embedder), as_docs(data.dev), splits["dev"], passages=2
    )
    inside = sample_questions(as_docs(data.test), questions, seed)
    return kb, calibration, inside, splits["test"]


# ------------------------------------------------------------------------------ checks
def fact_problems(answer: str, sources: dict[str, str]) -> list[str]:
    """Facts of ``answer`` (citations of ``sources`` removed) that none of ``sources`` contains."""
    return unsupported_facts(strip_citations(answer, sources), "\n".join(sources.values()))


def answer_record(
    bot: SupportBot, verifier: GroundingVerifier, question: str, query: EvalQuery | None
) -> dict[str, Any]:
    """Answer once and check the answer (and, in generate mode, the unverified text) against its sources."""
    cpu = time.process_time()
    reply = bot.answer(question)
    cpu_ms = 1000 * (time.process_time() - cpu)
    sources = [f"{s.title}\n\n{s.text}" for s in reply.sources]
    row: dict[str, Any] = {
        "question": question,
        "in_scope": query is not None,
        "route": reply.route,
        "answer": reply.text,
        "sources": [s.id for s in reply.sources],
        "confidence": reply.confidence,
        "latency_ms": round(reply.latency_ms, 1),
        "cpu_ms": round(cpu_ms, 1),
        "cites_gold": bool(query) and any(s.id in query.gold_ids for s in reply.sources),
    }
    if not reply.handoff:
        row.update(_checks(verifier, reply.text, dict(zip(row["sources"], sources, strict=True))))
    if reply.verification is not None and reply.verification.get("generated"):
        generated = reply.verification["generated"]
        cited = {s.id: f"{s.title}\n\n{s.text}" for s in reply.related if f"[{s.id}]" in generated}
        by_id = {h.id: h for h in bot.retriever.search(reply.query, k=bot.config.top_k)}
        cited = cited or {i: f"{by_id[i].entry.title}\n\n{by_id[i].entry.text}" for i in list(by_id)[:1]}
        row["unverified"] = {"answer": generated, "sources": list(cited)} | _checks(
            verifier, generated, cited
        )
        row["unverified"]["cites_gold"] = bool(query) and any(i in query.gold_ids for i in cited)
    return row


def _checks(verifier: GroundingVerifier, answer: str, sources: dict[str, str]) -> dict[str, Any]:
    problems = fact_problems(answer, sources)
    checks = verifier.check([s.text for s in split_sentences(strip_citations(answer, sources))], sources)
    return {
        "unsupported": problems,
        "fabricated_contact": [p for p in problems if p.split()[0] in CONTACT_KINDS],
        "sentences": len(checks),
        "sentences_supported": sum(c.supported for c in checks),
        "sentence_checks": [
            {"sentence": c.sentence, "score": round(c.score, 4), "reasons": c.reasons} for c in checks
        ],
    }


# ------------------------------------------------------------------------------ summary
def summarize(rows: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
    """Rates over in-scope questions, by route.

    ``key="unverified"`` reads the model's text before verification where the bot asked the model,
    and the quoted FAQ answer where it quoted one: what the bot showed before answers were grounded.
    """
    inside = [r for r in rows if r["in_scope"]]
    outside = [r for r in rows if not r["in_scope"]]

    def view(r: dict[str, Any]) -> dict[str, Any] | None:
        if key is None or r["route"] == "faq":  # curated answers were quoted before this change too
            return None if r["route"] == "handoff" else r
        return r.get(key)

    def rates(chosen: list[dict[str, Any]]) -> dict[str, Any]:
        answered = [v for v in map(view, chosen) if v is not None]
        n = len(answered)
        sentences = sum(v["sentences"] for v in answered)
        return {
            "questions": len(chosen),
            "answered": n,
            "answered_share": round(n / len(chosen), 4) if chosen else None,
            "unsupported_fact_share": round(sum(bool(v["unsupported"]) for v in answered) / n, 4)
            if n
            else None,
            "fabricated_contact_answers": sum(bool(v["fabricated_contact"]) for v in answered),
            "sentences_supported_share": round(sum(v["sentences_supported"] for v in answered) / sentences, 4)
            if sentences
            else None,
            "gold_share_of_answered": round(sum(bool(v["cites_gold"]) for v in answered) / n, 4)
            if n
            else None,
        }

    out: dict[str, Any] = {
        "in_scope": rates(inside),
        "out_of_scope_answered": sum(view(r) is not None for r in outside),
        "out_of_scope": len(outside),
    }
    if key is None:
        out["by_route"] = {route: rates([r for r in inside if r["route"] == route]) for route in ROUTES}
        out["route_counts"] = {route: sum(r["route"] == route for r in rows) for route in ROUTES}
        out["latency_ms"] = percentiles([r["latency_ms"] for r in rows])
        out["cpu_ms"] = percentiles([r["cpu_ms"] for r in rows])
    return out


# ------------------------------------------------------------------------------ hand labels
def dump_labels(runs: dict[str, list[dict[str, Any]]], path: Path, n: int = 60, seed: int = 0) -> int:
    """Write up to ``n`` unverified generated answers, one row per sentence, for labelling by hand."""
    pool = [(ds, r) for ds, rows in runs.items() for r in rows if r.get("unverified")]
    rng = np.random.default_rng(seed)
    picked = [pool[i] for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["dataset", "question", "answer", "sentence", "supported", "unsupported_fact", "note"]
        )
        for ds, r in picked:
            for check in r["unverified"]["sentence_checks"]:
                writer.writerow([ds, r["question"], r["unverified"]["answer"], check["sentence"], "", "", ""])
    return len(picked)


def label_agreement(runs: dict[str, list[dict[str, Any]]], path: Path = LABELS) -> dict[str, Any] | None:
    """Agreement of the automatic fact check with the hand labels, and the calibrated meaning threshold."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        labels = [r for r in csv.DictReader(handle) if r["supported"].strip()]
    answers = {
        (ds, r["question"], r["unverified"]["answer"]): r["unverified"]
        for ds, rows in runs.items()
        for r in rows
        if r.get("unverified")
    }
    by_answer: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for label in labels:
        by_answer.setdefault((label["dataset"], label["question"], label["answer"]), []).append(label)
    matched = [(key, sents) for key, sents in by_answer.items() if key in answers]
    auto = [bool(answers[key]["unsupported"]) for key, _ in matched]
    human = [any(s["unsupported_fact"].strip().lower() == "yes" for s in sents) for _, sents in matched]
    scores, supported = [], []
    for key, sents in matched:
        checks = {c["sentence"]: c for c in answers[key]["sentence_checks"]}
        for s in sents:
            if s["sentence"] in checks:
                scores.append(checks[s["sentence"]]["score"])
                supported.append(s["supported"].strip().lower() == "yes")
    agree = sum(a == h for a, h in zip(auto, human, strict=True))
    tp = sum(a and h for a, h in zip(auto, human, strict=True))
    result: dict[str, Any] = {
        "labelled_answers": len(by_answer),
        "matched_answers": len(matched),
        "agreement": round(agree / len(matched), 4) if matched else None,
        "auto_precision": round(tp / sum(auto), 4) if sum(auto) else None,
        "auto_recall": round(tp / sum(human), 4) if sum(human) else None,
        "human_unsupported_fact_share": round(sum(human) / len(human), 4) if human else None,
        "labelled_sentences": len(supported),
    }
    if supported and any(supported) and not all(supported):
        threshold, report = calibrate_threshold(scores, supported)
        result["meaning_threshold"] = threshold
        result["meaning_threshold_report"] = report
    return result


# ------------------------------------------------------------------------------ plot
def plot(results: dict[str, Any], path: Path) -> None:
    """Unsupported-fact share and supported-sentence share per data set and mode (plus unverified)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    metrics = [
        ("unsupported_fact_share", "answers with an unsupported\nnumber / name / URL (lower is better)"),
        ("sentences_supported_share", "answer sentences supported\n(higher is better)"),
        ("answered_share", "in-scope questions answered"),
    ]
    variants = ["extractive", "generate", "unverified"]
    colours = {"extractive": "#4c78a8", "generate": "#54a24b", "unverified": "#e45756"}
    datasets = list(results["datasets"])
    width = 0.8 / len(variants)
    for ax, (metric, title) in zip(axes, metrics, strict=True):
        for j, variant in enumerate(variants):
            values = [
                results["datasets"][ds]["modes"].get(variant, {}).get("in_scope", {}).get(metric) or 0
                for ds in datasets
            ]
            bars = ax.bar(
                np.arange(len(datasets)) + j * width, values, width, label=variant, color=colours[variant]
            )
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(np.arange(len(datasets)) + width, datasets)
        ax.set_ylim(0, 1.1)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


# ------------------------------------------------------------------------------ main
def run_dataset(
    name: str, kb: KnowledgeBase, calibration: Any, inside: list, outside: list[str], generator: Any,
    embedder: CachedEmbedder, seed: int, run_modes: tuple[str, ...] = MODES,
) -> dict[str, Any]:  # fmt: skip
    """Answer every question in each mode; summaries per mode and the rows."""
    base = load_bot_config()
    verifier = GroundingVerifier(
        embedder, base.answer.support_threshold, word_coverage=base.answer.word_coverage
    )
    questions = [(q.query, q) for q in inside] + [(text, None) for text in outside]
    order = np.random.default_rng(seed).permutation(len(questions))
    modes: dict[str, Any] = {}
    rows_by_mode: dict[str, list[dict[str, Any]]] = {}
    for mode in run_modes:
        config = BotConfig(**{**base.__dict__, "answer": replace(base.answer, mode=mode)})
        bot = SupportBot(kb, config, generator=generator, embedder=embedder, calibration=calibration)
        bot.answer(questions[0][0])  # warm-up
        start = time.perf_counter()
        rows = []
        for i in order:
            rows.append(answer_record(bot, verifier, *questions[i]))
            if len(rows) % 20 == 0:
                logger.info("%s %s: %d/%d", name, mode, len(rows), len(questions))
        rows_by_mode[mode] = rows
        modes[mode] = summarize(rows) | {"wall_s": round(time.perf_counter() - start, 1)}
    if "generate" in rows_by_mode:
        modes["unverified"] = summarize(rows_by_mode["generate"], key="unverified")
    return {
        "kb_entries": len(kb),
        "questions_in_scope": len(inside),
        "questions_out_of_scope": len(outside),
        "calibration": to_dict(calibration),
        "modes": modes,
        "rows": rows_by_mode,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="sample,stackfaq")
    parser.add_argument("--questions", type=int, default=100, help="StackFAQ test paraphrases (seed 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dump-labels", type=Path, default=None, help="write 60 answers to label by hand")
    parser.add_argument(
        "--adapter", type=Path, default=None, help="answer-model adapter (from `aigc support finetune`)"
    )
    parser.add_argument("--modes", default=",".join(MODES), help="answer modes to run (extractive,generate)")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if "stackfaq" in names and not DATA.is_file():
        logger.warning("StackFAQ not found at %s: skipping it", DATA)
        names.remove("stackfaq")
    embedder = CachedEmbedder("minilm-l6")
    config = load_bot_config()
    adapter = str(args.adapter) if args.adapter else config.answer.adapter
    generator = Generator(config.answer.model, adapter, backend="llamacpp", n_threads=args.threads)
    modes = tuple(m for m in MODES if m in {x.strip() for x in args.modes.split(",")})
    load_before = os.getloadavg()
    datasets: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-grounding-") as tmp:
        for name in names:
            if name == "sample":
                kb, calibration, inside, outside = sample_set(embedder, Path(tmp))
            else:
                kb, calibration, inside, outside = stackfaq_set(
                    embedder, Path(tmp), args.questions, args.seed
                )
            datasets[name] = run_dataset(
                name, kb, calibration, inside, outside, generator, embedder, args.seed, modes
            )
    generate_runs = {name: d["rows"]["generate"] for name, d in datasets.items() if "generate" in d["rows"]}
    if args.dump_labels:
        logger.info(
            "wrote %d answers to label to %s", dump_labels(generate_runs, args.dump_labels), args.dump_labels
        )
    results: dict[str, Any] = {
        "benchmark": NAME,
        "command": "nice -n 5 .venv/bin/python -m bench." + NAME,
        "backend": generator.backend,
        "adapter": adapter,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "bot_config": to_dict(config),
        "hand_labels": label_agreement(generate_runs),
        "datasets": datasets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    summary = {
        name: {
            mode: s["in_scope"] | {"p50_ms": s.get("latency_ms", {}).get("p50")}
            for mode, s in d["modes"].items()
        }
        for name, d in datasets.items()
    }
    print(json.dumps({"summary": summary, "hand_labels": results["hand_labels"]}, indent=2))
    return results


if __name__ == "__main__":
    main()
