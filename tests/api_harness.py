"""A live API over all three apps for the endpoint, fuzz and README tests.

Import the fixtures into a test module (``from tests.api_harness import api, suite_data_dir, ...``).
``suite_data_dir`` holds each app's state as ``aigc prepare-demo`` would lay it out (the calibrated
sample KB, a tiny finance model with sentiment and topic heads, the recommender fitted on its
sample); ``api`` serves it in-process on a fresh SQLite database with one user and key per role.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir  # noqa: F401 - fixture
from tests.apps.customer_service.conftest import minilm, sample_kb_dir  # noqa: F401 - fixtures
from tests.apps.finance_monitor.model_fixtures import tiny_joint_dir  # noqa: F401 - fixture
from tests.apps.recommender.conftest import sample_dataset, sample_minilm_vectors  # noqa: F401 - fixtures
from tests.apps.recommender.sample_model import saved_sample_model

ROLES = ("agent", "kb_admin", "analyst", "admin")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def suite_data_dir(
    tmp_path_factory,
    calibrated_kb_dir,  # noqa: F811 - fixture imported above
    tiny_joint_dir,  # noqa: F811 - fixture imported above
    sample_dataset,  # noqa: F811 - fixture imported above
    sample_minilm_vectors,  # noqa: F811 - fixture imported above
) -> Path:
    """A data directory with the state of the three apps (read-only for tests)."""
    root = tmp_path_factory.mktemp("api-data")
    shutil.copytree(calibrated_kb_dir, root / "support" / "kb")
    shutil.copytree(tiny_joint_dir, root / "finance" / "models" / "news")
    model = saved_sample_model(tmp_path_factory.mktemp("rec-api"), sample_dataset, sample_minilm_vectors)
    shutil.copytree(model, root / "recommend" / "model")
    return root


def app_plugins() -> dict:
    """The three apps' API plugins (as the ``aigc.api`` entry points name them)."""
    from apps.customer_service.api import plugin as support
    from apps.finance_monitor.api import plugin as finance
    from apps.recommender.api import plugin as recommend

    return {"support": support(), "finance": finance(), "recommend": recommend()}


def make_keys(db_url: str) -> dict[str, str]:
    """One user per role (``user-<role>``) with a fresh API key each: ``role -> key``."""
    from core.auth import add_user, create_api_key

    keys = {}
    for role in ROLES:
        add_user(f"user-{role}", role, PASSWORD, engine=db_url)
        keys[role] = create_api_key(f"user-{role}", engine=db_url)[1]
    return keys


@dataclass
class LiveApi:
    """A started API: its test client, database URL and a key per role."""

    client: TestClient
    db_url: str
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        """``Authorization`` header with ``role``'s key."""
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(scope="module")
def api(suite_data_dir: Path, tmp_path_factory) -> Iterator[LiveApi]:
    """The API over the three apps, models loaded (one per test module; rate limits off)."""
    from core.api import ApiSettings, create_app, wait_loaded

    db_url = f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'aigc.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_DATA_DIR", str(suite_data_dir))
        patch.setenv("AIGC_DB_URL", db_url)
        patch.delenv("AIGC_GENERATION_URL", raising=False)
        app = create_app(ApiSettings(rate_per_s=0), plugins=app_plugins(), db_url=db_url)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert wait_loaded(app, 600)
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.json()
            yield LiveApi(client, db_url, make_keys(db_url))
