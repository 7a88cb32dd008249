"""Entity linking on 200 hand-labelled headlines: precision, recall and F1 (micro) of the linker.

    .venv/bin/python -m bench.finance_entities

The labels (``bench/data/finance_entity_labels.csv``) name each headline by data set file, row and
the first 16 hex digits of the SHA-256 of its text (the texts stay in ``../shared/data/finance``);
``entities`` lists the watch-list tickers the headline mentions, as judged by a person reading it
(``|``-separated, empty for none). The watch list is ``configs/finance_watchlist.csv`` (121 large
companies). A pair (headline, ticker) is a true positive when both the labels and the linker have
it. Two linkers are measured: cashtags only (the monitor without a watch list) and the full linker.

Writes ``bench/results/finance_entities.json`` (scores, per-method counts, every miss and false
positive by id, never the text) and prints the Markdown table of docs/benchmarks/finance.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "finance"
LABELS = ROOT / "bench" / "data" / "finance_entity_labels.csv"
WATCHLIST = ROOT / "configs" / "finance_watchlist.csv"
RESULTS = ROOT / "bench" / "results" / "finance_entities.json"


def load_headlines(labels: Path = LABELS, data: Path = DATA) -> list[dict[str, Any]]:
    """The labelled headlines with their texts read from the shared data (each text's hash checked).

    Raises:
        SystemExit: The shared data is missing, or a row no longer holds the labelled text.
    """
    from core.io.tables import read_frame

    if not data.is_dir():
        raise SystemExit(f"real data not found at {data}; this benchmark needs ../shared/data/finance")
    with labels.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    frames: dict[str, list[str]] = {}
    out = []
    for row in rows:
        name = row["dataset"]
        if name not in frames:
            frames[name] = read_frame(data / name)["text"].astype(str).tolist()
        text = frames[name][int(row["row"])]
        if hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] != row["text_sha256"]:
            raise SystemExit(f"{labels}: {name} row {row['row']} holds another text than the one labelled")
        gold = [t for t in row["entities"].split("|") if t]
        out.append({"id": f"{name}:{row['row']}", "pool": row["pool"], "text": text, "gold": gold})
    return out


def score(headlines: list[dict[str, Any]], linker: Any) -> dict[str, Any]:
    """Micro precision, recall and F1 over (headline, ticker) pairs, with the misses and false positives."""
    tp = fp = fn = 0
    misses, false_positives = [], []
    methods: dict[str, int] = {}
    started = time.perf_counter()
    predicted_all = [linker.mentions(h["text"]) for h in headlines]
    seconds = time.perf_counter() - started
    for headline, mentions in zip(headlines, predicted_all, strict=True):
        first = {}
        for m in mentions:
            first.setdefault(m.ticker, m)
        gold, predicted = set(headline["gold"]), set(first)
        tp += len(gold & predicted)
        for ticker in sorted(predicted - gold):
            fp += 1
            false_positives.append({"id": headline["id"], "ticker": ticker, "matched": first[ticker].text})
        for ticker in sorted(gold - predicted):
            fn += 1
            misses.append({"id": headline["id"], "ticker": ticker})
        for ticker in gold & predicted:
            methods[first[ticker].method] = methods.get(first[ticker].method, 0) + 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "true_positives_by_method": dict(sorted(methods.items())),
        "headlines_per_s": round(len(headlines) / seconds, 1) if seconds else None,
        "misses": misses,
        "false_positives": false_positives,
    }


def main() -> dict[str, Any]:
    """Run both linkers on the labelled headlines, write the JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from apps.finance_monitor.entities import EntityLinker
    from apps.finance_monitor.watchlist import load_watchlist
    from core.atomic import write_bytes_atomic

    headlines = load_headlines()
    watchlist = load_watchlist(WATCHLIST)
    linkers = {"cashtags only": EntityLinker(), "watch list": EntityLinker(watchlist)}
    cashtag_only = linkers["cashtags only"]
    # Without a watch list every cashtag is an entity; score only those on the watch list, as labelled.
    cashtag_only.mentions = _listed(cashtag_only.mentions, watchlist)  # type: ignore[method-assign]
    results = {name: score(headlines, linker) for name, linker in linkers.items()}
    by_pool = {
        pool: score([h for h in headlines if h["pool"] == pool], linkers["watch list"])
        for pool in ("keyword", "random")
    }
    report = {
        "benchmark": "finance entity linking",
        "headlines": len(headlines),
        "with_entities": sum(bool(h["gold"]) for h in headlines),
        "gold_pairs": sum(len(h["gold"]) for h in headlines),
        "watchlist": str(WATCHLIST.relative_to(ROOT)),
        "companies": len(watchlist),
        "linker_version": linkers["watch list"].version,
        "results": results,
        "by_pool": {
            p: {k: r[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")} for p, r in by_pool.items()
        },
        "machine": {"platform": platform.platform(), "load_avg": list(os.getloadavg())},
        "command": "python -m bench.finance_entities",
    }
    write_bytes_atomic(args.out, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    print("| linker | precision | recall | F1 | TP | FP | FN |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        scores = f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f}"
        print(f"| {name} | {scores} | {r['tp']} | {r['fp']} | {r['fn']} |")
    return report


def _listed(mentions: Any, watchlist: Any) -> Any:
    """Keep the cashtags of listed companies, as their watch-list ticker ($GOOG -> GOOGL)."""

    def only_listed(text: str) -> list[Any]:
        found = [(m, watchlist.by_cashtag(m.ticker)) for m in mentions(text)]
        return [replace(m, ticker=company.ticker) for m, company in found if company is not None]

    return only_listed


if __name__ == "__main__":
    main()
