"""HTTP endpoints of the recommender (mounted at ``/v1/recommend`` by ``aigc serve``).

The same :class:`RecommenderModel` calls as the recommender pages (:mod:`apps.recommender.ui.queries`):
top-k items with reasons for a user (unknown and cold-start users get the popular / text fallback the
model documents) and the items closest to an item by text vector.

A user's top-k is served from the newest finished batch run of the loaded model in the database
(``aigc recommend score --db``, the nightly job; ``recommend_recommendations``) when that run holds
the user and at least ``k`` items: one indexed lookup instead of candidates, features and ranking.
Users the run does not hold (new since the run, or a partial run) and larger ``k`` are scored live.
Both give the same list: the batch job runs the same :meth:`RecommenderModel.recommend_frame`, and
the run is tied to the model by its fingerprint.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from apps.recommender.model import RecommenderModel
from core.api import ApiError, ApiPlugin, BenchRequest, Principal, require, service_dependency

logger = logging.getLogger(__name__)

MAX_K = 100
RECOMMEND_VIEW = "recommend.view"


class BatchTopK:
    """The newest finished batch run of one model in the database, read one user at a time.

    Args:
        engine: The database the batch job wrote to.
        model: The model's fingerprint (:meth:`RecommenderModel.fingerprint`), as the run recorded it.
        refresh_s: Seconds between checks for a newer run (a nightly run is served within this).
        cache_size: Users whose rows stay in memory (rows of a run never change).
    """

    def __init__(self, engine: Engine, model: str, refresh_s: float = 60.0, cache_size: int = 50_000) -> None:
        self.engine = engine
        self.model = model
        self.refresh_s = refresh_s
        self.cache_size = cache_size
        self._run: tuple[str, int] | None = None
        self._checked = -float("inf")
        self._rows: OrderedDict[tuple[str, str], list[tuple[int, str, float, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def run(self) -> tuple[str, int] | None:
        """``(run_id, k)`` of the run served now (re-read every ``refresh_s``), or None."""
        from apps.recommender.storage import latest_run

        now = time.monotonic()
        if now - self._checked >= self.refresh_s:
            self._run, self._checked = latest_run(self.engine, self.model), now
        return self._run

    def top_k(self, user_id: str, k: int) -> list[tuple[int, str, float, str]] | None:
        """The user's ``k`` best ``(rank, item_id, score, reason)``; None when the run cannot answer."""
        from apps.recommender.storage import user_rows

        run = self.run()
        if run is None or k > run[1]:
            return None
        key = (run[0], user_id)
        with self._lock:
            rows = self._rows.get(key)
            if rows is not None:
                self._rows.move_to_end(key)
        if rows is None:
            rows = user_rows(self.engine, run[0], user_id, run[1])
            with self._lock:
                self._rows[key] = rows
                while len(self._rows) > self.cache_size:
                    self._rows.popitem(last=False)
        # No rows: the run did not score this user. Fewer than k: all the user has (a short list).
        return rows[:k] if rows else None


@dataclass
class RecommendService:
    """The loaded model, its item titles and the batch run it may answer from."""

    model: RecommenderModel
    titles: dict[str, str | None]
    batch: BatchTopK | None


def load_service(engine: Engine) -> RecommendService:
    """The model in ``$AIGC_DATA_DIR/recommend/model`` (the pages' default), warmed up.

    Raises:
        FileNotFoundError: No model there yet (``aigc prepare-demo --app recommend``).
    """
    from apps.recommender.ui.queries import data_root

    path = data_root() / "model"
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"no recommender model at {path}: run `aigc prepare-demo --app recommend`")
    model = RecommenderModel.load(path)
    model.recommend_frame(model.user_ids()[:1] or ["warm-up"], 1)
    titles = {str(i): None if t is None else str(t) for i, t in _title_map(model).items()}
    batch = BatchTopK(engine, model.fingerprint())
    if batch.run() is None:
        logger.info("No batch run of this model in the database; every user is scored live")
    return RecommendService(model, titles, batch)


recommender = service_dependency("recommend")
router = APIRouter()


class RecommendedItem(BaseModel):
    """One recommended item, best first."""

    rank: int
    item_id: str
    title: str | None = None
    score: float
    reason: str


class UserRecommendations(BaseModel):
    """Top-k for a user; ``known`` is false for users the model has no history of (popular fallback)."""

    user_id: str
    known: bool
    items: list[RecommendedItem]


class SimilarItem(BaseModel):
    """An item close to the asked one by text vector."""

    item_id: str
    title: str | None = None
    score: float


class SimilarItems(BaseModel):
    """The items closest to ``item_id``."""

    item_id: str
    items: list[SimilarItem]


def _title_map(model: RecommenderModel) -> Any:
    items = model.items.set_index("item_id")
    return items["title" if "title" in items.columns else "text"]


def _finite(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


@router.get("/users/{user_id}", response_model=UserRecommendations, summary="Top-k items for a user")
def recommend_user(
    user_id: str = Path(min_length=1, max_length=256),
    k: int = Query(10, ge=1, le=MAX_K),
    service: RecommendService = Depends(recommender),
    _principal: Principal = Depends(require(RECOMMEND_VIEW)),
) -> dict[str, Any]:
    """Top-``k`` unseen items with the reason each was picked."""
    rows = service.batch.top_k(user_id, k) if service.batch is not None else None
    if rows is None:
        rows = live_top_k(service.model, user_id, k)
    items = [
        {"rank": rank, "item_id": item, "title": service.titles.get(item), "score": _finite(score),
         "reason": reason}
        for rank, item, score, reason in rows
    ]  # fmt: skip
    return {"user_id": user_id, "known": user_id in service.model.train.user_index, "items": items}


def live_top_k(model: RecommenderModel, user_id: str, k: int) -> list[tuple[int, str, float, str]]:
    """The user's ``k`` best ``(rank, item_id, score, reason)`` scored now (the batch job's call)."""
    frame = model.recommend_frame([user_id], k)
    return [
        (int(r.rank), str(r.item_id), float(r.score), str(r.reason)) for r in frame.itertuples(index=False)
    ]


@router.get("/items/{item_id}/similar", response_model=SimilarItems, summary="Items similar to an item")
def similar(
    item_id: str = Path(min_length=1, max_length=256),
    k: int = Query(10, ge=1, le=MAX_K),
    service: RecommendService = Depends(recommender),
    _principal: Principal = Depends(require(RECOMMEND_VIEW)),
) -> dict[str, Any]:
    """The ``k`` items whose text vectors are closest to ``item_id``'s."""
    try:
        frame = service.model.similar_items(item_id, k)
    except KeyError:
        raise ApiError(404, f"unknown item id {item_id!r}", "path.item_id") from None
    items = [
        {
            "item_id": str(r.item_id),
            "title": None if r.title is None else str(r.title),
            "score": _finite(r.score),
        }
        for r in frame.itertuples(index=False)
    ]
    return {"item_id": item_id, "items": items}


def _bench_requests() -> list[BenchRequest]:
    """Users and items of the shipped sample (the demo model is fitted on it) for the load benchmark."""
    from apps.recommender.demo import SAMPLE_DIR
    from core.io.tables import read_frame

    users = read_frame(SAMPLE_DIR / "interactions.csv", columns=["user_id"])["user_id"]
    items = read_frame(SAMPLE_DIR / "items.csv", columns=["item_id"])["item_id"]
    return [
        *(
            BenchRequest("recommend/users", "GET", f"/v1/recommend/users/{u}?k=10")
            for u in users.unique()[:50]
        ),
        *(
            BenchRequest("recommend/similar", "GET", f"/v1/recommend/items/{i}/similar?k=10")
            for i in items[:50]
        ),
    ]


def plugin() -> ApiPlugin:
    """The recommender's part of the HTTP API (entry point ``aigc.api``)."""
    return ApiPlugin("recommend", router, load_service, None, _bench_requests)


__all__ = ["BatchTopK", "RecommendService", "live_top_k", "load_service", "plugin", "router"]
