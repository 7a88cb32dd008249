"""`aigc finance` commands: train, eval, classify, monitor, deliveries, ui.

Each command parses its options and calls a plain function (``sentiment.train``,
``sentiment.evaluate``, ``classify.classify_file``, ``monitor.Monitor``); errors in the input
print one line naming the file, row and field, and exit with status 2.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from core.console import console, print_error

logger = logging.getLogger(__name__)

T = TypeVar("T")

app = typer.Typer(
    help=(
        "Financial news sentiment and topic monitor: fine-tuned classifiers score incoming "
        "headlines, trends per topic, and alerts when negative news surges."
    ),
    no_args_is_help=True,
)

CONFIG_FILE = Path(__file__).resolve().parents[2] / "configs" / "finance_monitor.yaml"
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML with train: and monitor: sections.")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting, e.g. epochs=5 or lora.r=16.")
]


def _config_path(path: Path | None) -> Path | None:
    if path is not None:
        return path
    return CONFIG_FILE if CONFIG_FILE.is_file() else None


def _run(step: Callable[[], T]) -> T:
    """Run ``step``; known errors become one red line and exit status 2 (3 for the database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.storage import StorageError

    try:
        return step()
    except (StorageError, SQLAlchemyError) as err:
        print_error(err)
        raise typer.Exit(code=3) from None
    except (FileNotFoundError, ValueError, OSError) as err:
        print_error(err)
        raise typer.Exit(code=2) from None


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
) -> None:
    """Start only this app's Streamlit pages."""
    from core.cli import launch_ui

    raise typer.Exit(launch_ui(["finance"], port, address))


@app.command("train")
def train_cmd(
    task: Annotated[str, typer.Option("--task", help="sentiment or topic.")],
    data: Annotated[Path, typer.Option("--data", help="CSV/Parquet/JSONL (text,label) or PhraseBank file.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    label_map: Annotated[
        str | None,
        typer.Option(
            "--label-map", help="Numeric labels: '0=negative,1=positive', tfns, tfn-topic or a classes file."
        ),
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Fine-tune a sentiment or topic classifier (LoRA) and calibrate it on its validation split."""
    from apps.finance_monitor.sentiment import FinanceTrainConfig, train
    from core.config import load_config

    def step() -> dict[str, Any]:
        cfg = load_config(FinanceTrainConfig, _config_path(config), overrides or [], section="train")
        return train(task, data, out, label_map=label_map, config=cfg)

    report = _run(step)
    val = report.get("best_metric")
    shown = "n/a" if val is None else f"{val:.4f}"
    console.print(
        f"[green]trained[/] {task} model -> {out} (version {report['model_version']}, "
        f"validation {report['metric']} {shown}, {report['wall_time_s']:.0f}s)"
    )


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled file (same formats as train).")],
    label_map: Annotated[
        str | None, typer.Option("--label-map", help="Numeric label map (default: the model's).")
    ] = None,
    head: Annotated[str | None, typer.Option("--head", help="Head of a two-head model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Accuracy, macro/weighted F1, per-class scores and confusion matrix on a labelled file."""
    from apps.finance_monitor.sentiment import evaluate

    report = _run(
        lambda: evaluate(model, data, head=head, label_map=label_map, show_progress_bar=not as_json)
    )
    if as_json:
        typer.echo(
            json.dumps(
                {k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1", "per_class", "confusion")}
            )
        )
        return
    console.print(
        f"n={report['n']}  accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  "
        f"weighted F1 {report['weighted_f1']:.4f}"
    )


@app.command("classify")
def classify_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    input_path: Annotated[Path, typer.Option("--input", help="CSV/TSV/Parquet/JSONL/TXT of texts.")],
    out: Annotated[Path, typer.Option("--out", help="Output .csv, .jsonl or .parquet.")],
    text_column: Annotated[str | None, typer.Option("--text-column", help="Column of the texts.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
) -> None:
    """Label every row of a file (in batches, with a progress bar); the output is written atomically."""
    from apps.finance_monitor.classify import classify_file

    rows = _run(lambda: classify_file(model, input_path, out, text_column=text_column, batch_size=batch_size))
    console.print(f"[green]classified[/] {rows} rows -> {out}")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT / SIGTERM (the running cycle finishes), restoring the handlers after."""

    def handler(signum: int, _frame: Any) -> None:
        logger.info("Stopping after the current cycle", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@app.command("monitor")
def monitor_cmd(
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Watch the folder until Ctrl-C / SIGTERM.")
    ] = False,
    watch_dir: Annotated[Path | None, typer.Option("--watch-dir", help="Folder of news files.")] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Also ingest this file (--once).")
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Ingest -> score -> aggregate -> alert: once, or following the watched folder."""
    from apps.finance_monitor.monitor import MonitorConfig, build_monitor
    from apps.finance_monitor.monitor import watch_dir as resolve_watch_dir
    from apps.finance_monitor.outbox import delivery_counts
    from core.config import load_config
    from core.paths import data_dir
    from core.schema import migrate
    from core.storage import create_engine

    if once == follow:
        print_error("give exactly one of --once and --follow")
        raise typer.Exit(code=2)

    def setup():
        cfg = load_config(MonitorConfig, _config_path(config), overrides or [], section="monitor")
        engine = create_engine()
        folder = watch_dir or resolve_watch_dir(cfg, data_dir())
        # Models, rules and the webhook are checked before the database is touched: bad settings
        # leave nothing behind (not even a new schema).
        built = build_monitor(engine, cfg, data_dir())
        migrate(engine)
        return cfg, built, folder

    cfg, monitor, folder = _run(setup)
    console.print(f"monitoring {folder} with model {monitor.scorer.version}")
    if once:
        result = _run(lambda: monitor.cycle(folder, files or []))
        console.print(
            f"{result.new_items} new items, {result.scored} scored, {len(result.alerts)} new alerts"
        )
        sent = _run(monitor.deliver)
        counts = _run(lambda: delivery_counts(monitor.engine))
        console.print(
            f"deliveries: {len(sent.sent)} sent, {counts['pending']} pending, {counts['dead']} dead"
            + (" (see `aigc finance deliveries`)" if counts["pending"] or counts["dead"] else "")
        )
        for error in result.errors:
            print_error(error)
        if result.errors:
            raise typer.Exit(code=2)
        return
    stop = threading.Event()

    def report(result: Any) -> None:
        if result.new_items or result.scored or result.alerts:
            console.print(
                f"{result.new_items} new items, {result.scored} scored, {len(result.alerts)} new alerts"
            )

    with _stop_on_signals(stop):
        cycles = _run(lambda: monitor.follow(folder, stop, cfg.poll_interval_s, cfg.max_db_failures, report))
    console.print(f"stopped cleanly after {cycles} cycles")


@app.command("deliveries")
def deliveries_cmd(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="pending, delivered or dead (repeatable); default pending and dead."),
    ] = None,
    retry_ids: Annotated[
        list[int] | None, typer.Option("--retry", help="Send this dead or waiting delivery again.")
    ] = None,
    retry_dead: Annotated[bool, typer.Option("--retry-dead", help="Send every dead delivery again.")] = False,
    limit: Annotated[int, typer.Option(help="Most rows listed.")] = 50,
) -> None:
    """The alert outbox: deliveries waiting for a retry and dead letters; requeue them.

    Requeued deliveries are sent by the next `aigc finance monitor` pass (or at once by a running
    `--follow`). Targets are shown masked.
    """
    from apps.finance_monitor.outbox import delivery_counts, list_deliveries, retry
    from core.schema import migrate
    from core.storage import create_engine

    engine = _run(create_engine)
    _run(lambda: migrate(engine))
    if retry_ids or retry_dead:
        count = _run(lambda: retry(engine, retry_ids or [], all_dead=retry_dead))
        console.print(f"requeued {count} deliveries")
    rows = _run(lambda: list_deliveries(engine, status or ["pending", "dead"], limit=limit))
    counts = _run(lambda: delivery_counts(engine))
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    for d in rows:
        when = "" if d.status != "pending" else f", next {d.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        console.print(
            f"#{d.id} alert {d.alert_id} -> {d.sink} ({d.target}): {d.status}, {d.attempts} attempts{when}"
            + (f"; last error: {d.last_error}" if d.last_error else ""),
            markup=False,
            highlight=False,
        )
