"""Entity links in the database: written with the scores, re-linked after a watch-list change,
aggregated per entity, and watched by `entity:` alert rules on the sample stream."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from apps.finance_monitor.aggregate import aggregate
from apps.finance_monitor.classifiers import load_model
from apps.finance_monitor.entities import EntityLinker, relink
from apps.finance_monitor.monitor import Monitor
from apps.finance_monitor.rules import load_rules, resolve_entity_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, SAMPLE_WATCHLIST, STREAM_FILES
from apps.finance_monitor.scoring import score_pending
from apps.finance_monitor.storage import (
    Alert,
    EntityLink,
    Item,
    LinkedItem,
    Score,
    entities_for_items,
    scored_frame,
)
from apps.finance_monitor.watchlist import WatchList, load_watchlist
from core.storage import session_scope
from tests.apps.finance_monitor.model_fixtures import TruthScorer
from tests.apps.finance_monitor.sample_db import fill_sample_db
from tests.apps.finance_monitor.test_monitor import NOW

ENTITY_RULES = """\
defaults:
  window: hour
  baseline_buckets: 72
  min_baseline_buckets: 6
  cooldown: 6h
rules:
  - name: northwind-negative
    entity: NWDE
    threshold: 0.8
    min_volume: 4
  - name: watchlist-negative
    entity: watchlist
    threshold: 0.8
    min_volume: 4
"""


def sample_linker() -> EntityLinker:
    return EntityLinker(load_watchlist(SAMPLE_WATCHLIST))


def link_rows(engine) -> list[tuple]:
    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(EntityLink.item_id, EntityLink.entity, EntityLink.position, EntityLink.method)
        ).all()
    return sorted(tuple(r) for r in rows)


def test_relink_is_idempotent_and_follows_the_watch_list(db):
    fill_sample_db(db, raise_alerts=False)
    linker = sample_linker()
    first = relink(db, linker, batch_size=100)
    assert first.items == 506 and first.changed > 200  # names link many items without a cashtag
    snapshot = link_rows(db)
    assert relink(db, linker).items == 0  # nothing left to link
    again = relink(db, linker, every=True)
    assert again.items == 506 and again.changed == 0 and link_rows(db) == snapshot

    smaller = WatchList([c for c in linker.watchlist if c.ticker != "NWDE"], source="smaller")
    changed = relink(db, EntityLinker(smaller))
    assert changed.items == 506 and changed.changed > 0
    with session_scope(db) as session:
        entities = {e for (e,) in session.execute(sa.select(EntityLink.entity).distinct())}
        versions = set(session.scalars(sa.select(LinkedItem.linker_version).distinct()))
    assert "NWDE" not in entities and "QRTX" in entities  # $NWDE is not on the new list either
    assert versions == {EntityLinker(smaller).version}


def test_entities_fall_back_to_the_tickers_until_linked(sqlite_db):
    fill_sample_db(sqlite_db, raise_alerts=False)
    with session_scope(sqlite_db) as session:
        frame = scored_frame(session).set_index("item_id")
    named_only = frame[(frame["tickers"].map(len) == 0) & frame["title"].str.contains("Northwind")]
    item_id = named_only.index[0]
    assert frame.loc[item_id, "entities"] == []  # never linked: its (empty) tickers
    relink(sqlite_db, sample_linker())
    with session_scope(sqlite_db) as session:
        assert scored_frame(session).set_index("item_id").loc[item_id, "entities"] == ["NWDE"]
        got = entities_for_items(session, [item_id, "no-such-item"])
    assert got == {item_id: ["NWDE"]}


def test_entity_aggregates_per_day_and_hour(sqlite_db):
    fill_sample_db(sqlite_db, raise_alerts=False)
    relink(sqlite_db, sample_linker())
    with session_scope(sqlite_db) as session:
        frame = scored_frame(session)
    daily = aggregate(frame, by="entity", bucket="day").set_index(["key", "bucket_start"])
    assert set(daily.index.get_level_values("key")) == set(load_watchlist(SAMPLE_WATCHLIST).tickers)
    assert daily["volume"].groupby("key").sum()["NWDE"] == 40  # stories: copies count once
    blast = daily.loc[("NWDE", pd.Timestamp("2026-03-05", tz="UTC"))]
    assert blast["share_negative"] > 0.8 and blast["mean_sentiment"] < -0.5
    hourly = aggregate(frame, by="entity", bucket="hour")
    peak = hourly[hourly["key"] == "NWDE"].sort_values("negative").iloc[-1]
    assert peak["bucket_start"].day == 5 and 13 <= peak["bucket_start"].hour <= 15


def test_entity_rules_fire_on_the_sample_stream_with_links_in_the_scores_transaction(
    db, tiny_sentiment_dir, tmp_path
):
    path = tmp_path / "rules.yaml"
    path.write_text(ENTITY_RULES, encoding="utf-8")
    linker = sample_linker()
    rules = resolve_entity_rules(load_rules(path), linker.watchlist)
    scorer = TruthScorer(load_model(tiny_sentiment_dir))
    monitor = Monitor(db, scorer, rules, clock=lambda: NOW, linker=linker)
    result = monitor.cycle(files=[SAMPLE_DATA_DIR / name for name in STREAM_FILES])
    assert result.scored == 506
    with session_scope(db) as session:
        alerts = {
            (a.rule, a.scope, a.key, a.window_start.hour, a.window_end.hour)
            for a in session.scalars(sa.select(Alert))
        }
        linked = session.scalar(sa.select(sa.func.count()).select_from(LinkedItem))
    # With names linked, the Northwind incident starts at 13:00 (cashtags alone: 15:00).
    assert alerts == {
        ("northwind-negative", "entity", "NWDE", 13, 16),
        ("watchlist-negative", "entity", "NWDE", 13, 16),
    }
    assert linked == 506


class FailingLinker(EntityLinker):
    """Fails on the second batch, as a crash between scoring and linking would."""

    def __init__(self, watchlist: WatchList) -> None:
        super().__init__(watchlist)
        self.calls = 0

    def link_item(self, title, body=None, tickers=()):
        self.calls += 1
        if self.calls > 10:
            raise RuntimeError("linker crashed")
        return super().link_item(title, body, tickers)


def test_a_failure_while_linking_rolls_back_that_batch_of_scores(sqlite_db, tiny_sentiment_dir):
    fill_sample_db(sqlite_db, raise_alerts=False)
    scorer = TruthScorer(load_model(tiny_sentiment_dir), version="truth-v2")
    with pytest.raises(RuntimeError, match="linker crashed"):
        score_pending(
            sqlite_db, scorer, batch_size=10, linker=FailingLinker(load_watchlist(SAMPLE_WATCHLIST))
        )
    with session_scope(sqlite_db) as session:
        scored = set(session.scalars(sa.select(Score.item_id).where(Score.model_version == "truth-v2")))
        linked = set(session.scalars(sa.select(LinkedItem.item_id)))
        items = session.scalar(sa.select(sa.func.count()).select_from(Item))
    assert len(scored) == 10 and scored == linked  # the first batch, scores and links together
    assert score_pending(sqlite_db, scorer, batch_size=100, linker=sample_linker())
    with session_scope(sqlite_db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(LinkedItem)) == items


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("  - name: r\n    entity: AAPL\n    keys: [AAPL]\n", "give 'entity' or 'keys', not both"),
        ("  - name: r\n    scope: topic\n    entity: AAPL\n", "entity: only for scope 'entity'"),
        ("  - name: r\n    entity: [watchlist, AAPL]\n", "'watchlist' stands alone"),
        ("  - name: r\n    entity: []\n", "expected a ticker"),
    ],
)
def test_entity_rule_errors(tmp_path, rule, message):
    path = tmp_path / "rules.yaml"
    path.write_text("defaults:\n  threshold: 0.5\nrules:\n" + rule, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_rules(path)


def test_entity_rules_resolve_against_the_watch_list(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: two\n    entity: [nwde, $qrtx]\n    threshold: 0.5\n"
        "  - name: all\n    entity: watchlist\n    threshold: 0.5\n",
        encoding="utf-8",
    )
    two, every = load_rules(path)
    assert (two.scope, two.entity, two.watched_keys()) == ("entity", ("NWDE", "QRTX"), ("NWDE", "QRTX"))
    with pytest.raises(ValueError, match="needs a watch list"):
        resolve_entity_rules([two, every], None)
    watchlist = load_watchlist(SAMPLE_WATCHLIST)
    _, resolved = resolve_entity_rules([two, every], watchlist)
    assert resolved.watched_keys() == tuple(watchlist.tickers)
    bad = WatchList([c for c in watchlist if c.ticker != "QRTX"], source="short.csv")
    with pytest.raises(ValueError, match=r"entity \['QRTX'\] not on the watch list short.csv"):
        resolve_entity_rules([two], bad)
