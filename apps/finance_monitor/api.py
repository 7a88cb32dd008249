"""HTTP endpoints of the finance news monitor (mounted at ``/v1/finance`` by ``aigc serve``).

``classify`` labels texts with the monitor's models (:meth:`Scorer.label`), ``items`` runs one monitor
cycle over the posted items (:meth:`Monitor.ingest_items`: stored idempotently by id, scored, alert
rules evaluated), ``alerts`` lists and acknowledges alerts (:mod:`apps.finance_monitor.alerts`), the
same functions as ``aigc finance monitor`` and the dashboard.

``classify`` requests are micro-batched (:class:`core.api.microbatch.MicroBatcher`): the texts of
requests that arrive while the model is busy are labelled together in one call, on worker threads
(one per core) at a lower CPU priority than the request threads, so batches of headlines take the
CPU that quick requests (recommendations, quoted answers) leave, not the other way round.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr
from sqlalchemy.engine import Engine

from apps.finance_monitor.alerts import acknowledge, alert_items, alert_payload, list_alerts
from apps.finance_monitor.config import MonitorConfig
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.monitor import Monitor, build_monitor
from apps.finance_monitor.scoring import Label
from apps.finance_monitor.sources import parse_records
from core.api import ApiError, ApiPlugin, BenchRequest, Principal, require, service_dependency
from core.api.microbatch import MicroBatcher

logger = logging.getLogger(__name__)

MAX_TEXTS = 256
MAX_TEXT_CHARS = 5_000
MAX_ITEMS = 1_000
FINANCE_VIEW = "finance.view"
ALERTS_MANAGE = "alerts.manage"
# Texts labelled in one model call; the scorer sorts them by length and pads per batch of 64.
BATCH_ITEMS = 256
# Batch work yields the CPU to interactive requests (see the module docs).
BATCH_NICE = 5


@dataclass
class FinanceService:
    """The monitor of one API process and the micro-batcher in front of its scorer."""

    monitor: Monitor
    classify: MicroBatcher[str, Label]


def load_service(engine: Engine) -> FinanceService:
    """The monitor over ``engine`` with the configured models (``configs/finance_monitor.yaml``).

    Raises:
        FileNotFoundError: No trained model yet (``aigc prepare-demo --app finance``).
    """
    from apps.finance_monitor.config import CONFIG_FILE
    from core.config import load_config
    from core.paths import data_dir

    config = load_config(MonitorConfig, CONFIG_FILE if CONFIG_FILE.is_file() else None, section="monitor")
    monitor = build_monitor(engine, config, data_dir())
    monitor.scorer.set_workers(1)  # the micro-batcher below runs the requests' batches in parallel
    monitor.scorer.label(["warm up"])
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    batcher = MicroBatcher(
        monitor.scorer.label, max_items=BATCH_ITEMS, workers=workers, nice=BATCH_NICE, name="classify"
    )
    return FinanceService(monitor, batcher)


def _check(service: FinanceService) -> None:
    list_alerts(service.monitor.engine, limit=1)


finance = service_dependency("finance")
router = APIRouter()


class ClassifyRequest(BaseModel):
    """Texts (headlines or sentences) to label."""

    texts: list[str] = Field(min_length=1, max_length=MAX_TEXTS)


class LabelOut(BaseModel):
    """One text's labels with calibrated probabilities."""

    sentiment: str
    sentiment_confidence: float
    topic: str | None = None
    topic_confidence: float | None = None
    probabilities: dict[str, dict[str, float]]


class ClassifyResponse(BaseModel):
    """Labels in input order, and the model version that produced them."""

    model_version: str
    results: list[LabelOut]


class NewsItemIn(BaseModel):
    """A news item: the keys of a JSON Lines news file (``id`` is derived when absent)."""

    id: str | None = Field(default=None, max_length=2048)
    # Strict: pydantic would turn true into 1 (1970-01-01) before the parser could refuse it.
    timestamp: StrictStr | StrictInt | StrictFloat = Field(
        description="ISO 8601 (UTC unless a zone is given) or epoch seconds; from 1970 to a day ahead of now"
    )
    source: str = Field(min_length=1, max_length=512)
    title: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    body: str | None = Field(default=None, max_length=100_000)
    tickers: list[str] | str | None = None
    url: str | None = Field(default=None, max_length=2048)


class ItemsRequest(BaseModel):
    """News items to store (idempotent by id), score and check against the alert rules."""

    items: list[NewsItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class ItemsResponse(BaseModel):
    """What the monitor cycle did with the posted items."""

    received: int
    new_ids: list[str]
    near_duplicates: int
    scored: int
    alerts: list[int]


@router.post("/classify", response_model=ClassifyResponse, summary="Sentiment and topic of texts")
def classify(
    request: ClassifyRequest,
    service: FinanceService = Depends(finance),
    _principal: Principal = Depends(require(FINANCE_VIEW)),
) -> dict[str, Any]:
    """Label each text with sentiment and topic (calibrated probabilities) and the model version."""
    for i, text in enumerate(request.texts):
        if not text.strip():
            raise ApiError(422, "empty text", f"body.texts.{i}")
        if len(text) > MAX_TEXT_CHARS:
            raise ApiError(422, f"text longer than {MAX_TEXT_CHARS} characters", f"body.texts.{i}")
    labels = service.classify(request.texts)
    return {"model_version": service.monitor.scorer.version, "results": [vars(label) for label in labels]}


@router.post("/items", response_model=ItemsResponse, summary="Ingest news items into the monitor")
def items(
    request: ItemsRequest,
    service: FinanceService = Depends(finance),
    _principal: Principal = Depends(require(ALERTS_MANAGE)),
) -> dict[str, Any]:
    """Store the items (ids already stored are skipped), score them and evaluate the alert rules."""
    records = [item.model_dump(exclude_none=True) for item in request.items]
    try:
        news = parse_records(records, "request")
    except DataError as err:
        field = f"body.items.{err.row - 1}.{err.field}" if err.row and err.field else "body.items"
        raise ApiError(422, err.problem, field) from None
    result = service.monitor.ingest_items(news)
    stored = result.files[0]
    return {
        "received": len(request.items),
        "new_ids": stored.new_ids,
        "near_duplicates": stored.near_duplicates,
        "scored": result.scored,
        "alerts": result.alerts,
    }


class AlertOut(BaseModel):
    """An alert (see :func:`apps.finance_monitor.alerts.alert_payload`)."""

    id: int
    rule: str
    scope: str
    key: str
    metric: str
    value: float | None = None
    threshold: float | None = None
    reason: str | None = None
    baseline_mean: float | None = None
    baseline_std: float | None = None
    volume: int
    window: str
    window_start: datetime
    window_end: datetime
    status: str
    created_at: datetime
    message: str | None = None
    item_ids: list[str] = []


@router.get("/alerts", response_model=list[AlertOut], summary="Alerts, newest incident first")
def alerts(
    status: Literal["open", "acknowledged", "muted", "all"] = "all",
    limit: int = Query(50, ge=1, le=500),
    service: FinanceService = Depends(finance),
    _principal: Principal = Depends(require(FINANCE_VIEW)),
) -> list[dict[str, Any]]:
    """Alerts (optionally one status) with the ids of the items behind them."""
    engine = service.monitor.engine
    found = list_alerts(engine, status=None if status == "all" else status, limit=limit)
    return [alert_payload(a, [i.id for i in alert_items(engine, a.id)]) for a in found]


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut, summary="Acknowledge an alert")
def acknowledge_alert(
    alert_id: int,
    service: FinanceService = Depends(finance),
    principal: Principal = Depends(require(ALERTS_MANAGE)),
) -> dict[str, Any]:
    """Mark the alert acknowledged by the key's user."""
    if not 0 < alert_id < 2**62:
        raise ApiError(404, f"no alert with id {alert_id}", "path.alert_id")
    try:
        alert = acknowledge(service.monitor.engine, alert_id, by=principal.user)
    except ValueError as err:
        raise ApiError(404, str(err), "path.alert_id") from None
    return alert_payload(alert, [i.id for i in alert_items(service.monitor.engine, alert_id)])


def _bench_requests() -> list[BenchRequest]:
    """A batch of 32 headlines of the shipped sample stream for the load benchmark."""
    from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR
    from apps.finance_monitor.sources import read_news

    titles = [item.title for item in read_news(SAMPLE_DATA_DIR / "news_stream.csv")]
    return [
        BenchRequest("finance/classify", "POST", "/v1/finance/classify", {"texts": titles[i : i + 32]}, 32)
        for i in range(0, min(len(titles), 320) - 31, 32)
    ]


def plugin() -> ApiPlugin:
    """The finance app's part of the HTTP API (entry point ``aigc.api``)."""
    return ApiPlugin("finance", router, load_service, _check, _bench_requests)


__all__ = ["FinanceService", "load_service", "plugin", "router"]
