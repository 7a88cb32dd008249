"""The demo preparer: idempotent, reuses trained models, runs the monitor over the sample stream."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
import torch

from apps.finance_monitor.demo import models_dir, prepare
from apps.finance_monitor.storage import Alert, AlertDigest, Delivery, Item, Score
from core.storage import create_engine, session_scope


def table_counts(data_dir):
    engine = create_engine(f"sqlite:///{data_dir / 'aigc.db'}")
    try:
        with session_scope(engine) as session:
            return tuple(
                session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Item, Score, Alert)
            )
    finally:
        engine.dispose()


def test_prepare_reuses_the_model_and_is_idempotent(tmp_path, tiny_joint_dir):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_joint_dir, models_dir(data_dir) / "news")
    stamp = (models_dir(data_dir) / "news" / "config.json").stat().st_mtime_ns
    prepare(data_dir)
    first = table_counts(data_dir)
    assert first[0] == 506 and first[1] == 506
    prepare(data_dir)
    assert table_counts(data_dir) == first
    assert (models_dir(data_dir) / "news" / "config.json").stat().st_mtime_ns == stamp  # not retrained


def test_monitor_defaults_to_the_demo_model(tmp_path, tiny_joint_dir):
    from apps.finance_monitor.config import MonitorConfig
    from apps.finance_monitor.monitor import build_monitor

    shutil.copytree(tiny_joint_dir, models_dir(tmp_path) / "news")
    engine = create_engine(f"sqlite:///{tmp_path / 'aigc.db'}")
    threads = torch.get_num_threads()
    try:
        monitor = build_monitor(engine, MonitorConfig(model_workers=2), tmp_path)
        # two passes at once, one torch thread each (build_monitor builds the process's monitor)
        assert monitor.scorer.sentiment_model.inference_workers == 2 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
        engine.dispose()
    assert monitor.scorer.topic_model is None and monitor.scorer.topic_head == "topic"
    assert monitor.scorer.version.startswith("news-")


@pytest.mark.slow
def test_prepare_trains_real_models_and_raises_the_energy_alert(tmp_path):
    """MiniLM trained on the shipped files (minutes on 2 cores), then the sample stream."""
    prepare(tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'aigc.db'}")
    with session_scope(engine) as session:
        alerts = list(session.scalars(sa.select(Alert)))
        keys = {a.key for a in alerts}
        digests = {d.alert_id for d in session.scalars(sa.select(AlertDigest))}
        statuses = {d.status for d in session.scalars(sa.select(Delivery))}
    engine.dispose()
    assert "Energy | Oil" in keys
    # as `aigc finance monitor` with defaults: every alert has its digest; the log channel delivered
    assert digests == {a.id for a in alerts}
    assert statuses == {"delivered"}
