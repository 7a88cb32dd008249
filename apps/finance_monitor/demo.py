"""Demo state of the finance monitor: small models trained on the shipped files, the sample stream scored.

``aigc prepare-demo`` calls :func:`prepare`. It is idempotent: models already trained (a loadable
directory) are kept, ingestion skips files it has seen, scoring skips items scored by the same
model version, and alerts are de-duplicated, so running it again changes nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from apps.finance_monitor.classifiers import load_model, train_multitask
from apps.finance_monitor.config import FinanceTrainConfig, MonitorConfig
from apps.finance_monitor.datasets import load_labelled
from apps.finance_monitor.digests import Digester
from apps.finance_monitor.entities import EntityLinker
from apps.finance_monitor.monitor import JOINT_MODEL, SAMPLE_RULES, Monitor
from apps.finance_monitor.rules import load_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, SAMPLE_WATCHLIST, STREAM_FILES
from apps.finance_monitor.scoring import Scorer
from apps.finance_monitor.sinks import LogSink
from apps.finance_monitor.watchlist import load_watchlist
from core.schema import migrate
from core.storage import DB_URL_ENV, create_engine

logger = logging.getLogger(__name__)

TRAIN_FILES = {"sentiment": "train_sentiment.csv", "topic": "train_topic.csv"}
# Small and quick: the shipped training files have 360 and 300 rows.
DEMO_TRAINING = FinanceTrainConfig(epochs=4, batch_size=16, max_length=64, show_progress_bar=False)


def models_dir(data_dir: Path) -> Path:
    """Where the demo model lives: ``data_dir/finance/models/news`` (one encoder, two heads)."""
    return Path(data_dir) / "finance" / "models"


def ensure_model(out_dir: Path, config: FinanceTrainConfig = DEMO_TRAINING) -> bool:
    """Train the demo's two-head model (sentiment and topic) into ``out_dir`` unless a loadable one is there.

    One encoder with two heads beat two separate models on the sample stream in accuracy and in
    scoring speed (``bench/finance_heads.py``, docs/benchmarks/finance.md), so the demo trains one.

    Returns:
        Whether a model was trained.
    """
    if (out_dir / "config.json").is_file():
        try:
            load_model(out_dir)
            return False
        except (OSError, ValueError) as err:
            logger.warning("Demo model unusable; retraining", extra={"path": str(out_dir), "error": str(err)})
    data = {task: load_labelled(SAMPLE_DATA_DIR / name) for task, name in TRAIN_FILES.items()}
    train_multitask(data, out_dir, config=config)
    return True


def prepare(data_dir: Path) -> None:
    """Train the demo model (if needed) and run the monitor once over the sample stream.

    Args:
        data_dir: The suite's data directory; the database is ``AIGC_DB_URL`` or
            ``data_dir/aigc.db``.
    """
    data_dir = Path(data_dir)
    model_dir = models_dir(data_dir) / JOINT_MODEL
    ensure_model(model_dir)
    url = os.environ.get(DB_URL_ENV) or f"sqlite:///{data_dir / 'aigc.db'}"
    engine = create_engine(url)
    try:
        migrate(engine)
        # The sample watch list links headlines that name a company without its cashtag.
        linker = EntityLinker(load_watchlist(SAMPLE_WATCHLIST))
        rules = load_rules(SAMPLE_RULES)
        # As `aigc finance monitor` with the default settings: every alert gets its digest, and the
        # log channel's deliveries are sent (one outbox pass), so the dashboard shows both.
        digester = Digester(MonitorConfig().digest)
        monitor = Monitor(
            engine, Scorer.from_dirs(model_dir), rules, [LogSink()], linker=linker, digester=digester
        )
        result = monitor.cycle(files=[SAMPLE_DATA_DIR / name for name in STREAM_FILES])
        sent = monitor.deliver()
        logger.info(
            "Finance demo ready",
            extra={
                "new_items": result.new_items,
                "scored": result.scored,
                "alerts": len(result.alerts),
                "delivered": len(sent.sent),
            },
        )
    finally:
        engine.dispose()
