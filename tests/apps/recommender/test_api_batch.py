"""Recommendations served from the batch job's rows in the database, and live for everyone else.

The API answers a user from the newest finished batch run of its model when the run holds the user
and at least ``k`` items; both paths must give the same list (they run the same scoring).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api_harness import make_keys

BATCH_USERS = 30
BATCH_K = 20


@pytest.fixture(scope="module")
def batch_api(
    suite_data_dir: Path, sample_dataset, tmp_path_factory
) -> Iterator[tuple[TestClient, dict, list]]:
    """The recommend API over a database holding a batch run (k=20) of the first 30 sample users."""
    from apps.recommender.api import plugin
    from apps.recommender.batch.job import run_batch
    from apps.recommender.config import BatchConfig
    from apps.recommender.model import ModelLoader
    from core.api import ApiSettings, create_app, wait_loaded

    db_url = f"sqlite:///{tmp_path_factory.mktemp('rec-batch-db') / 'aigc.db'}"
    users = [str(u) for u in sample_dataset.user_ids[:BATCH_USERS]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_DATA_DIR", str(tmp_path_factory.mktemp("rec-batch-work")))  # the job's work dir
        config = BatchConfig(k=BATCH_K, chunk_size=16)
        model = ModelLoader(suite_data_dir / "recommend" / "model")
        run_batch(model, None, users=users, config=config, db=db_url, show_progress_bar=False)
        patch.setenv("AIGC_DATA_DIR", str(suite_data_dir))
        patch.setenv("AIGC_DB_URL", db_url)
        app = create_app(ApiSettings(rate_per_s=0), plugins={"recommend": plugin()}, db_url=db_url)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert wait_loaded(app, 600) and client.get("/readyz").status_code == 200
            keys = make_keys(db_url)
            yield client, {"Authorization": f"Bearer {keys['analyst']}"}, users


def _service(client: TestClient):
    return client.app.state.services["recommend"].value


def test_batch_users_are_served_from_the_run_with_the_live_lists(batch_api) -> None:
    from apps.recommender.api import live_top_k

    client, headers, users = batch_api
    service = _service(client)
    assert service.batch.run() is not None and service.batch.run()[1] == BATCH_K
    for user in users:
        stored = service.batch.top_k(user, 10)
        assert stored is not None and len(stored) == 10  # this user is answered from the run
        body = client.get(f"/v1/recommend/users/{user}?k=10", headers=headers).json()
        live = live_top_k(service.model, user, 10)
        assert [i["item_id"] for i in body["items"]] == [item for _, item, _, _ in live]
        assert [i["rank"] for i in body["items"]] == list(range(1, 11))
        assert [i["score"] for i in body["items"]] == pytest.approx([s for _, _, s, _ in live], abs=1e-6)
        assert [i["reason"] for i in body["items"]] == [r for _, _, _, r in live]
        assert all(i["title"] for i in body["items"]) and body["known"] is True


def test_users_outside_the_run_larger_k_and_cold_start_are_scored_live(sample_dataset, batch_api) -> None:
    from apps.recommender.api import live_top_k

    client, headers, users = batch_api
    service = _service(client)
    outside = [str(u) for u in sample_dataset.user_ids[BATCH_USERS : BATCH_USERS + 5]]
    for user in outside:
        assert service.batch.top_k(user, 10) is None
        body = client.get(f"/v1/recommend/users/{user}?k=10", headers=headers).json()
        assert [i["item_id"] for i in body["items"]] == [
            item for _, item, _, _ in live_top_k(service.model, user, 10)
        ]
    assert service.batch.top_k(users[0], BATCH_K + 5) is None  # the run holds 20 per user
    body = client.get(f"/v1/recommend/users/{users[0]}?k={BATCH_K + 5}", headers=headers).json()
    assert len(body["items"]) == BATCH_K + 5
    assert [i["item_id"] for i in body["items"][:10]] == [
        item for _, item, _, _ in service.batch.top_k(users[0], 10)
    ]
    cold = client.get("/v1/recommend/users/never-seen-user?k=3", headers=headers).json()
    assert cold["known"] is False and len(cold["items"]) == 3  # the popular fallback stays
