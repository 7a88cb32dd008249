"""The finance dashboard pages in Streamlit's AppTest, inside the suite's navigation, on the sample stream."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from apps.finance_monitor.ui import PAGES, PAGES_DIR, pages, queries
from core.schema import migrate
from core.storage import create_engine
from core.ui.shell import APP_SCRIPT
from tests.apps.finance_monitor.sample_db import build_sample_db, copy_db, rescore_energy_as_neutral

PAGE_FILES = [name for name, _title, _icon in PAGES]


@pytest.fixture(scope="module")
def sample_template(tmp_path_factory) -> Path:
    return build_sample_db(tmp_path_factory.mktemp("finance-ui") / "sample.db")


@pytest.fixture
def finance_only(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "finance")


@pytest.fixture
def sample_db(sample_template, finance_only) -> Path:
    """The sample database as this test's default database (``AIGC_DATA_DIR/aigc.db``)."""
    return copy_db(sample_template, Path(os.environ["AIGC_DATA_DIR"]))


def open_page(name: str, query: dict[str, str] | None = None) -> AppTest:
    """Run the suite entry script, then switch to one of this app's pages."""
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60)
    at.query_params.update(query or {})
    at.run()
    at.switch_page(os.path.relpath(PAGES_DIR / name, Path(APP_SCRIPT).parent)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_data(at: AppTest, index: int = 0) -> list[pd.DataFrame]:
    """The data sets of the ``index``-th Altair chart on the page."""
    chart = at.get("vega_lite_chart")[index]
    return [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]


def engine_for_test():
    return create_engine(f"sqlite:///{Path(os.environ['AIGC_DATA_DIR']) / 'aigc.db'}")


def test_pages_are_listed_for_the_suite():
    app = pages()
    assert app.name == "finance"
    assert [title for _path, title, _icon in app.pages] == [
        "Sentiment trend",
        "Topic breakdown",
        "Entities",
        "News items",
        "Alerts",
    ]
    assert all(Path(path).is_file() for path, _title, _icon in app.pages)


@pytest.mark.parametrize("name", PAGE_FILES)
def test_pages_explain_what_to_run_on_an_empty_database(name, finance_only):
    at = open_page(name)
    assert "aigc db upgrade" in at.info[0].value
    engine = engine_for_test()
    migrate(engine)
    engine.dispose()
    at = open_page(name)
    assert "No scored news yet" in at.info[0].value


def test_trend_page_shows_the_surge_and_its_alert(sample_db):
    at = open_page("overview.py")
    assert at.title[0].value == "Sentiment trend"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Stories"] == "377"  # 506 items, syndicated copies counted once
    assert metrics["Open alerts"] == "2"
    assert at.warning[0].value == "2 open alert(s)"
    assert at.get("page_link")[0].proto.page == "finance-alerts"
    topics = at.multiselect[0]
    assert topics.label == "Topics" and "Energy | Oil" in topics.value and len(topics.value) == 6
    # auto buckets: 6 hours here, the finest with ~10 stories a point (3 pooled) for the median topic
    assert at.caption[1].value == "Bucket: 6 hours (auto; about 10 stories per point for the median topic)"
    windows, lines = chart_data(at, 0)
    assert list(windows["key"]) == ["Energy | Oil"]
    surge = lines[(lines["key"] == "Energy | Oil")].set_index("bucket_start")["value"]
    others = lines.loc[lines["key"] != "Energy | Oil", "value"]
    assert surge.loc[pd.Timestamp("2026-03-05 12:00", tz="UTC")] > 0.8 and surge.max() > others.max()
    assert (lines["bucket_start"].dt.hour % 6 == 0).all()
    (volume,) = chart_data(at, 1)
    assert volume["value"].sum() == 377

    at.sidebar.selectbox(key="trend_bucket").set_value("Hour").run()
    assert not any(c.value.startswith("Bucket:") for c in at.caption)  # a chosen bucket needs no note
    _windows, lines = chart_data(at, 0)
    surge = lines[(lines["key"] == "Energy | Oil")].set_index("bucket_start")["value"]
    assert surge.loc[pd.Timestamp("2026-03-05 15:00", tz="UTC")] > 0.8
    assert surge.max() > lines.loc[lines["key"] != "Energy | Oil", "value"].quantile(0.9)

    at.multiselect[0].set_value(["Earnings"]).run()
    (lines,) = chart_data(at, 0)  # no alert on Earnings: nothing shaded
    assert set(lines["key"]) == {"Earnings"}

    at.sidebar.radio(key="trend_scope").set_value("Ticker").run()
    assert not at.exception
    tickers = at.multiselect[0]
    assert tickers.label == "Tickers" and tickers.value[0] == "NWDE"
    assert at.metric[0].label == "Ticker mentions"  # an item naming two tickers counts for both
    windows, _lines = chart_data(at, 0)
    assert list(windows["key"]) == ["NWDE"]


def test_trend_page_metrics_and_ranges(sample_db):
    at = open_page("overview.py")
    at.sidebar.selectbox(key="trend_metric").set_value("mean_sentiment").run()
    at.sidebar.selectbox(key="finance_range").set_value("Last 24 hours").run()
    assert not at.exception
    assert at.subheader[0].value == queries.TREND_METRICS["mean_sentiment"]
    assert at.caption[0].value.startswith("2026-03-05 21:00 – 2026-03-06 21:00 UTC")
    (lines,) = chart_data(at, 0)  # the surge is before this range: no alert window
    assert lines["value"].between(-1, 1).all()
    assert lines["bucket_start"].min() >= pd.Timestamp("2026-03-05 21:00", tz="UTC")


def test_topic_breakdown_page(sample_db):
    at = open_page("topics.py")
    table = at.dataframe[0].value
    assert table["key"].iloc[0] == "Energy | Oil" and table["stories"].iloc[0] == 87
    assert table["stories"].sum() == 377
    bars = chart_data(at, 0)[-1]  # long form: key, series (negative/neutral/positive), value
    stacked = bars.groupby("key")[bars.columns[-1]].sum()
    assert stacked["Energy | Oil"] == 87 and stacked.sum() == 377
    at.sidebar.radio(key="breakdown_scope").set_value("Ticker").run()
    assert at.dataframe[0].value["key"].iloc[0] == "NWDE"


def test_items_page_lists_labels_and_extremes(sample_db):
    at = open_page("items.py")
    latest, most_negative, most_positive = (d.value for d in at.dataframe)
    assert latest["timestamp"].is_monotonic_decreasing and len(latest) == 50
    assert {"sentiment", "sentiment_confidence", "topic", "topic_confidence", "copies"} <= set(latest)
    assert set(most_negative["sentiment"]) == {"negative"}
    assert set(most_positive["sentiment"]) == {"positive"}
    at.multiselect(key="items_sentiments").set_value(["negative"]).run()
    at.multiselect(key="items_topics").set_value(["Energy | Oil"]).run()
    at.text_input(key="items_search").set_value("refinery").run()
    latest = at.dataframe[0].value
    assert len(latest) > 5
    assert set(latest["sentiment"]) == {"negative"} and set(latest["topic"]) == {"Energy | Oil"}
    assert latest["title"].str.contains("refinery", case=False).all()


def alerts_table(at):
    """The alerts table of the Alerts page as shown (its cells are escaped Markdown: news text)."""
    return at.table[0].value.map(lambda v: v.replace("\\", "") if isinstance(v, str) else v)


def test_alerts_page_lists_alerts_and_drills_down(sample_db):
    at = open_page("alerts.py")
    table = alerts_table(at)
    assert list(table["Key"]) == ["entity: NWDE", "topic: Energy | Oil"]
    assert list(table["Status"]) == ["open", "open"]
    energy = int(table.index[1].lstrip("#"))
    at.selectbox(key="alerts_chosen").set_value(energy).run()
    # escaped Markdown (a key is news text): compare what the page shows
    assert at.subheader[0].value.replace("\\", "") == f"Alert #{energy}: Energy | Oil"
    assert at.markdown[0].value.replace("\\", "").startswith("topic-negative-surge: share negative 100%")
    items = at.dataframe[0].value
    assert len(items) == table.loc[f"#{energy}", "Stories"]
    assert set(items["topic"]) == {"Energy | Oil"}
    window, context = chart_data(at, 0)[:2]
    assert list(window["id"]) == [energy]
    assert context["y"].max() == 1.0


def test_alert_from_the_url_is_preselected(sample_db):
    engine = engine_for_test()
    energy = int(queries.alerts_frame(engine).set_index("key").loc["Energy | Oil", "id"])
    engine.dispose()
    at = open_page("alerts.py", {"alert": str(energy)})
    assert at.sidebar.radio(key="alerts_status").value == "All"
    assert at.selectbox(key="alerts_chosen").value == energy


def test_acknowledge_and_mute_from_the_page(sample_db):
    at = open_page("alerts.py")
    first = at.selectbox(key="alerts_chosen").value
    at.text_input(key="alerts_who").set_value("dana")
    at.button(key="alerts_ack").click().run()
    assert not at.exception
    engine = engine_for_test()
    frame = queries.alerts_frame(engine).set_index("id")
    assert frame.loc[first, "status"] == "acknowledged" and frame.loc[first, "acknowledged_by"] == "dana"
    assert list(alerts_table(at)["Status"]) == ["open"]  # the Open filter hides the acknowledged one

    second = at.selectbox(key="alerts_chosen").value
    assert second != first
    at.selectbox(key="alerts_mute_for").set_value("6 hours")
    at.button(key="alerts_mute").click().run()
    assert not at.exception
    assert queries.alerts_frame(engine).set_index("id").loc[second, "status"] == "muted"
    assert "No open alerts" in at.success[0].value

    at.sidebar.radio(key="alerts_status").set_value("Muted").run()
    at.button(key="alerts_unmute").click().run()
    assert queries.alerts_frame(engine).set_index("id").loc[second, "status"] == "open"
    engine.dispose()


def test_model_version_picker_appears_after_rescoring(sample_db):
    at = open_page("overview.py")
    assert not any(s.label == "Model version" for s in at.sidebar.selectbox)
    negative_truth = {m.label: m.value for m in at.metric}["Negative share"]
    engine = engine_for_test()
    rescore_energy_as_neutral(engine)
    engine.dispose()
    at = open_page("overview.py")
    picker = at.sidebar.selectbox(key="finance_model_version")
    assert picker.options == ["Latest per item", "v2", "truth"]
    negative_latest = {m.label: m.value for m in at.metric}["Negative share"]
    assert int(negative_latest.rstrip("%")) < int(negative_truth.rstrip("%"))  # Energy re-scored neutral
    picker.set_value("truth").run()
    assert {m.label: m.value for m in at.metric}["Negative share"] == negative_truth


def test_an_unreachable_database_is_reported_not_raised(finance_only, monkeypatch):
    monkeypatch.setenv("AIGC_DB_URL", "postgresql://aigc:secret@127.0.0.1:1/aigc")
    # Nobody's sign-in can be checked, so the suite fails closed: every URL shows the error instead of a page.
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Cannot connect to database" in at.error[0].value and "127.0.0.1:1" in at.error[0].value
    assert "secret" not in at.error[0].value


def test_dead_deliveries_are_shown_masked_and_retried_from_the_alerts_page(sample_db):
    from apps.finance_monitor.outbox import enqueue
    from core.storage import session_scope, utcnow
    from core.webhooks import WebhookSink

    engine = engine_for_test()
    alert_id = int(queries.alerts_frame(engine)["id"].iloc[0])
    sink = WebhookSink("https://hooks.example.com/services/T0AB12CD3/B0CD34EF5/xYzSecretToken1234567890")
    with session_scope(engine) as session:
        (row,) = enqueue(session, alert_id, {"id": alert_id}, [sink], utcnow())
        row.status, row.attempts, row.last_error = "dead", 8, f"{sink.target}: HTTP 500"
    overview = open_page("overview.py")
    assert "1 alert deliveries failed for good" in overview.error[0].value
    at = open_page("alerts.py")
    assert "1 dead, 0 pending" in at.expander[0].label
    outbox = at.dataframe[0].value
    assert list(outbox["status"]) == ["dead"] and "xYzSecret" not in outbox.to_csv()
    assert outbox["target"].iloc[0] == "https://hooks.example.com/services/***/***/***"
    at.button(key="alerts_outbox_retry_dead").click().run()
    assert not at.exception
    assert queries.delivery_counts(engine) == {"pending": 1, "delivered": 0, "dead": 0}
    assert queries.alerts_frame(engine).set_index("id").loc[alert_id, "deliveries"] == "webhook: pending"
    engine.dispose()


def test_failed_channel_deliveries_show_no_secret_on_the_alerts_page(sample_db, monkeypatch):
    from apps.finance_monitor.alerts import alert_payload
    from apps.finance_monitor.channels import ChannelSpec, build_channel_sinks
    from apps.finance_monitor.outbox import DeliveryPolicy, Sender, enqueue
    from apps.finance_monitor.storage import Alert
    from core.storage import session_scope, utcnow
    from tests.apps.finance_monitor.channel_servers import free_port

    secrets = ("T0AB12CD3", "B0CD34EF5", "xYzSecretToken1234567890", "pw-Hunter2-Secret")
    environ = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0AB12CD3/B0CD34EF5/xYzSecretToken1234567890",
        "SMTP_URL": f"mailtos://alerts:pw-Hunter2-Secret@127.0.0.1:{free_port()}?mode=starttls",
    }
    monkeypatch.setenv(
        "HTTPS_PROXY", f"http://127.0.0.1:{free_port()}"
    )  # nothing listens: Slack fails, offline
    specs = [
        ChannelSpec("desk-slack", "slack", url_env="SLACK_WEBHOOK_URL"),
        ChannelSpec(
            "risk-mail", "email", smtp_env="SMTP_URL", to=("risk@example.com",), sender="a@example.com"
        ),
    ]
    sinks = build_channel_sinks(specs, environ=environ, timeout=1)
    engine = engine_for_test()
    alert_id = int(queries.alerts_frame(engine)["id"].iloc[0])
    with session_scope(engine) as session:
        enqueue(
            session, alert_id, alert_payload(session.get(Alert, alert_id), []), list(sinks.values()), utcnow()
        )
    report = Sender(engine, list(sinks.values()), DeliveryPolicy(max_attempts=1)).deliver_due()
    assert len(report.dead) == 2
    at = open_page("alerts.py", {"alert": str(alert_id)})
    assert "2 dead, 0 pending" in at.expander[0].label
    outbox = at.dataframe[0].value.set_index("sink")
    assert outbox.loc["desk-slack", "target"] == "slack ($SLACK_WEBHOOK_URL)"
    assert outbox.loc["desk-slack", "last_error"].endswith("A Connection error occurred posting to Slack.")
    assert "Connection error while submitting email" in outbox.loc["risk-mail", "last_error"]
    shown = outbox.to_csv() + " ".join(e.value for e in [*at.caption, *at.markdown, *at.toast])
    assert "desk-slack: dead (1 attempts)" in shown
    for secret in secrets:
        assert secret not in shown
    engine.dispose()


def test_alerts_page_computes_and_shows_the_digest_with_links_to_its_items(sample_db):
    from apps.finance_monitor.digests import get_digest

    engine = engine_for_test()
    energy = int(queries.alerts_frame(engine).set_index("key").loc["Energy | Oil", "id"])
    at = open_page("alerts.py", {"alert": str(energy)})
    assert "No digest yet" in " ".join(c.value for c in at.caption)
    at.button(key="alerts_digest_compute").click().run()  # the real models, loaded by the page
    assert not at.exception, [e.value for e in at.exception]
    digest = get_digest(engine, energy, None)
    engine.dispose()
    assert digest is not None and digest.mode == "extractive" and len(digest.refs) >= 2
    summary = next(m.value for m in at.markdown if f"](#digest-{energy}-ref-1)" in m.value)
    references = next(m.value for m in at.markdown if f'id="digest-{energy}-ref-1"' in m.value)
    for n, ref in enumerate(digest.refs, 1):
        assert f"[\\[{n}\\]](#{queries.digest_anchor(energy, n)})" in summary  # [n] opens reference n
        assert f'<span id="{queries.digest_anchor(energy, n)}"></span>**\\[{n}\\]**' in references
        assert queries.markdown_text(ref["title"]) in references
    assert queries.markdown_text(digest.summary[0].text.rstrip(".")) in summary
    clusters = next(d.value for d in at.dataframe if "headline" in d.value.columns)
    assert clusters["items"].sum() == digest.items and clusters["items"].is_monotonic_decreasing
    shares = next(
        data[0] for i in range(len(at.get("vega_lite_chart"))) if "period" in (data := chart_data(at, i))[0]
    )
    window = shares.set_index(["period", "sentiment"])["share"]
    assert window["alert window", "negative"] == pytest.approx(digest.window.share_negative)
    assert window["baseline", "negative"] == pytest.approx(digest.baseline.share_negative)
    assert "No digest yet" not in " ".join(c.value for c in at.caption)


def test_a_digest_that_cannot_be_computed_is_one_error_line_on_the_alerts_page(sample_db, monkeypatch):
    from apps.finance_monitor.digests import Digester

    def broken(*_args, **_kwargs):
        raise RuntimeError("the encoder could not be loaded:\nout of memory")

    monkeypatch.setattr(Digester, "build", broken)
    engine = engine_for_test()
    energy = int(queries.alerts_frame(engine).set_index("key").loc["Energy | Oil", "id"])
    engine.dispose()
    at = open_page("alerts.py", {"alert": str(energy)})
    at.button(key="alerts_digest_compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [
        "The digest could not be computed: the encoder could not be loaded: out of memory"
    ]
    assert "No digest yet" in " ".join(c.value for c in at.caption)  # the page goes on


def test_the_alerts_page_recomputes_a_digest_with_the_baseline_of_the_alert_s_own_rule(sample_db, tmp_path):
    """The monitor ran with its own rules file; the page reads the shipped settings, which lack the rule."""
    import sqlalchemy as sa

    from apps.finance_monitor.alerts import AlertEngine
    from apps.finance_monitor.config import DigestConfig
    from apps.finance_monitor.digests import Digester, get_digest
    from apps.finance_monitor.rules import load_rules
    from apps.finance_monitor.storage import AlertItem, Item, scored_frame
    from core.storage import session_scope

    rules = tmp_path / "desk_rules.yaml"
    rules.write_text(
        "rules:\n  - name: desk-short-baseline\n    scope: topic\n    std_factor: null\n    threshold: 0.7\n"
        "    min_volume: 6\n    baseline_buckets: 2\n    min_baseline_buckets: 2\n",
        encoding="utf-8",
    )
    engine = engine_for_test()
    with session_scope(engine) as session:
        frame = scored_frame(session)
    monitor = AlertEngine(engine, load_rules(rules), digester=Digester(DigestConfig()))
    alert = monitor.evaluate(frame)[0]  # with its digest, as the monitor stores it
    with session_scope(engine) as session:
        linked = sa.select(AlertItem.item_id).where(AlertItem.alert_id == alert.id)
        extra = session.scalars(sa.select(Item.id).where(Item.id.not_in(linked)).limit(1)).one()
        session.add(AlertItem(alert_id=alert.id, item_id=extra))  # the incident grew: the digest is stale
    at = open_page("alerts.py", {"alert": str(alert.id)})
    assert "new items since this digest" in " ".join(c.value for c in at.caption)
    at.button(key="alerts_digest_compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    digest = get_digest(engine, alert.id, None)
    engine.dispose()
    assert extra in {i for c in digest.clusters for i in c.item_ids}  # computed again
    assert digest.baseline.end == alert.window_start
    assert alert.window_start - digest.baseline.start == pd.Timedelta(hours=2)  # not the 24-bucket default
