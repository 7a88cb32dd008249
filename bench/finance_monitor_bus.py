"""``aigc bench monitor``: end-to-end throughput of the finance monitor fed by Redis, NATS or a folder.

One run publishes ``items`` news items (real headlines and tweets from ``../shared/data/finance``:
TFNS and the topic set's training texts, cycled, each copy with its own id, ten seconds apart,
over four sources) to a fresh Redis stream, NATS subject or watched folder (JSON Lines files of
1,000 items), then runs the monitor until everything is drained: every message stored, scored
and its batch's alerts evaluated before it is acknowledged (the folder: cycles until no file is
left). The clock runs from the first publish to the last evaluation.

Counted from the database against the published ids: ``lost`` (published, not stored and scored)
and ``duplicated`` (rows beyond one item and one score per id). ``alerts`` are those the shipped
sample rules raised. ``scoring_items_per_s`` measures the model alone on 2,000 of the same texts,
so the report shows how much of the pipeline's time is the model. The model is the demo's
two-head MiniLM (``$AIGC_DATA_DIR/finance/models/news``, trained first if absent, as
``aigc prepare-demo`` does). The monitor is the one ``aigc finance monitor`` builds from the default
settings (``build_monitor``: alert digests computed with each alert, cashtag linking, the ingest's
near-duplicate threshold), so digest time counts. The database is a fresh SQLite file (WAL), the
suite's default.

Results: ``bench/results/finance_monitor_bus.json`` (one entry per source, the latest run of each)
and ``.md``. Target of issue 17: >= 200 items/s on 2 cores, 0 lost, 0 duplicated.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.bench.harness import (
    BenchSkipped,
    environment,
    markdown_table,
    results_dir,
    save_plot,
    shared_data_dir,
    write_results,
)

logger = logging.getLogger(__name__)

NAME = "finance_monitor_bus"
SOURCES = ("redis", "nats", "folder")
TARGET_ITEMS_PER_S = 200.0
PREVIOUS_KEYS = ("items", "items_per_s", "cpu_ms_per_item", "loadavg_1m")
SPACING = timedelta(seconds=10)
FILE_ITEMS = 1000  # items per JSON Lines file (folder)
NEWS_SOURCES = ("Wire A", "Wire B", "Wire C", "Wire D")
SERVERS = {"redis": "AIGC_BENCH_REDIS", "nats": "AIGC_BENCH_NATS"}
DEFAULT_SERVERS = {"redis": "127.0.0.1:6379", "nats": "127.0.0.1:4222"}


def headlines() -> list[str]:
    """Real financial headlines and tweets (TFNS sentiment and topic training texts), de-duplicated."""
    from core.io.tables import read_frame

    data = shared_data_dir() / "finance"
    texts: list[str] = []
    for path in (
        data / "twitter_financial_news_sentiment" / "sent_train.csv",
        data / "twitter_financial_news_topic" / "train.parquet",
    ):
        if not path.is_file():
            raise BenchSkipped(f"{path} not found")
        texts += [" ".join(str(t).split()) for t in read_frame(path)["text"]]
    return [t for t in dict.fromkeys(texts) if t]


def make_items(count: int, run_id: str, texts: list[str]) -> list[Any]:
    """``count`` items cycling over ``texts``, ids ``bench-<run>-<n>``, ten seconds apart, ending now."""
    from apps.finance_monitor.sources import NewsItem, extract_cashtags

    start = datetime.now(UTC).replace(microsecond=0) - SPACING * count
    items = []
    for n in range(count):
        title = texts[n % len(texts)]
        items.append(
            NewsItem(
                id=f"bench-{run_id}-{n:06d}",
                timestamp=start + SPACING * n,
                source=NEWS_SOURCES[n % len(NEWS_SOURCES)],
                title=title,
                tickers=tuple(extract_cashtags(title)),
            )
        )
    return items


def _bus_url(source: str, run_id: str) -> str:
    hostport = os.environ.get(SERVERS[source], DEFAULT_SERVERS[source])
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as err:
        raise BenchSkipped(
            f"{source} is not reachable at {hostport} ({err}); set {SERVERS[source]}"
        ) from None
    name = f"aigc-bench-{run_id}"
    return f"{source}://{hostport}/{name}"


def _model_dir() -> Path:
    from apps.finance_monitor.demo import ensure_model, models_dir
    from apps.finance_monitor.monitor import JOINT_MODEL
    from core.paths import data_dir

    model = models_dir(data_dir()) / JOINT_MODEL
    if ensure_model(model):
        logger.info("Trained the demo model for the benchmark", extra={"path": str(model)})
    return model


def _count(engine: Any, run_id: str, published: int) -> dict[str, int]:
    """Lost and duplicated, from the database, against the ids published."""
    from apps.finance_monitor.storage import Alert, Item, Score

    prefix = f"bench-{run_id}-%"
    with engine.connect() as conn:
        item_rows = conn.scalar(sa.select(sa.func.count()).select_from(Item).where(Item.id.like(prefix)))
        distinct_items = conn.scalar(
            sa.select(sa.func.count(sa.distinct(Item.id))).where(Item.id.like(prefix))
        )
        score_rows = conn.scalar(
            sa.select(sa.func.count()).select_from(Score).where(Score.item_id.like(prefix))
        )
        scored = conn.scalar(
            sa.select(sa.func.count(sa.distinct(Score.item_id))).where(Score.item_id.like(prefix))
        )
        alerts = conn.scalar(sa.select(sa.func.count()).select_from(Alert))
    return {
        "stored": int(distinct_items),
        "scored": int(scored),
        "lost": published - min(int(distinct_items), int(scored)),
        "duplicated": int(item_rows - distinct_items) + int(score_rows - scored),
        "alerts": int(alerts),
    }


def _scoring_rate(scorer: Any, texts: list[str], batch_size: int) -> float:
    sample = texts[:2000]
    scorer.label(sample[:64], batch_size)  # warm-up
    t0 = time.perf_counter()
    scorer.label(sample, batch_size)
    return len(sample) / (time.perf_counter() - t0)


def measure(
    source: str,
    items: int,
    work: Path,
    *,
    batch: int = 256,
    pipeline: bool = True,
    config: Any = None,
) -> dict[str, Any]:
    """Publish ``items`` to ``source`` and run the monitor until drained; returns the numbers.

    ``pipeline``: a bus batch is fetched and labelled while the one before commits (``bus.pipeline``).
    ``config``: the monitor's settings (default ``MonitorConfig()``: ``model_precision``,
    ``model_workers``, batch sizes).
    """
    import torch

    from apps.finance_monitor.config import BUS_GROUP, MonitorConfig
    from apps.finance_monitor.feed import consume_feed, publish_items
    from apps.finance_monitor.monitor import SAMPLE_RULES, build_monitor
    from apps.finance_monitor.sources import encode_message
    from core.batching import forward_workers
    from core.bus import BusSettings, open_source, remove
    from core.schema import migrate
    from core.storage import create_engine

    run_id = uuid.uuid4().hex[:8]
    texts = headlines()
    news = make_items(items, run_id, texts)
    engine = create_engine(f"sqlite:///{work / 'bench.db'}")
    migrate(engine)
    # The monitor `aigc finance monitor` builds from these settings (digests with alerts, entity
    # linking, dedup threshold, outbox), on the demo model and the shipped sample rules.
    config = replace(config or MonitorConfig(), sentiment_model=str(_model_dir()), rules=str(SAMPLE_RULES))
    workers = forward_workers(config.model_workers)
    monitor = build_monitor(engine, config, work)
    scorer = monitor.scorer
    settings = BusSettings(group=BUS_GROUP, consumer="bench", batch=batch, wait_s=0.5, pipeline=pipeline)
    load_before = os.getloadavg()[0]
    url = _bus_url(source, run_id) if source != "folder" else None
    stats: Any = None
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        if url is None:
            inbox = work / "inbox"
            inbox.mkdir()
            for start in range(0, items, FILE_ITEMS):
                lines = b"\n".join(encode_message(i) for i in news[start : start + FILE_ITEMS])
                (inbox / f"news-{start:07d}.jsonl").write_bytes(lines + b"\n")
            t_published = time.perf_counter()
            monitor.ingestor.min_age_s = 0
            monitor.cycle(inbox)  # one cycle takes every new file (a --follow cycle would too)
        else:
            assert publish_items(url, news) == items
            t_published = time.perf_counter()
            with open_source(url, settings) as bus:
                _, stats = consume_feed(monitor, bus, settings, drain=True)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        counts = _count(engine, run_id, items)
    finally:
        if url is not None:
            remove(url)
        engine.dispose()
    load_after = os.getloadavg()[0]
    return {
        "source": source,
        "items": items,
        "items_per_s": round(items / elapsed, 1),
        "lost": counts["lost"],
        "duplicated": counts["duplicated"],
        "alerts": counts["alerts"],
        "stored": counts["stored"],
        "scored": counts["scored"],
        "wall_s": round(elapsed, 1),
        "publish_s": round(t_published - t0, 2),
        "cpu_ms_per_item": round(1000 * cpu / items, 2),
        "torch_threads": torch.get_num_threads(),
        "model_workers": workers,
        "model_precision": config.model_precision,
        "model_dtype": "int8 (linear layers)"
        if config.model_precision == "int8"
        else str(next(scorer.sentiment_model.encoder.parameters()).dtype).removeprefix("torch."),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (spinning)"),
        "consume_items_per_s": round(items / (elapsed - (t_published - t0)), 1),
        "scoring_items_per_s": round(_scoring_rate(scorer, texts, monitor.model_batch_size), 1),
        "bus_batch": batch if url else None,
        "model_batch": monitor.model_batch_size,
        "pipeline": pipeline if url else None,
        "redelivered": stats.redelivered if stats else None,
        "dead_lettered": stats.dead_lettered if stats else None,
        "model": scorer.version,
        "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
    }


def run(
    reps: int = 1,
    quick: bool = False,
    out: str | Path | None = None,
    items: int | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Measure one source; keep the latest run of each source in the result file.

    Args:
        reps: Not used (one run is 20,000 items; the load average is recorded instead).
        quick: 2,000 items unless ``items`` is given.
        out: Result directory (default ``bench/results``).
        items: Items to publish (default 20,000).
        source: ``redis``, ``nats`` or ``folder`` (default ``redis``).
    """
    source = source or "redis"
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    items = items or (2000 if quick else 20000)
    with tempfile.TemporaryDirectory(prefix="aigc-bench-monitor-") as tmp:
        result = measure(source, items, Path(tmp))
    result["target_items_per_s"] = TARGET_ITEMS_PER_S
    result["met"] = (
        result["items_per_s"] >= TARGET_ITEMS_PER_S and not result["lost"] and not result["duplicated"]
    )
    result["env"] = environment()
    result["command"] = f"aigc bench monitor --items {items} --source {source}"
    path = results_dir(out) / f"{NAME}.json"
    runs = json.loads(path.read_text())["runs"] if path.is_file() else {}
    if source in runs:  # the run before, for the before/after columns
        old = runs[source]
        result["previous"] = {k: old.get(k) for k in PREVIOUS_KEYS}
        result["previous"]["measured_at"] = old["env"]["measured_at"]
    runs[source] = result
    write_results(NAME, {"bench": NAME, "runs": runs}, _markdown(runs), out)
    _plot(runs, out)
    logger.info(
        "Monitor throughput", extra={k: result[k] for k in ("source", "items_per_s", "lost", "duplicated")}
    )
    return result


def _load(run: dict[str, Any]) -> str:
    return "–".join(str(v) for v in run.get("loadavg_1m") or ()) or "?"


def _model(run: dict[str, Any]) -> str:
    if "model_workers" not in run:
        return f"? (1 × {run.get('torch_threads', '?')})"
    return f"{run['model_dtype']} ({run['model_workers']} × {run['torch_threads']})"


def _markdown(runs: dict[str, dict[str, Any]]) -> str:
    rows = []
    for r in (runs[s] for s in SOURCES if s in runs):
        before = r.get("previous") or {}
        rows.append(
            [
                r["source"],
                r["items"],
                r["items_per_s"],
                r.get("cpu_ms_per_item", "–"),
                _model(r),
                r["scoring_items_per_s"],
                r["lost"],
                r["duplicated"],
                r["alerts"],
                _load(r),
                (
                    f"{before['items_per_s']}, {before.get('cpu_ms_per_item') or '?'} ms "
                    f"({before['items']} items, load {_load(before)})"
                )
                if before
                else "–",
                r["env"]["measured_at"],
            ]
        )
    header = [
        "source", "items", "items/s (publish → evaluated)", "CPU ms per item",
        "model (passes at once × threads)", "model alone items/s", "lost", "duplicated", "alerts",
        "load avg (1 min)", "before: items/s, CPU ms", "measured",
    ]  # fmt: skip
    return "### aigc bench monitor\n\n" + markdown_table(header, rows)


def _plot(runs: dict[str, dict[str, Any]], out: str | Path | None) -> str:
    """Items/s per source (this run and the one before, with their load averages) beside the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [runs[s] for s in SOURCES if s in runs]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = range(len(shown))
    before = [(r.get("previous") or {}).get("items_per_s") or 0 for r in shown]
    after = [r["items_per_s"] for r in shown]
    ax.bar([i - 0.2 for i in x], before, 0.4, label="before", color="#bbbbbb")
    ax.bar([i + 0.2 for i in x], after, 0.4, label="latest", color="#3b75af")
    for i, r in enumerate(shown):
        ax.annotate(f"load {_load(r)}", (i + 0.2, after[i]), ha="center", va="bottom", fontsize=7)
        if before[i]:
            label = f"load {_load(r['previous'])}"
            ax.annotate(label, (i - 0.2, before[i]), ha="center", va="bottom", fontsize=7)
    ax.axhline(TARGET_ITEMS_PER_S, color="#c0392b", linestyle="--", linewidth=1, label="target (2 cores)")
    ax.set_xticks(list(x), [f"{r['source']} ({r['items']:,})" for r in shown])
    ax.set_ylabel("items/s, publish → evaluated")
    ax.set_title("aigc bench monitor (shared 2-core CPU; load average beside each bar)", fontsize=9)
    ax.legend(fontsize=7)
    return save_plot(fig, NAME, out)


if __name__ == "__main__":  # pragma: no cover - python -m bench.finance_monitor_bus [SOURCE] [ITEMS]
    import sys

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see core.cli)
    from core.bench.harness import pin_threads

    pin_threads()
    args = sys.argv[1:]
    print(run(source=args[0] if args else None, items=int(args[1]) if len(args) > 1 else None))
