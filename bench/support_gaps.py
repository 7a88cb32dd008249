"""Benchmark: the knowledge-gap report's clusters on BANKING77, against the true intents.

Set-up (all choices from the train split; the test split is used once, at the end):

* **KB**: a random ``--covered`` share of the 77 intents (seeded) gets ``--faq`` FAQ entries each:
  train questions of that intent with a one-sentence answer naming the intent (BANKING77 has no
  answers). The other intents are the knowledge gaps;
* **answer gate**: calibrated on ``--calib`` further train questions per intent (covered intents
  in scope, with their FAQ ids as gold; uncovered ones out of scope);
* **validation**: ``--val`` further train questions per intent are asked; those the bot cannot
  answer (:func:`apps.customer_service.gaps.is_unanswered`) are clustered with each setting of a
  grid (agglomerative: cosine distance thresholds; HDBSCAN: min cluster sizes). The setting with
  the best adjusted Rand index against the intents is chosen per method;
* **test**: the 3,080 test questions (40 per intent) are asked; the unanswered ones are clustered
  with the chosen settings and scored: purity (of clustered questions), NMI and ARI (scikit-learn;
  unclustered questions count as singletons), clusters found vs intents present, share
  unclustered, how many uncovered intents are the majority of some cluster, and the time to ask,
  to cluster and to build the whole report (labels, nearest entries, quoted drafts). An
  agglomerative clustering given the true number of intents (an oracle the app does not have) is
  the reference.

Run (results: ``bench/results/support_gaps.json`` and ``.png``; table in docs/benchmarks/support.md)::

    nice -n 10 .venv/bin/python -m bench.support_gaps
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.customer_service.bot import SupportBot
from apps.customer_service.confidence import calibrate_kb
from apps.customer_service.config import GapsConfig
from apps.customer_service.gaps import GapQuestion, find_gaps, is_unanswered
from apps.customer_service.intents import HEAD, load_banking77
from apps.customer_service.knowledge_base import KnowledgeBase
from core.bench.harness import environment
from core.clustering import UNCLUSTERED, ClusterConfig, cluster_vectors, cosine_distances
from core.config import to_dict, write_json_atomic
from core.embeddings import Embedder
from core.metrics import clustering_scores

logger = logging.getLogger("bench.support_gaps")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "support" / "banking77"
RESULTS = ROOT / "bench" / "results"
NAME = "support_gaps"
SEED = 42
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
MIN_SIZES = (2, 3, 5, 8, 12)
BIG = 5


def split_train(
    texts: Sequence[str], labels: Sequence[str], sizes: Sequence[int], seed: int = SEED
) -> list[list[int]]:
    """Disjoint per-intent samples of train rows: part ``j`` holds ``sizes[j]`` rows of every intent
    (fewer when an intent runs out), rows in a seeded random order.

    Returns:
        One sorted row list per part.
    """
    del texts  # rows are identified by position
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        by_label.setdefault(label, []).append(row)
    parts: list[list[int]] = [[] for _ in sizes]
    for label in sorted(by_label):
        rows = rng.permutation(by_label[label]).tolist()
        start = 0
        for part, size in zip(parts, sizes, strict=True):
            part.extend(rows[start : start + size])
            start += size
    return [sorted(p) for p in parts]


def intent_words(label: str) -> str:
    """``card_arrival`` -> ``card arrival``."""
    return label.replace("_", " ")


def write_kb_files(
    folder: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    faq_rows: Sequence[int],
    calib_rows: Sequence[int],
    covered: set[str],
) -> tuple[Path, Path, Path]:
    """The FAQ file (covered intents), and the in-scope / out-of-scope calibration files."""
    import csv

    faq, in_scope, out_scope = folder / "faq.csv", folder / "calib_in.csv", folder / "calib_oos.csv"
    ids: dict[str, list[str]] = {}
    with faq.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "question", "answer", "category"])
        for row in faq_rows:
            if labels[row] in covered:
                entry = f"{labels[row]}-{len(ids.setdefault(labels[row], []))}"
                ids[labels[row]].append(entry)
                answer = f"This is our help answer about {intent_words(labels[row])}."
                writer.writerow([entry, texts[row], answer, labels[row]])
    with (
        in_scope.open("w", newline="", encoding="utf-8") as fin,
        out_scope.open("w", newline="", encoding="utf-8") as fout,
    ):
        w_in, w_out = csv.writer(fin), csv.writer(fout)
        w_in.writerow(["query", "gold_ids"])
        w_out.writerow(["query"])
        for row in calib_rows:
            if labels[row] in covered:
                w_in.writerow([texts[row], ";".join(ids[labels[row]])])
            else:
                w_out.writerow([texts[row]])
    return faq, in_scope, out_scope


def ask(bot: SupportBot, texts: Sequence[str], low_confidence: float) -> tuple[list[int], float]:
    """Positions of the questions the bot cannot answer, and the seconds it took to ask them all."""
    start = time.perf_counter()
    gaps = []
    for i, text in enumerate(texts):
        if is_unanswered(bot.answer(text), low_confidence):
            gaps.append(i)
        if (i + 1) % 500 == 0:
            logger.info("asked %d/%d, %d unanswered", i + 1, len(texts), len(gaps))
    return gaps, time.perf_counter() - start


def score(labels: Sequence[str], clusters: np.ndarray, uncovered: set[str]) -> dict[str, Any]:
    """clustering_scores plus how many uncovered intents lead some cluster, and covered-intent share."""
    out: dict[str, Any] = {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in clustering_scores(labels, clusters.tolist()).items()
    }
    majority = set()
    for c in set(clusters.tolist()) - {UNCLUSTERED}:
        members = [label for label, k in zip(labels, clusters, strict=True) if k == c]
        majority.add(Counter(members).most_common(1)[0][0])
    # What an admin reads first: the clusters of at least BIG questions.
    big = [c for c, n in Counter(clusters.tolist()).items() if c != UNCLUSTERED and n >= BIG]
    in_big = [k in big for k in clusters.tolist()]
    big_labels = [label for label, keep in zip(labels, in_big, strict=True) if keep]
    big_clusters = [k for k, keep in zip(clusters.tolist(), in_big, strict=True) if keep]
    out[f"clusters_{BIG}plus"] = len(big)
    out[f"purity_{BIG}plus"] = round(clustering_scores(big_labels, big_clusters)["purity"], 4) if big else 0.0
    out[f"share_in_{BIG}plus"] = round(sum(in_big) / len(labels), 4)
    present_uncovered = uncovered & set(labels)
    out["uncovered_intents_present"] = len(present_uncovered)
    out["uncovered_intents_found"] = len(majority & present_uncovered)
    out["covered_share_of_gaps"] = round(sum(label not in uncovered for label in labels) / len(labels), 4)
    return out


def sweep(
    vectors: np.ndarray, labels: Sequence[str], uncovered: set[str]
) -> tuple[dict[str, ClusterConfig], list[dict[str, Any]]]:
    """Every grid setting scored on the validation gaps; the best (ARI) setting per method."""
    rows = []
    best: dict[str, tuple[float, ClusterConfig]] = {}
    grid = [ClusterConfig(distance_threshold=t) for t in THRESHOLDS]
    grid += [ClusterConfig(method="hdbscan", min_cluster_size=m) for m in MIN_SIZES]
    for config in grid:
        start = time.perf_counter()
        clusters = cluster_vectors(vectors, config)
        seconds = time.perf_counter() - start
        scores = score(labels, clusters, uncovered)
        rows.append({**to_dict(config), **scores, "seconds": round(seconds, 3)})
        if config.method not in best or scores["ari"] > best[config.method][0]:
            best[config.method] = (scores["ari"], config)
    return {m: c for m, (_, c) in best.items()}, rows


def oracle(vectors: np.ndarray, n: int) -> np.ndarray:
    """Average-linkage agglomerative clustering cut at the true number of intents (reference only)."""
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=n, metric="precomputed", linkage="average").fit_predict(
        cosine_distances(vectors)
    )


def plot(results: dict[str, Any], path: Path) -> None:
    """Validation purity / NMI / ARI / unclustered share over the distance threshold, test points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    rows = [r for r in results["validation"]["grid"] if r["method"] == "agglomerative"]
    x = [r["distance_threshold"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for key in ("purity", "nmi", "ari", "unclustered_share"):
        ax.plot(x, [r[key] for r in rows], marker="o", label=f"validation {key}")
    chosen = results["chosen"]["agglomerative"]["distance_threshold"]
    test = results["test"]["agglomerative"]
    for key, marker in (("purity", "s"), ("nmi", "^"), ("ari", "D"), ("unclustered_share", "x")):
        ax.scatter([chosen], [test[key]], marker=marker, s=60, color="black", zorder=5)
    ax.axvline(chosen, color="grey", linestyle=":", label=f"chosen threshold {chosen} (black: test)")
    ax.set_xlabel("cosine distance threshold (average linkage)")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"BANKING77 gap clusters: KB covers {results['data']['covered_intents']} of 77 intents, MiniLM-L6"
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="minilm-l6")
    # One torch thread: on 2 cores shared with other jobs, two threads made each answer 17x slower
    # (spinning workers), measured with bot.answer on the sample KB at load 11.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--covered", type=float, default=0.5, help="share of intents the KB covers")
    parser.add_argument("--faq", type=int, default=5, help="FAQ entries per covered intent")
    parser.add_argument("--calib", type=int, default=10, help="calibration questions per intent")
    parser.add_argument("--val", type=int, default=20, help="validation questions per intent")
    parser.add_argument("--test", type=int, default=40, help="test questions per intent (40: all)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    if not (args.data / "train.csv").is_file():
        raise SystemExit(f"BANKING77 not found at {args.data} (expected ../shared/data/support/banking77)")
    load_start = os.getloadavg()[0]
    train, test = load_banking77(args.data, "train"), load_banking77(args.data, "test")
    train_labels = [str(label) for label in train.labels[HEAD]]
    intents = sorted(set(train_labels))
    rng = np.random.default_rng(args.seed)
    covered = set(rng.choice(intents, size=round(args.covered * len(intents)), replace=False).tolist())
    uncovered = set(intents) - covered
    faq_rows, calib_rows, val_rows = split_train(
        train.texts, train_labels, [args.faq, args.calib, args.val], args.seed
    )
    test_labels_all = [str(label) for label in test.labels[HEAD]]
    test_rows = split_train(test.texts, test_labels_all, [args.test], args.seed)[0]
    embedder = Embedder(args.model)
    config = GapsConfig(draft="extractive")
    with tempfile.TemporaryDirectory(prefix="bench-gaps-") as tmp:
        faq, calib_in, calib_oos = write_kb_files(
            Path(tmp), train.texts, train_labels, faq_rows, calib_rows, covered
        )
        start = time.perf_counter()
        kb = KnowledgeBase.build([faq], Path(tmp) / "kb", embedder=embedder)
        calibration = calibrate_kb(Path(tmp) / "kb", calib_in, calib_oos)
        build_s = time.perf_counter() - start
        bot = SupportBot(KnowledgeBase.load(Path(tmp) / "kb"), embedder=embedder)

        val_texts = [train.texts[r] for r in val_rows]
        val_labels = [train_labels[r] for r in val_rows]
        val_gaps, val_ask_s = ask(bot, val_texts, config.low_confidence)
        val_vectors = embedder.encode([val_texts[i] for i in val_gaps])
        chosen, grid = sweep(val_vectors, [val_labels[i] for i in val_gaps], uncovered)
        logger.info("chosen on validation: %s", {m: to_dict(c) for m, c in chosen.items()})

        test_texts = [test.texts[r] for r in test_rows]
        test_labels = [test_labels_all[r] for r in test_rows]
        test_gaps, test_ask_s = ask(bot, test_texts, config.low_confidence)
        gap_texts = [test_texts[i] for i in test_gaps]
        gap_labels = [test_labels[i] for i in test_gaps]
        tick = time.perf_counter()
        vectors = embedder.encode(gap_texts)
        embed_s = time.perf_counter() - tick
        results_test: dict[str, Any] = {}
        for method, cluster_config in chosen.items():
            tick = time.perf_counter()
            clusters = cluster_vectors(vectors, cluster_config)
            results_test[method] = {
                **score(gap_labels, clusters, uncovered),
                "cluster_s": round(time.perf_counter() - tick, 3),
            }
        present = len(set(gap_labels))
        results_test["oracle_k_reference"] = score(gap_labels, oracle(vectors, present), uncovered)
        tick = time.perf_counter()
        questions = [GapQuestion(t, ("unanswered",)) for t in gap_texts]
        report = find_gaps(
            bot, questions, replace(config, clustering=chosen["agglomerative"]), asked=len(test_texts)
        )
        report_s = time.perf_counter() - tick
        results: dict[str, Any] = {
            "benchmark": NAME,
            "command": "nice -n 10 .venv/bin/python -m bench." + NAME,
            "environment": environment(),
            "loadavg_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
            "model": args.model,
            "data": {
                "covered_intents": len(covered),
                "uncovered_intents": len(uncovered),
                "faq_entries": len(kb),
                "calibration_questions": len(calib_rows),
                "validation_questions": len(val_texts),
                "test_questions": len(test_texts),
                "seed": args.seed,
            },
            "gate": {"handoff_threshold": round(calibration.handoff_threshold, 4), **calibration.report},
            "kb_build_and_calibrate_s": round(build_s, 1),
            "validation": {
                "unanswered": len(val_gaps),
                "uncovered_share_of_unanswered": round(
                    sum(val_labels[i] in uncovered for i in val_gaps) / max(len(val_gaps), 1), 4
                ),
                "ask_s": round(val_ask_s, 1),
                "grid": grid,
            },
            "chosen": {m: to_dict(c) for m, c in chosen.items()},
            "test": results_test,
            "test_unanswered": len(test_gaps),
            "test_unanswered_of_uncovered_intents": round(
                sum(label in uncovered for label in gap_labels)
                / max(sum(label in uncovered for label in test_labels), 1),
                4,
            ),
            "times_s": {
                "ask_per_question_ms": round(1000 * test_ask_s / len(test_texts), 1),
                "ask_all": round(test_ask_s, 1),
                "embed_gaps": round(embed_s, 2),
                "report_with_drafts": round(report_s, 1),
            },
            "report": {
                "clusters": len(report.clusters),
                "unclustered": len(report.unclustered),
                "drafts": report.methods(),
                "largest": [
                    {
                        "label": c.label,
                        "size": c.size,
                        "majority_intent": Counter(
                            gap_labels[gap_texts.index(q)] for q in c.questions
                        ).most_common(1)[0],
                    }
                    for c in report.clusters[:10]
                ],
            },
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    print(
        json.dumps(
            {"chosen": results["chosen"], "test": results_test, "times_s": results["times_s"]}, indent=2
        )
    )
    return results


if __name__ == "__main__":
    main()
