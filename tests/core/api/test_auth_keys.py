"""API keys of the suite's database on a live app: verified once per cache period, revocation within it."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from core.api import ApiSettings, create_app, wait_loaded
from core.api.auth import core_auth_verifier
from core.auth import add_user, create_api_key, revoke_api_key
from core.schema import migrate
from core.storage import create_engine
from tests.core.api.test_app import auth, toy_plugin

CACHE_S = 1.0


def test_cached_keys_skip_the_database_and_revocation_applies_within_the_cache_period(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'aigc.db'}"
    engine = create_engine(url)
    migrate(engine)
    add_user("ann", "analyst", "correct horse battery", engine=url)
    info, key = create_api_key("ann", engine=url)
    real = core_auth_verifier(engine)
    lookups: list[str] = []

    def counted(k: str):  # the real verifier; only counts its database lookups
        lookups.append(k)
        return real(k)

    app = create_app(
        ApiSettings(auth_cache_s=CACHE_S, rate_per_s=0), plugins={"toy": toy_plugin()}, verify_key=counted,
        db_url=url,
    )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        assert wait_loaded(app, 30)
        for _ in range(20):
            reply = client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth(key))
            assert reply.status_code == 200 and reply.json()["user"] == "ann"
        assert len(lookups) <= 2  # one lookup per cache period, not one per request
        revoke_api_key(info.prefix, engine=url)
        revoked_at = time.monotonic()
        while client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth(key)).status_code == 200:
            assert time.monotonic() - revoked_at < CACHE_S + 1.0, "revoked key still accepted"
            time.sleep(0.05)
        reply = client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth(key))
        assert reply.status_code == 401 and reply.json()["field"] == "header.authorization"
    engine.dispose()
