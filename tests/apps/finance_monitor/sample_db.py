"""A finance database filled from the shipped sample stream, labelled with its ground truth.

The dashboard tests need scored items and alerts without waiting for a trained model: the
items go through the real ingestion (dedup included), the labels are the ones each headline was
written with (``news_truth.csv``, confidence 1.0, model version ``truth``), and the shipped alert
rules raise the two surge alerts (see the sample data README).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from sqlalchemy.engine import Engine

from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.ingest import Ingestor
from apps.finance_monitor.rules import load_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
from apps.finance_monitor.storage import ScoreRow, scored_frame, store_scores
from core.schema import migrate
from core.storage import create_engine, session_scope

TRUTH_VERSION = "truth"


def truth_labels() -> dict[str, dict[str, str]]:
    """``item id -> {"topic", "sentiment", "story_id"}`` from ``news_truth.csv``."""
    with (SAMPLE_DATA_DIR / "news_truth.csv").open(newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def fill_sample_db(engine: Engine, *, raise_alerts: bool = True) -> int:
    """Ingest the sample stream into ``engine`` (migrated), score it with the truth, raise alerts.

    Returns:
        The number of alerts raised (0 when ``raise_alerts`` is off).
    """
    ingestor = Ingestor(engine)
    for name in STREAM_FILES:
        ingestor.ingest_file(SAMPLE_DATA_DIR / name)
    truth = truth_labels()
    rows = [
        ScoreRow(item_id, TRUTH_VERSION, row["sentiment"], 1.0, row["topic"], 1.0)
        for item_id, row in truth.items()
    ]
    with session_scope(engine) as session:
        store_scores(session, rows)
    return raise_sample_alerts(engine) if raise_alerts else 0


def raise_sample_alerts(engine: Engine) -> int:
    """Apply the shipped alert rules to everything scored in ``engine``; the number of new alerts."""
    with session_scope(engine) as session:
        frame = scored_frame(session)
    alert_engine = AlertEngine(engine, load_rules(SAMPLE_DATA_DIR / "alert_rules.yaml"))
    return len(alert_engine.evaluate(frame))


def build_sample_db(path: Path, *, raise_alerts: bool = True) -> Path:
    """Create a migrated SQLite file at ``path`` filled by :func:`fill_sample_db`; return ``path``."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        fill_sample_db(engine, raise_alerts=raise_alerts)
    finally:
        engine.dispose()  # the last connection checkpoints the WAL, so the file alone is complete
    return path


def copy_db(template: Path, data_dir: Path) -> Path:
    """Copy a template database to ``data_dir / "aigc.db"`` (the default URL of that data dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "aigc.db"
    shutil.copyfile(template, target)
    return target


def rescore_energy_as_neutral(engine: Engine, version: str = "v2") -> int:
    """Score every ``Energy | Oil`` item again as neutral under ``version`` (a second model's opinion).

    Returns:
        The number of items re-scored.
    """
    truth = truth_labels()
    rows = [
        ScoreRow(item_id, version, "neutral", 0.6, row["topic"], 0.9)
        for item_id, row in truth.items()
        if row["topic"] == "Energy | Oil"
    ]
    with session_scope(engine) as session:
        store_scores(session, rows)
    return len(rows)
