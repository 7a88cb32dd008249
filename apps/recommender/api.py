"""HTTP endpoints of the recommender (mounted at ``/v1/recommend`` by ``aigc serve``).

The same :class:`RecommenderModel` calls as the recommender pages (:mod:`apps.recommender.ui.views`):
top-k items with reasons for a user (unknown and cold-start users get the popular / text fallback the
model documents) and the items closest to an item by text vector.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from apps.recommender.model import RecommenderModel
from core.api import ApiError, ApiPlugin, BenchRequest, Principal, require, service_dependency

logger = logging.getLogger(__name__)

MAX_K = 100
RECOMMEND_VIEW = "recommend.view"


def load_service(_engine: Engine) -> RecommenderModel:
    """The model in ``$AIGC_DATA_DIR/recommend/model`` (the pages' default), warmed up.

    Raises:
        FileNotFoundError: No model there yet (``aigc prepare-demo --app recommend``).
    """
    from apps.recommender.ui.views import data_root

    path = data_root() / "model"
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"no recommender model at {path}: run `aigc prepare-demo --app recommend`")
    model = RecommenderModel.load(path)
    model.recommend_frame(model.user_ids()[:1] or ["warm-up"], 1)
    return model


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
    model: RecommenderModel = Depends(recommender),
    _principal: Principal = Depends(require(RECOMMEND_VIEW)),
) -> dict[str, Any]:
    """Top-``k`` unseen items with the reason each was picked."""
    frame = model.recommend_frame([user_id], k)
    titles = _title_map(model)
    items = [
        {
            "rank": int(row.rank),
            "item_id": str(row.item_id),
            "title": None if row.item_id not in titles.index else str(titles[row.item_id]),
            "score": _finite(row.score),
            "reason": str(row.reason),
        }
        for row in frame.itertuples(index=False)
    ]
    return {"user_id": user_id, "known": user_id in model.train.user_index, "items": items}


@router.get("/items/{item_id}/similar", response_model=SimilarItems, summary="Items similar to an item")
def similar(
    item_id: str = Path(min_length=1, max_length=256),
    k: int = Query(10, ge=1, le=MAX_K),
    model: RecommenderModel = Depends(recommender),
    _principal: Principal = Depends(require(RECOMMEND_VIEW)),
) -> dict[str, Any]:
    """The ``k`` items whose text vectors are closest to ``item_id``'s."""
    try:
        frame = model.similar_items(item_id, k)
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
    import pandas as pd

    from apps.recommender.demo import SAMPLE_DIR

    users = pd.read_csv(SAMPLE_DIR / "interactions.csv", usecols=["user_id"], dtype=str)["user_id"]
    items = pd.read_csv(SAMPLE_DIR / "items.csv", usecols=["item_id"], dtype=str)["item_id"]
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


__all__ = ["load_service", "plugin", "router"]
