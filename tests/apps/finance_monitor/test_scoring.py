"""Scoring stored items: batches, model version, history kept when a new version re-scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from apps.finance_monitor.classifiers import load_model
from apps.finance_monitor.scoring import Scorer, score_pending
from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import Score, scored_frame, store_items
from core.storage import session_scope
from tests.apps.finance_monitor.model_fixtures import copy_model

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
TITLES = [
    "Northwind Energy shares plunge after refinery blast",
    "Qortex Systems beats profit forecasts",
    "Central bank holds rates steady",
    "Glenmoor Steel to acquire Redwater Utilities",
    "Regulator fines Harbor Bank over reporting lapses",
]


def add_items(engine, n: int = 5) -> list[str]:
    items = [
        NewsItem(f"it-{i}", T0 + timedelta(minutes=i), "Wirewatch", TITLES[i % len(TITLES)] + f" ({i})")
        for i in range(n)
    ]
    with session_scope(engine) as session:
        return store_items(session, items)


def test_scores_every_item_once_in_batches(db, tiny_sentiment_dir, tiny_topic_dir):
    ids = add_items(db, 7)
    scorer = Scorer.from_dirs(tiny_sentiment_dir, tiny_topic_dir)
    assert "+" in scorer.version
    assert sorted(score_pending(db, scorer, batch_size=3)) == sorted(ids)
    assert score_pending(db, scorer, batch_size=3) == []  # nothing left for this version
    with session_scope(db) as session:
        frame = scored_frame(session)
        rows = session.scalars(sa.select(Score)).all()
    assert len(frame) == 7 and set(frame["sentiment"]) <= {"negative", "neutral", "positive"}
    assert frame["topic"].notna().all() and frame["sentiment_confidence"].between(1 / 3, 1).all()
    probs = rows[0].probabilities
    assert set(probs) == {"sentiment", "topic"} and sum(probs["sentiment"].values()) == pytest.approx(
        1, abs=1e-3
    )
    assert rows[0].sentiment == max(probs["sentiment"], key=probs["sentiment"].get)


def test_new_model_version_keeps_history(sqlite_db, tiny_sentiment_dir, tmp_path):
    add_items(sqlite_db, 4)
    old = Scorer.from_dirs(tiny_sentiment_dir)
    score_pending(sqlite_db, old)
    newer_dir = copy_model(tiny_sentiment_dir, tmp_path / "sentiment-v2")
    model = load_model(newer_dir)
    model.temperatures["sentiment"] = 2.5  # recalibrated: a new version
    model.save_pretrained(newer_dir)
    new = Scorer.from_dirs(newer_dir)
    assert new.version != old.version
    assert len(score_pending(sqlite_db, new)) == 4
    with session_scope(sqlite_db) as session:
        versions = session.execute(
            sa.select(Score.model_version, sa.func.count()).group_by(Score.model_version)
        )
        counts = dict(versions.all())
        latest = scored_frame(session)
        old_frame = scored_frame(session, model_version=old.version)
    assert counts == {old.version: 4, new.version: 4}
    assert set(latest["model_version"]) == {new.version} and len(old_frame) == 4


def test_limit_and_topicless_scorer(sqlite_db, tiny_sentiment_dir):
    add_items(sqlite_db, 5)
    scorer = Scorer.from_dirs(tiny_sentiment_dir)
    assert len(score_pending(sqlite_db, scorer, limit=2)) == 2
    with session_scope(sqlite_db) as session:
        frame = scored_frame(session)
    assert len(frame) == 2 and frame["topic"].isna().all()


def test_sentiment_model_with_other_labels_is_refused(tiny_topic_dir):
    with pytest.raises(ValueError, match="negative"):
        Scorer.from_dirs(tiny_topic_dir)


def test_parallel_passes_and_int8_scorers(tiny_sentiment_dir, tiny_topic_dir):
    exact = Scorer.from_dirs(tiny_sentiment_dir, tiny_topic_dir, precision="fp32")
    parallel = Scorer.from_dirs(tiny_sentiment_dir, tiny_topic_dir, precision="fp32", workers=2)
    assert parallel.sentiment_model.inference_workers == parallel.topic_model.inference_workers == 2
    assert parallel.version == exact.version
    titles = [f"{t} ({i})" for i in range(7) for t in TITLES]
    assert [vars(x) for x in parallel.label(titles, 4)] == [vars(x) for x in exact.label(titles, 4)]
    small = Scorer.from_dirs(tiny_sentiment_dir, precision="int8")
    assert small.version == Scorer.from_dirs(tiny_sentiment_dir).version  # same model, other arithmetic
    assert {x.sentiment for x in small.label(TITLES)} <= {"negative", "neutral", "positive"}
    with pytest.raises(ValueError, match="workers"):
        exact.set_workers(0)
