"""Benchmark: alert digests on the sample stream and on a replay of real TFNS tweets.

Two streams go through the real pipeline (ingestion with near-duplicate grouping, the alert rules, the
alert engine with a :class:`~apps.finance_monitor.digests.Digester` computing each digest in the
alert's transaction). Items are scored with their true labels (as ``tests/.../sample_db.py`` does),
so the alerts are the ones the data holds, not a model's mistakes:

* **sample** — the shipped sample stream (299 items in three files, syndicated copies included) with
  the shipped rules plus three bench rules (per source, overall, and positive surges per topic) so
  there are more than two alerts to time;
* **tfns** — 1,500-odd tweets of ``twitter_financial_news_sentiment/sent_train.csv`` replayed over
  five days with timestamps (``--seed``): 12 tweets an hour drawn from the data's own mix, and every
  ``--surge-every`` hours a burst of 14 tweets of one sentiment around a seed tweet (its nearest
  neighbours of that sentiment under MiniLM, as when many accounts tweet one story) that the
  ``all`` rules catch (``share_negative`` and ``share_positive``, hour buckets, 24-bucket baseline).
  Labels: 0 Bearish = negative, 1 Bullish = positive, 2 neutral.

For every alert: the digest at alert time (extractive: the default), then again on demand in each
mode measured (models warm). Per summary sentence: supported by the items it cites according to the
support checker (:func:`core.summarize.check_sentences`: the grounding verifier plus the output
check), according to the stricter lexical check (:func:`core.grounding.lexical_problems`: verbatim,
or every content word, number, name and negation found in the cited items), and whether it is a
verbatim quote. Generated mode (``--generate``, SmolLM2 via :class:`core.generation.Generator`)
also reports the sentences the model wrote before the checks, how many were dropped, and how often
the digest fell back to the extractive summary. Time per digest: p50/p95 wall seconds of
:func:`~apps.finance_monitor.digests.get_digest` (database reads included).

Run (results: ``bench/results/finance_digest.json``)::

    nice -n 5 .venv/bin/python -m bench.finance_digest [--generate] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.config import DigestConfig
from apps.finance_monitor.digests import Digest, Digester, baseline_lengths, get_digest, load_alert_items
from apps.finance_monitor.ingest import Ingestor
from apps.finance_monitor.rules import AlertRule, load_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
from apps.finance_monitor.storage import ScoreRow, scored_frame, store_scores
from core.config import write_json_atomic
from core.embeddings import Embedder
from core.grounding import lexical_problems
from core.schema import migrate
from core.storage import create_engine, session_scope

logger = logging.getLogger("bench.finance_digest")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "finance" / "twitter_financial_news_sentiment" / "sent_train.csv"
RESULTS = ROOT / "bench" / "results"
NAME = "finance_digest"
TFNS_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}
BURST = 14  # tweets of one sentiment around a seed tweet in a surge hour (beside the hour's 12)
SAMPLE_BENCH_RULES = [
    AlertRule(name="source-negative", scope="source", window="hour", threshold=0.75, min_volume=4,
              baseline_buckets=72, min_baseline_buckets=6),
    AlertRule(name="all-negative", scope="all", window="hour", std_factor=2.5, min_volume=8,
              baseline_buckets=72, min_baseline_buckets=6),
    AlertRule(name="topic-positive", scope="topic", metric="share_positive", window="hour", threshold=0.75,
              min_volume=4, baseline_buckets=72, min_baseline_buckets=6),
]  # fmt: skip
TFNS_RULES = [
    AlertRule(name="tweets-negative-surge", scope="all", window="hour", std_factor=3.0, threshold=0.6,
              min_volume=8, baseline_buckets=24, min_baseline_buckets=6, cooldown=timedelta(hours=2)),
    AlertRule(name="tweets-positive-surge", scope="all", metric="share_positive", window="hour",
              std_factor=3.0, threshold=0.6, min_volume=8, baseline_buckets=24, min_baseline_buckets=6,
              cooldown=timedelta(hours=2)),
]  # fmt: skip


# ------------------------------------------------------------------------------ streams
def fill_sample(engine: Any) -> list[AlertRule]:
    """Ingest the sample stream, score it with its true labels; the rules to apply."""
    ingestor = Ingestor(engine)
    for name in STREAM_FILES:
        ingestor.ingest_file(SAMPLE_DATA_DIR / name)
    with (SAMPLE_DATA_DIR / "news_truth.csv").open(newline="", encoding="utf-8") as fh:
        rows = [ScoreRow(r["id"], "truth", r["sentiment"], 1.0, r["topic"], 1.0) for r in csv.DictReader(fh)]
    with session_scope(engine) as session:
        store_scores(session, rows)
    return load_rules(SAMPLE_DATA_DIR / "alert_rules.yaml") + SAMPLE_BENCH_RULES


def tfns_replay(path: Path, embedder: Embedder, seed: int, hours: int, surge_every: int) -> dict[str, str]:
    """Write the TFNS replay CSV to ``path``; return ``{item id: true sentiment}``."""
    with DATA.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], TFNS_LABELS[r["label"]]) for r in csv.DictReader(fh)]
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(rows))]
    used: set[int] = set()
    # Burst candidates: the first 800 tweets of each sentiment in the shuffled order, embedded once.
    pools = {label: [i for i in order if rows[i][1] == label][:800] for label in ("negative", "positive")}
    vectors = {
        label: np.asarray(embedder.encode([rows[i][0] for i in pool])) for label, pool in pools.items()
    }
    start = datetime(2026, 6, 1, tzinfo=UTC)
    plan: list[tuple[int, int]] = []  # (hour, row index)
    cursor = surges = 0
    for hour in range(hours):
        if hour >= 30 and hour % surge_every == 0:
            label = "negative" if surges % 2 == 0 else "positive"
            surges += 1
            pool, vecs = pools[label], vectors[label]
            free = [k for k, i in enumerate(pool) if i not in used]
            centre = free[int(rng.integers(len(free)))]
            ranked = sorted(free, key=lambda k: -float(vecs[k] @ vecs[centre]))[:BURST]
            plan += [(hour, pool[k]) for k in ranked]
            used.update(pool[k] for k in ranked)
        for _ in range(12):
            while order[cursor] in used:
                cursor += 1
            plan.append((hour, order[cursor]))
            used.add(order[cursor])
    truth = {}
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "timestamp", "source", "title"])
        for n, (hour, i) in enumerate(plan):
            when = start + timedelta(hours=hour, minutes=int(rng.integers(60)), seconds=n % 60)
            item_id = f"tfns-{i}"
            writer.writerow([item_id, when.isoformat(), "twitter", rows[i][0]])
            truth[item_id] = rows[i][1]
    return truth


def fill_tfns(engine: Any, embedder: Embedder, tmp: Path, seed: int, hours: int, surge_every: int) -> int:
    """Ingest the TFNS replay and score it with its labels; the number of items stored."""
    path = tmp / "tfns_replay.csv"
    truth = tfns_replay(path, embedder, seed, hours, surge_every)
    result = Ingestor(engine).ingest_file(path)
    with session_scope(engine) as session:
        store_scores(session, [ScoreRow(i, "truth", truth[i], 1.0, None, None) for i in result.new_ids])
    return len(result.new_ids)


# ------------------------------------------------------------------------------ measures
def sentence_checks(engine: Any, digest: Digest) -> list[dict[str, Any]]:
    """Per summary sentence: the support checker's verdict, the lexical check, verbatim quote."""
    with session_scope(engine) as session:
        items = {i.id: i for i in load_alert_items(session, digest.alert_id)}
    out = []
    for sentence in digest.summary:
        cited = "\n".join(items[c].text for c in sentence.cites if c in items)
        problems = lexical_problems(sentence.text, cited) if cited else ["no cited item"]
        out.append(
            {
                "text": sentence.text,
                "cites": len(sentence.cites),
                "cites_in_alert": all(c in items for c in sentence.cites),
                "supported": bool(sentence.supported),
                "lexical": not problems,
                "lexical_problems": problems,
                "verbatim": bool(cited) and " ".join(sentence.text.split()) in " ".join(cited.split()),
            }
        )
    return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / max, rounded to milliseconds."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    arr = np.asarray(values, dtype=float)
    return {
        k: round(float(v), 3)
        for k, v in zip(("p50", "p95", "max"), np.percentile(arr, [50, 95, 100]), strict=False)
    }


def measure_mode(
    engine: Any, alert_ids: list[int], make: Callable[[], Digester], buckets: dict[str, int]
) -> dict[str, Any]:
    """Every alert's digest computed again, each by a new digester from ``make`` (models loaded, no
    vector cached yet: the time of a new alert's digest); shares and timings."""
    seconds, checks, records = [], [], []
    generated = dropped = fallbacks = 0
    for alert_id in alert_ids:
        digester = make()
        started = time.perf_counter()
        digest = get_digest(engine, alert_id, digester, buckets, refresh=True)
        seconds.append(time.perf_counter() - started)
        rows = sentence_checks(engine, digest)
        checks += rows
        generated += len(digest.dropped) + (len(digest.summary) if digest.mode == "generated" else 0)
        dropped += len(digest.dropped)
        fallbacks += int(digest.mode != "generated" and digest.note is not None)
        records.append(
            {
                "alert_id": alert_id,
                "mode": digest.mode,
                "note": digest.note,
                "items": digest.items,
                "stories": len(digest.clusters),
                "summary": digest.summary_text(),
                "entities": digest.entities[:5],
                "window_share_negative": digest.window.share_negative,
                "baseline_share_negative": digest.baseline.share_negative,
                "dropped": [{"text": s.text, "reasons": list(s.reasons)} for s in digest.dropped],
                "seconds": round(seconds[-1], 3),
                "sentences": rows,
            }
        )
    n = len(checks)
    return {
        "digests": len(alert_ids),
        "sentences": n,
        "supported_share": round(sum(c["supported"] for c in checks) / n, 4) if n else None,
        "lexical_share": round(sum(c["lexical"] for c in checks) / n, 4) if n else None,
        "verbatim_share": round(sum(c["verbatim"] for c in checks) / n, 4) if n else None,
        "cites_in_alert_share": round(sum(c["cites_in_alert"] for c in checks) / n, 4) if n else None,
        "sentences_per_digest": round(n / len(alert_ids), 2) if alert_ids else None,
        "generated_sentences": generated,
        "dropped_by_checks": dropped,
        "fallbacks_to_extractive": fallbacks,
        "seconds": percentiles(seconds),
        "misses": [
            {"alert_id": r["alert_id"], "text": s["text"], "lexical_problems": s["lexical_problems"]}
            for r in records
            for s in r["sentences"]
            if not (s["supported"] and s["lexical"])
        ],
        "alerts": records,
    }


def run_stream(
    name: str, engine: Any, rules: list[AlertRule], embedder: Embedder, args: Any
) -> dict[str, Any]:
    """Alerts with digests at alert time, then each mode measured on every alert."""
    digester = Digester(DigestConfig(), embedder=embedder)
    with session_scope(engine) as session:
        frame = scored_frame(session)
    started = time.perf_counter()
    created = AlertEngine(engine, rules, digester=digester).evaluate(frame)
    at_alert_time = time.perf_counter() - started
    ids = [a.id for a in created]
    buckets = baseline_lengths(rules)
    result: dict[str, Any] = {
        "items": len(frame),
        "alerts": len(ids),
        "alerts_by_rule": {r.name: sum(a.rule == r.name for a in created) for r in rules},
        "evaluate_with_digests_s": round(at_alert_time, 3),
        "modes": {"extractive": measure_mode(engine, ids, lambda: Digester(embedder=embedder), buckets)},
    }
    if args.generate:
        from core.generation import Generator

        loaded = time.perf_counter()
        generator = Generator(DigestConfig().model, backend=args.backend, n_threads=args.threads)
        result["generator"] = {"backend": generator.backend, "load_s": round(time.perf_counter() - loaded, 2)}
        config = DigestConfig(generate=True)
        chosen = ids[: args.max_generated]
        result["modes"]["generated"] = measure_mode(
            engine, chosen, lambda: Digester(config, embedder=embedder, generator=generator), buckets
        )
    logger.info("Stream done", extra={"stream": name, "alerts": len(ids)})
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write ``bench/results/finance_digest.json``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generate", action="store_true", help="also measure generated summaries (SmolLM2)")
    parser.add_argument("--backend", default=None, help="generation backend (default: auto)")
    parser.add_argument("--max-generated", type=int, default=12, help="alerts per stream in generated mode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a busy machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hours", type=int, default=120, help="hours of TFNS replay")
    parser.add_argument("--surge-every", type=int, default=9, help="hours between TFNS bursts")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not DATA.is_file():
        raise SystemExit(f"real data not found at {DATA}; this benchmark needs ../shared/data/finance")
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    loaded = time.perf_counter()
    embedder = Embedder(DigestConfig().encoder)
    embedder.encode(["warm up"])
    embedder_load = time.perf_counter() - loaded
    streams: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="finance-digest-") as tmp:
        for name in ("sample", "tfns"):
            engine = create_engine(f"sqlite:///{Path(tmp) / name}.db")
            migrate(engine)
            if name == "sample":
                rules = fill_sample(engine)
            else:
                fill_tfns(engine, embedder, Path(tmp), args.seed, args.hours, args.surge_every)
                rules = TFNS_RULES
            streams[name] = run_stream(name, engine, rules, embedder, args)
            engine.dispose()
    results = {
        "benchmark": NAME,
        "command": "python -m bench.finance_digest" + (" --generate" if args.generate else ""),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "target": {"supported_share": 0.95},
        "encoder": DigestConfig().encoder,
        "encoder_load_s": round(embedder_load, 2),
        "streams": streams,
        "wall_s": round(time.perf_counter() - started, 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    write_json_atomic(args.out, results)
    return results


if __name__ == "__main__":
    report = main()
    for stream, data in report["streams"].items():
        for mode, m in data["modes"].items():
            print(
                f"{stream:7s} {mode:10s} alerts {m['digests']:3d} sentences {m['sentences']:3d} "
                f"supported {m['supported_share']} lexical {m['lexical_share']} "
                f"p50 {m['seconds']['p50']} s p95 {m['seconds']['p95']} s"
            )
