"""The Entities page in Streamlit's AppTest, on the sample stream linked to the sample watch list."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from apps.finance_monitor.entities import EntityLinker, relink
from apps.finance_monitor.sample_data import SAMPLE_WATCHLIST
from apps.finance_monitor.watchlist import load_watchlist
from core.storage import create_engine
from tests.apps.finance_monitor.sample_db import build_sample_db, copy_db
from tests.apps.finance_monitor.test_ui import chart_data, open_page


@pytest.fixture(scope="module")
def linked_template(tmp_path_factory) -> Path:
    path = build_sample_db(tmp_path_factory.mktemp("finance-entities") / "sample.db")
    engine = create_engine(f"sqlite:///{path}")
    relink(engine, EntityLinker(load_watchlist(SAMPLE_WATCHLIST)))
    engine.dispose()
    return path


@pytest.fixture
def linked_db(linked_template, monkeypatch) -> Path:
    monkeypatch.setenv("AIGC_UI_APPS", "finance")
    return copy_db(linked_template, Path(os.environ["AIGC_DATA_DIR"]))


def test_entities_page_table_trend_and_drilldown(linked_db):
    at = open_page("entities.py")
    assert at.title[0].value == "Entities"
    table = at.dataframe[0].value.set_index("entity")
    assert set(table.index) == {
        "NWDE",
        "BRWP",
        "SBCG",
        "QRTX",
        "ALTN",
        "VRDA",
        "LKSB",
        "CBRM",
        "MRDN",
        "HLMO",
        "PNFD",
    }
    nwde = table.loc["NWDE"]
    assert nwde["name"] == "Northwind Energy plc" and nwde["stories"] == 40 and nwde["negative"] == 27
    assert nwde["net_sentiment"] == pytest.approx((4 - 27) / 40)
    assert nwde["share_negative"] == pytest.approx(100 * 27 / 40)  # a whole-percent bar, "68%"
    bars = chart_data(at, 0)[-1]  # stories per entity, stacked by sentiment
    assert bars.groupby(bars.columns[0])[bars.columns[-1]].sum()["NWDE"] == 40

    at.selectbox(key="entities_chosen").set_value("NWDE").run()
    assert not at.exception
    assert at.query_params["entity"] in ("NWDE", ["NWDE"])
    assert at.subheader[1].value == "NWDE: mean sentiment per day"
    windows, lines = chart_data(at, 1)
    assert list(windows["key"]) == ["NWDE"]  # the sample's ticker alert, shaded
    daily = lines.set_index("bucket_start")["value"]
    assert daily.idxmin() == pd.Timestamp("2026-03-05", tz="UTC") and daily.min() < -0.5  # the blast
    (volume,) = chart_data(at, 2)
    assert volume["value"].sum() == 40
    items = at.dataframe[1].value
    assert len(items) == 40 and all("NWDE" in list(e) for e in items["entities"])
    assert items["timestamp"].is_monotonic_decreasing


def test_entity_from_the_url_and_daily_hourly_buckets(linked_db):
    at = open_page("entities.py", {"entity": "VRDA"})
    assert at.selectbox(key="entities_chosen").value == "VRDA"
    at.sidebar.radio(key="entities_bucket").set_value("Hour").run()
    assert not at.exception and at.subheader[1].value == "VRDA: mean sentiment per hour"
    (lines,) = chart_data(at, 1)  # no alert on VRDA: no shaded layer
    assert lines["bucket_start"].diff().dropna().min() == pd.Timedelta(hours=1)
