"""``aigc serve --engine ray`` on a local Ray instance: one replica of the API over PostgreSQL.

Only the recommender is served (the lightest app to load) and the replica reserves half a CPU, so the
test stays lean; PostgreSQL is used when it answers (the shared store of a multi-machine layout),
else a SQLite file.
"""

from __future__ import annotations

import sys
import uuid

import pytest
import requests

from tests.conftest import POSTGRES_URL, _postgres_up
from tests.servers import free_port, server_env, start_process, stop_process, wait_http

pytest.importorskip("ray.serve", reason='Ray Serve is not installed (pip install "ray[serve]")')


@pytest.fixture
def shared_db_url(tmp_path):
    """A fresh schema on PostgreSQL when it answers, else a SQLite file."""
    if not _postgres_up():
        yield f"sqlite:///{tmp_path / 'aigc.db'}"
        return
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.mark.slow
def test_ray_serve_replica_answers(suite_data_dir, shared_db_url, tmp_path, sample_dataset) -> None:
    from tests.api_harness import make_keys

    env = server_env(tmp_path, AIGC_DATA_DIR=str(suite_data_dir), AIGC_DB_URL=shared_db_url)
    env.pop("RAY_ADDRESS", None)  # a local instance, started and stopped by the command
    port = free_port()
    log = tmp_path / "serve-ray.log"
    cmd = [
        sys.executable, "-m", "core.cli", "serve", "--engine", "ray", "--port", str(port),
        "--app", "recommend", "--replicas", "1", "--num-cpus", "0.5",
    ]  # fmt: skip
    proc = start_process(cmd, log, env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(proc, f"{url}/readyz", log, timeout_s=300)
        assert requests.get(f"{url}/readyz", timeout=10).json()["checks"] == {
            "database": "ready",
            "recommend": "ready",
        }
        keys = make_keys(shared_db_url)  # written to the shared database, read by the replica
        user = str(sample_dataset.user_ids[0])
        reply = requests.get(
            f"{url}/v1/recommend/users/{user}?k=3",
            headers={"Authorization": f"Bearer {keys['analyst']}"},
            timeout=30,
        )
        assert reply.status_code == 200 and len(reply.json()["items"]) == 3
        refused = requests.get(f"{url}/v1/recommend/users/{user}", timeout=30)
        assert refused.status_code == 401 and refused.json()["field"] == "header.authorization"
        paths = requests.get(f"{url}/openapi.json", timeout=30).json()["paths"]
        assert "/v1/recommend/users/{user_id}" in paths
    finally:
        stop_process(proc, timeout_s=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
