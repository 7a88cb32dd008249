"""Benchmark: ``aigc support index --adapt`` (a KB-adapted encoder) vs the frozen encoder.

Two public FAQ sets, each indexed as a KB of **documents only** (one plain-text document per answer;
the curated questions are left out of the index, as in a KB without them), then queried with human
questions the KB never saw:

* **StackFAQ** (``../shared/data/support/stackfaq``): 719 answers of 125 Stack Exchange threads;
  test queries are the 624 paraphrases of the upstream test half; a query's gold entries are all
  answers of its thread (so ``hit@1``, any gold answer first, is the readable top-1 number;
  ``recall@1`` of :mod:`apps.customer_service.retrieval_eval` is at most 1/|thread|).
* **COVID-QA FAQ** (deepset-ai/COVID-QA, Apache-2.0; kept outside the project in
  ``/work/extdata/covid-qa`` or ``$AIGC_COVIDQA_DIR``, skipped with a reason when absent): the
  213 English answers of ``faq_covidbert.csv`` (CDC, ECDC, WHO … FAQ pages); test queries are the
  244 human paraphrases of ``eval_question_similarity_en.csv`` (``similar == 1``), gold = the
  entries of the FAQ question they paraphrase (one gold, so recall@1 = hit@1).

Per set: the frozen KB is built (``KnowledgeBase.build``) and scored; the adapted KB is built with
``adapt=True`` (LoRA training on the ``adapt.queries`` pairs, judgement on questions the answer
model writes in ``adapt.generation.workers`` processes — for every entry with the default
``sentences`` queries, as the KB has no curated ones — or, with ``--judge-dev``, on the validation
questions as a judge file) once per training candidate of ``GRID`` (the first build writes the questions,
the others reuse them). Validation queries (curated questions neither indexed nor asked at test) are
scored too: the defaults are chosen on them. The candidate with the best **held-out** gain (the KB's
own generated questions, never the test paraphrases) among those the guard keeps is scored on the
test queries, dense and hybrid (app defaults); when the guard keeps none, the adapted KB is the
frozen one. ``--what-if`` keeps every candidate's adapter and scores each on the test queries as
well, to check the guard. Time per phase (generate wall and CPU seconds, train, judge, embed+index)
and the load average are recorded.

Run (results: ``bench/results/support_adapt.json`` and ``.png``; the 4 Dec runs:
``support_adapt_ict_*.json``)::

    nice -n 10 .venv/bin/python -m bench.support_adapt --what-if
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apps.customer_service.adaptation import guard_keeps
from apps.customer_service.config import KBConfig, RetrievalConfig
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from apps.customer_service.retrieval_eval import EvalQuery, score_rankings
from core.bench.harness import environment, pin_threads
from core.config import load_config, to_dict, write_json_atomic

logger = logging.getLogger("bench.support_adapt")

ROOT = Path(__file__).resolve().parents[1]
STACKFAQ = ROOT.parent / "shared" / "data" / "support" / "stackfaq" / "stackExchange-FAQ.xml"
COVIDQA = Path(os.environ.get("AIGC_COVIDQA_DIR", "/work/extdata/covid-qa"))
RESULTS = ROOT / "bench" / "results"
NAME = "support_adapt"
K = 10
METRICS = ("hit@1", "recall@1", "recall@5", "hit@5", "mrr@10")


@dataclass
class DocSet:
    """Answers as documents (``doc_id -> text``), test and validation queries with gold doc ids,
    and provenance. Validation queries (curated questions that are neither indexed nor test
    queries) choose the defaults; the test queries only report."""

    name: str
    docs: dict[str, str]
    test: list[tuple[str, tuple[str, ...]]]
    note: str
    dev: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


def load_stackfaq(path: Path = STACKFAQ) -> DocSet:
    """StackFAQ answers as documents ``t{thread}-a{answer}``; test = the paraphrases after ``*``;
    validation = the thread's title and the paraphrases before ``*`` (upstream's training half)."""
    root = ET.parse(path).getroot()
    docs: dict[str, str] = {}
    test: list[tuple[str, tuple[str, ...]]] = []
    dev: list[tuple[str, tuple[str, ...]]] = []
    for t, pair in enumerate(root.findall("qapair")):
        ids = []
        for a, answer in enumerate(pair.findall("answer")):
            ids.append(f"t{t:03d}-a{a:02d}")
            docs[ids[-1]] = (answer.text or "").strip()
        title = (pair.findtext("question") or "").strip()
        if title:
            dev.append((title, tuple(ids)))
        second_half = False
        for rephr in pair.findall("rephr"):
            text = (rephr.text or "").strip()
            if text == "*":
                second_half = True
            elif text:
                (test if second_half else dev).append((text, tuple(ids)))
    return DocSet("stackfaq", docs, test, "Karan & Snajder 2018; answers only, titles left out", dev)


def load_covidqa(folder: Path = COVIDQA) -> DocSet:
    """COVID-QA's English FAQ answers as documents ``faq-{row}``; test = similar paraphrases."""
    with (folder / "faq_covidbert.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    docs = {f"faq-{i:03d}": row["answer"].strip() for i, row in enumerate(rows)}
    by_question: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        by_question.setdefault(" ".join(row["question"].split()), []).append(f"faq-{i:03d}")
    test = []
    with (folder / "eval_question_similarity_en.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            gold = by_question.get(" ".join(row["question_1"].split()))
            if row["similar"] == "1" and gold:
                test.append((row["question_2"].strip(), tuple(gold)))
    # validation: the FAQ's own questions of the entries no test paraphrase asks for
    tested = {doc for _, gold in test for doc in gold}
    dev = [(q, tuple(ids)) for q, ids in by_question.items() if not set(ids) & tested]
    return DocSet("covidqa", docs, test, "deepset-ai/COVID-QA (Apache-2.0); answers only", dev)


def subset(data: DocSet, n: int) -> DocSet:
    """The first ``n`` documents and the queries whose gold documents are all among them."""
    docs = dict(list(data.docs.items())[:n])
    test = [(q, gold) for q, gold in data.test if set(gold) <= set(docs)]
    dev = [(q, gold) for q, gold in data.dev if set(gold) <= set(docs)]
    return DocSet(data.name, docs, test, f"{data.note}; smoke subset of {n} documents", dev)


def write_docs(docs: dict[str, str], folder: Path) -> Path:
    """One ``.txt`` per answer (title: the file name, as for any untitled document)."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, text in docs.items():
        (folder / f"{doc_id}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def doc_of(entry_id: str) -> str:
    """``docs/t000-a01.txt#top-0`` -> ``t000-a01`` (passages of one document share its gold)."""
    return entry_id.split("/", 1)[-1].split("#", 1)[0].removesuffix(".txt")


def write_judge(kb: KnowledgeBase, data: DocSet, folder: Path) -> Path:
    """The validation questions as a judge file (``query,gold_ids``: every passage of a gold document)."""
    passages: dict[str, list[str]] = {}
    for entry in kb.entries:
        passages.setdefault(doc_of(entry.id), []).append(entry.id)
    path = folder / "judge.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "gold_ids"])
        for query, gold in data.dev:
            writer.writerow([query, ";".join(i for doc in gold for i in passages.get(doc, []))])
    return path


def score(kb: KnowledgeBase, data: DocSet, mode: str, split: str = "test") -> dict[str, float]:
    """Metrics of one retrieval mode on the ``split`` queries (``test`` or ``dev``), ranking
    documents (passages merged)."""
    asked = data.test if split == "test" else data.dev
    if not asked:
        return {}
    retriever = Retriever(kb, replace(RetrievalConfig(), mode=mode))  # type: ignore[arg-type]
    started = time.perf_counter()
    hits = retriever.search_many([q for q, _ in asked], k=3 * K)
    rankings = [list(dict.fromkeys(doc_of(h.id) for h in row))[:K] for row in hits]
    queries = [EvalQuery(q, gold, i) for i, (q, gold) in enumerate(asked)]
    metrics = score_rankings(rankings, queries)
    out = {m: metrics[m] for m in METRICS}
    out["ms_per_query"] = round(1000 * (time.perf_counter() - started) / len(asked), 2)
    return out


# Training settings tried per set; the one with the best held-out recall@1 (then MRR@10) gain is
# scored on the test queries. The held-out questions are the KB's own (generated questions of 20 %
# of its entries), never the test paraphrases.
GRID: tuple[tuple[str, ...], ...] = (
    (),  # the defaults: inverse-cloze queries, 2 sentences an entry, lr 2e-3
    ("adapt.lr=0.001", "adapt.cloze.per_passage=4"),
)


def _selection_key(report: dict[str, Any]) -> tuple[float, float]:
    gain = report.get("gain") or {}
    return (gain.get("recall@1", float("-inf")), gain.get("mrr@10", float("-inf")))


def run_set(
    data: DocSet,
    work: Path,
    overrides: list[str],
    generator: Any,
    grid: tuple[tuple[str, ...], ...] = ((),),
    what_if: bool = False,
    judge_dev: bool = False,
) -> dict[str, Any]:
    """Frozen and adapted KBs of one set, scored dense and hybrid.

    Each ``grid`` candidate (KB setting overrides after ``overrides``) rebuilds the adapted KB; the
    first build generates the questions, later ones reuse them (``adapter/questions.jsonl``), so
    they differ only in training. The candidate whose held-out gain is best is scored on the test
    queries; when the guard kept no candidate's adapter, the adapted KB is the frozen encoder's.

    With ``what_if`` every candidate's adapter is kept whatever its held-out gain
    (``adapt.min_gain=-1``, ``adapt.max_p_value=1``) and scored on the test queries too
    (``test_dense``), to check the guard's decisions; ``guard_keeps`` says what the real
    ``min_gain`` and ``max_p_value`` would have done, and only
    candidates it keeps can be selected. With ``judge_dev`` the validation questions are the KB
    owner's judge file (``adapt.judge_file``: real questions instead of written ones), so they no
    longer choose anything else.
    """
    folder = write_docs(data.docs, work / data.name / "docs")
    config = load_config(KBConfig, overrides=overrides)
    started = time.perf_counter()
    frozen = KnowledgeBase.build([folder], work / data.name / "kb-frozen", config)
    frozen_s = time.perf_counter() - started
    if judge_dev:
        overrides = [*overrides, f"adapt.judge_file={write_judge(frozen, data, work / data.name)}"]
    load = os.getloadavg()[0]
    candidates: list[dict[str, Any]] = []
    kb_dir = work / data.name / "kb-adapted"
    for i, extra in enumerate(grid):
        forced = ["adapt.min_gain=-1", "adapt.max_p_value=1"] if what_if else []
        candidate = load_config(KBConfig, overrides=[*overrides, *extra, *forced])
        started = time.perf_counter()
        built = KnowledgeBase.build([folder], kb_dir, candidate, adapt=True, generator=generator)
        seconds = time.perf_counter() - started
        shutil.copytree(kb_dir, kb_dir.with_name(f"kb-adapted-{i}"), dirs_exist_ok=True)
        report = built.manifest["adaptation"]
        row = {
            "overrides": list(extra),
            "seconds_total": round(seconds, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "report": report,
            "guard_keeps": bool(report["kept"]),
        }
        if what_if:
            gain = (report.get("gain") or {}).get("recall@1")
            row["guard_keeps"] = gain is not None and guard_keeps(
                gain, report.get("significance") or {}, config.adapt
            )
            row["dev_dense"] = score(built, data, "dense", "dev") if report["kept"] else None
            row["test_dense"] = score(built, data, "dense") if report["kept"] else None
        candidates.append(row)
        logger.info("Candidate", extra={"set": data.name, "overrides": extra, "reason": report["reason"]})
    kept = [i for i, row in enumerate(candidates) if row["guard_keeps"]]
    best = max(kept or range(len(candidates)), key=lambda i: _selection_key(candidates[i]["report"]))
    adapted = KnowledgeBase.load(kb_dir.with_name(f"kb-adapted-{best}")) if kept else frozen
    report = candidates[best]["report"]
    first = candidates[0]["report"]["seconds"]
    result: dict[str, Any] = {
        "note": data.note,
        "entries": len(adapted),
        "documents": len(data.docs),
        "test_queries": len(data.test),
        "selected": {"candidate": best, "overrides": candidates[best]["overrides"], "kept": bool(kept)},
        "adaptation": report,
        "candidates": candidates,
        "seconds": {
            "index_frozen": round(frozen_s, 1),
            # the first build is the one that generated the questions: a full --adapt build
            "index_adapt_total": candidates[0]["seconds_total"],
            **first,
        },
        "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }
    result["dev_queries"] = len(data.dev)
    for mode in ("dense", "hybrid"):
        before, after = score(frozen, data, mode), score(adapted, data, mode)
        result[mode] = {
            "frozen": before,
            "adapted": after,
            "gain": {m: round(after[m] - before[m], 4) for m in METRICS},
        }
        dev_before, dev_after = score(frozen, data, mode, "dev"), score(adapted, data, mode, "dev")
        if dev_before:
            result[mode]["dev"] = {
                "frozen": dev_before,
                "adapted": dev_after,
                "gain": {m: round(dev_after[m] - dev_before[m], 4) for m in METRICS},
            }
        logger.info("Scored", extra={"set": data.name, "mode": mode, "frozen": before, "adapted": after})
    per_entry = candidates[0]["seconds_total"] / max(len(adapted), 1)
    result["adapt_seconds_per_1000_entries"] = round(1000 * per_entry, 1)
    return result


def plot(results: dict[str, Any], path: Path) -> None:
    """Frozen vs adapted hit@1, recall@5 and MRR@10 (dense) per set; with ``--what-if`` runs a
    second row per set: each candidate's held-out gain (what the guard saw, with its won / lost
    questions and sign-test p) beside its test gain (what the guard could not see)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    sets = [name for name in results["sets"] if "dense" in results["sets"][name]]
    what_if = any(c.get("test_dense") for n in sets for c in results["sets"][n]["candidates"])
    metrics = ["hit@1", "recall@1", "recall@5", "mrr@10"]
    rows_n, cols_n = (2 if what_if else 1), max(len(sets), 1)
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(5.5 * cols_n, 4 * rows_n), squeeze=False)
    for col, name in enumerate(sets):
        ax, rows = axes[0][col], results["sets"][name]["dense"]
        x = range(len(metrics))
        for shift, label in ((-0.2, "frozen"), (0.2, "adapted")):
            bars = ax.bar([i + shift for i in x], [rows[label][m] for m in metrics], 0.4, label=label)
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_xticks(list(x), metrics)
        ax.set_ylim(0, 1.1)
        kept = results["sets"][name]["selected"]["kept"]
        ax.set_title(f"{name}: dense, product result (adapter {'kept' if kept else 'discarded'})", fontsize=9)
        ax.legend(fontsize=7)
        if what_if:
            _plot_candidates(axes[1][col], name, results["sets"][name])
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_candidates(ax: Any, name: str, result: dict[str, Any]) -> None:
    """Held-out vs test top-1 gain (points) of each candidate, labelled with the guard's call (hit@1
    on test: StackFAQ's recall@1 is capped by its several gold answers; held out, one gold, they agree)."""
    frozen = result["dense"]["frozen"]["hit@1"]
    labels, held, test = [], [], []
    for i, row in enumerate(result["candidates"]):
        report, sig = row["report"], row["report"].get("significance") or {}
        held.append(100 * (report.get("gain") or {}).get("recall@1", 0.0))
        test.append(100 * ((row.get("test_dense") or {}).get("hit@1", frozen) - frozen))
        decision = "keep" if row["guard_keeps"] else "discard"
        detail = f"{sig['wins']}/{sig['losses']}, p {sig['p_value']:.2f}" if sig else ""
        labels.append(f"#{i} {decision}\n{detail}")
    x = range(len(labels))
    series = ((-0.2, held, "held-out recall@1 (judge)"), (0.2, test, "test hit@1 (what-if)"))
    for shift, values, label in series:
        bars = ax.bar([i + shift for i in x], values, 0.4, label=label)
        ax.bar_label(bars, fmt="%+.1f", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.axhline(5, color="grey", linewidth=0.6, linestyle="--", label="target +5")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylabel("top-1 gain over frozen (points)", fontsize=8)
    ax.set_title(f"{name}: each candidate, won/lost questions and sign-test p", fontsize=9)
    ax.legend(fontsize=7)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=["stackfaq", "covidqa"], choices=["stackfaq", "covidqa"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the KBs (and questions) here")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="KB setting, e.g. adapt.epochs=3"
    )
    parser.add_argument(
        "--max-docs", type=int, default=None, help="smoke run: only the first N documents and their queries"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=None,
        help="training candidate: ';'-separated KB settings (repeat; default: the built-in GRID)",
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="keep every candidate's adapter and score it on the test queries (checks the guard)",
    )
    parser.add_argument(
        "--judge-dev",
        action="store_true",
        help="the validation questions judge as the KB owner's real questions (adapt.judge_file)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pin_threads(args.threads)

    config = load_config(KBConfig, overrides=args.overrides)
    loaders = {
        "stackfaq": (load_stackfaq, STACKFAQ),
        "covidqa": (load_covidqa, COVIDQA / "faq_covidbert.csv"),
    }
    results: dict[str, Any] = {
        "environment": environment(),
        "adapt_config": to_dict(config.adapt),
        "sets": {},
    }
    grid = GRID if args.grid is None else tuple(tuple(g.split(";")) if g else () for g in args.grid)
    results["grid"] = [list(g) for g in grid]
    # No generator passed in: the build runs the answer model in adapt.generation.workers processes.
    generator = None
    with tempfile.TemporaryDirectory(prefix="bench-adapt-") as tmp:
        work = args.work_dir or Path(tmp)
        for name in args.sets:
            loader, path = loaders[name]
            if not path.exists():
                results["sets"][name] = {"skipped": f"{path} not found"}
                logger.warning("Skipping set", extra={"set": name, "reason": f"{path} not found"})
                continue
            data = loader()
            if args.max_docs:
                data = subset(data, args.max_docs)
            results["sets"][name] = run_set(
                data, work, args.overrides, generator, grid, args.what_if, args.judge_dev
            )
            results["sets"][name]["judge"] = (
                "validation questions (judge file)" if args.judge_dev else "written"
            )
            write_json_atomic(args.out, results)
    write_json_atomic(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    return results


if __name__ == "__main__":
    main()
