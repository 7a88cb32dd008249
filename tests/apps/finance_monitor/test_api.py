"""The finance endpoints on a live API: classify, ingest items (idempotent), alerts and acknowledge."""

from __future__ import annotations

import pytest

HEADLINES = ["Acme shares plunge after profit warning", "Globex beats estimates and raises guidance"]


def test_classify_returns_labels_probabilities_and_version(api) -> None:
    reply = api.client.post("/v1/finance/classify", json={"texts": HEADLINES}, headers=api.headers("analyst"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_version"] and len(body["results"]) == 2
    for result in body["results"]:
        sentiment = result["probabilities"]["sentiment"]
        assert set(sentiment) == {"negative", "neutral", "positive"}
        assert abs(sum(sentiment.values()) - 1) < 1e-3
        assert result["sentiment"] == max(sentiment, key=sentiment.get)
        assert result["topic"] in result["probabilities"]["topic"]


def test_classify_rejects_bad_batches(api) -> None:
    headers = api.headers("analyst")
    empty = api.client.post("/v1/finance/classify", json={"texts": []}, headers=headers)
    assert empty.status_code == 422 and empty.json()["field"] == "body.texts"
    blank = api.client.post("/v1/finance/classify", json={"texts": ["ok", " "]}, headers=headers)
    assert blank.status_code == 422 and blank.json()["field"] == "body.texts.1"
    too_many = api.client.post("/v1/finance/classify", json={"texts": ["x"] * 257}, headers=headers)
    assert too_many.status_code == 422
    assert (
        api.client.post(
            "/v1/finance/classify", json={"texts": ["x"]}, headers=api.headers("agent")
        ).status_code
        == 403
    )


def test_items_are_stored_once_and_scored(api) -> None:
    items = [
        {
            "id": "api-1",
            "timestamp": "2026-11-30T09:00:00Z",
            "source": "wire",
            "title": HEADLINES[0],
            "tickers": ["ACME"],
        },
        {"timestamp": "2026-11-30T09:05:00Z", "source": "wire", "title": "$GLBX " + HEADLINES[1]},
    ]
    first = api.client.post("/v1/finance/items", json={"items": items}, headers=api.headers("analyst"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["received"] == 2 and len(body["new_ids"]) == 2 and "api-1" in body["new_ids"]
    assert body["scored"] == 2
    again = api.client.post("/v1/finance/items", json={"items": items}, headers=api.headers("analyst")).json()
    assert again["new_ids"] == [] and again["scored"] == 0  # idempotent by id


def test_items_errors_name_row_and_field(api) -> None:
    items = [
        {"timestamp": "2026-11-30T09:00:00Z", "source": "wire", "title": "fine"},
        {"timestamp": "not a date", "source": "wire", "title": "bad"},
    ]
    reply = api.client.post("/v1/finance/items", json={"items": items}, headers=api.headers("analyst"))
    assert reply.status_code == 422 and reply.json()["field"] == "body.items.1.timestamp"
    # Year 9999 used to be stored, then every later post ran out of memory in the rules' hourly grid;
    # true was read as epoch 1 (1970).
    for stamp in ("9999-12-31", "0001-01-01T00:00:00Z", True, 99999999999999999999):
        bad = [items[0], {**items[1], "timestamp": stamp}]
        reply = api.client.post("/v1/finance/items", json={"items": bad}, headers=api.headers("analyst"))
        assert reply.status_code == 422 and reply.json()["field"].startswith("body.items.1.timestamp"), (
            reply.text
        )
    fine = api.client.post("/v1/finance/items", json={"items": items[:1]}, headers=api.headers("analyst"))
    assert fine.status_code == 200, fine.text
    # Viewing is not enough to write into the monitor's store.
    assert (
        api.client.post(
            "/v1/finance/items", json={"items": items[:1]}, headers=api.headers("agent")
        ).status_code
        == 403
    )


def test_alerts_list_and_acknowledge(api) -> None:
    from datetime import UTC, datetime

    from apps.finance_monitor.storage import Alert
    from core.storage import create_engine, session_scope

    engine = create_engine(api.db_url)
    when = datetime(2026, 11, 30, 9, tzinfo=UTC)
    with session_scope(engine) as session:
        alert = Alert(
            rule="neg-spike", scope="topic", key="earnings", metric="share_negative", value=0.8,
            threshold=0.5, reason="threshold", message="negative share 80%", volume=12, window="1h",
            window_start=when, window_end=when, status="open",
        )  # fmt: skip
        session.add(alert)
        session.flush()
        alert_id = alert.id
    engine.dispose()
    listed = api.client.get("/v1/finance/alerts?status=open", headers=api.headers("analyst"))
    assert listed.status_code == 200 and alert_id in [a["id"] for a in listed.json()]
    acked = api.client.post(f"/v1/finance/alerts/{alert_id}/acknowledge", headers=api.headers("analyst"))
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    still_open = api.client.get("/v1/finance/alerts?status=open", headers=api.headers("analyst")).json()
    assert alert_id not in [a["id"] for a in still_open]
    missing = api.client.post("/v1/finance/alerts/999999/acknowledge", headers=api.headers("analyst"))
    assert missing.status_code == 404 and missing.json()["field"] == "path.alert_id"


def test_concurrent_classify_requests_are_batched_with_the_same_labels(api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR
    from apps.finance_monitor.sources import read_news

    titles = [item.title for item in read_news(SAMPLE_DATA_DIR / "news_stream.csv")][:96]
    batches = [titles[i : i + 8] for i in range(0, len(titles), 8)]
    headers = api.headers("analyst")
    service = api.client.app.state.services["finance"].value
    alone = [service.monitor.scorer.label(batch) for batch in batches]  # one model call per request
    calls = service.classify.calls

    def post(batch: list[str]) -> dict:
        reply = api.client.post("/v1/finance/classify", json={"texts": batch}, headers=headers)
        assert reply.status_code == 200, reply.text
        return reply.json()

    with ThreadPoolExecutor(len(batches)) as pool:
        replies = list(pool.map(post, batches))
    for reply, labels in zip(replies, alone, strict=True):
        assert len(reply["results"]) == len(labels)
        for r, lab in zip(reply["results"], labels, strict=True):  # padding differs in a shared call
            for head in ("sentiment", "topic"):
                assert r["probabilities"][head] == pytest.approx(lab.probabilities[head], abs=0.02)
    assert 1 <= service.classify.calls - calls <= len(batches)
