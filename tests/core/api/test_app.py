"""The API service over a toy app: probes, API-key auth and roles, size and rate limits, JSON errors."""

from __future__ import annotations

import threading

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from core.api import ApiPlugin, ApiSettings, Principal, create_app, require, service_dependency, wait_loaded
from core.generation import QueueFullError

KEYS = {
    "key-analyst": Principal("ann", "analyst", "k1"),
    "key-agent": Principal("bob", "agent", "k2"),
}


class EchoIn(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=4)


def toy_plugin(load=lambda engine: {"greeting": "hi"}) -> ApiPlugin:
    router = APIRouter()
    toy = service_dependency("toy")

    @router.post("/echo")
    def echo(body: EchoIn, svc=Depends(toy), who: Principal = Depends(require("finance.view"))) -> dict:
        return {"greeting": svc["greeting"], "texts": body.texts, "user": who.user}

    @router.get("/boom")
    def boom(_svc=Depends(toy), _who: Principal = Depends(require("finance.view"))) -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    @router.get("/busy")
    def busy(_who: Principal = Depends(require("finance.view"))) -> dict:
        raise QueueFullError("the generation queue is full (8 waiting)")

    return ApiPlugin("toy", router, load)


def client_for(plugin: ApiPlugin | None = None, **settings) -> TestClient:
    app = create_app(ApiSettings(**settings), plugins={"toy": plugin or toy_plugin()}, verify_key=KEYS.get)
    return TestClient(app, raise_server_exceptions=False)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client():
    with client_for() as c:
        assert wait_loaded(c.app, 30)
        yield c


def test_probes_and_schema(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "checks": {"database": "ready", "toy": "ready"},
    }
    schema = client.get("/openapi.json").json()
    assert "/v1/toy/echo" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_authentication_and_roles(client) -> None:
    body = {"texts": ["a"]}
    missing = client.post("/v1/toy/echo", json=body)
    assert missing.status_code == 401 and missing.json()["field"] == "header.authorization"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/toy/echo", json=body, headers=auth("nope")).status_code == 401
    assert (
        client.post("/v1/toy/echo", json=body, headers={"Authorization": "Basic key-analyst"}).status_code
        == 401
    )
    forbidden = client.post("/v1/toy/echo", json=body, headers=auth("key-agent"))
    assert forbidden.status_code == 403 and "finance.view" in forbidden.json()["error"]
    ok = client.post("/v1/toy/echo", json=body, headers=auth("key-analyst"))
    assert ok.status_code == 200 and ok.json() == {"greeting": "hi", "texts": ["a"], "user": "ann"}


def test_validation_errors_name_the_field(client) -> None:
    bad = client.post("/v1/toy/echo", json={"texts": "not a list"}, headers=auth("key-analyst"))
    assert bad.status_code == 422
    assert bad.json()["field"] == "body.texts" and bad.json()["error"]
    too_many = client.post("/v1/toy/echo", json={"texts": ["a"] * 5}, headers=auth("key-analyst"))
    assert too_many.status_code == 422 and too_many.json()["field"] == "body.texts"
    broken = client.post(
        "/v1/toy/echo",
        content=b"{not json",
        headers={**auth("key-analyst"), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422 and set(broken.json()) == {"error", "field"}
    # Not "body.1": the offset is a character of the text, not an item of a list.
    assert broken.json() == {"error": "the body is not valid JSON (at character 1)", "field": "body"}


def test_unexpected_errors_are_json_without_internals(client) -> None:
    boom = client.get("/v1/toy/boom", headers=auth("key-analyst"))
    assert boom.status_code == 500
    assert boom.json() == {"error": "internal server error (logged on the server)", "field": None}
    assert "passwd" not in boom.text and "Traceback" not in boom.text
    busy = client.get("/v1/toy/busy", headers=auth("key-analyst"))
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5" and busy.json()["field"] is None
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "field"}


def test_body_size_limit() -> None:
    with client_for(max_body_bytes=200) as client:
        big = {"texts": ["x" * 300]}
        declared = client.post("/v1/toy/echo", json=big, headers=auth("key-analyst"))
        assert declared.status_code == 413 and declared.json()["field"] == "body"

        def chunks():  # no Content-Length: counted while it arrives
            yield b'{"texts": ["'
            yield b"x" * 300
            yield b'"]}'

        streamed = client.post(
            "/v1/toy/echo",
            content=chunks(),
            headers={**auth("key-analyst"), "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413


def test_rate_limit_per_key() -> None:
    with client_for(rate_per_s=0.01, burst=3) as client:
        wait_loaded(client.app, 30)
        codes = [client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth("key-analyst")).status_code
                 for _ in range(4)]  # fmt: skip
        assert codes == [200, 200, 200, 429]
        limited = client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth("key-analyst"))
        assert int(limited.headers["retry-after"]) >= 1 and "rate limit" in limited.json()["error"]
        # Another key has its own budget.
        assert (
            client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth("key-agent")).status_code == 403
        )


def test_loading_and_failed_apps_are_503_with_the_reason() -> None:
    release = threading.Event()

    def slow_load(_engine):
        release.wait(30)
        return {"greeting": "late"}

    with client_for(toy_plugin(slow_load)) as client:
        loading = client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth("key-analyst"))
        assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
        # Without a valid key: 401, the app's state is not for strangers.
        assert client.post("/v1/toy/echo", json={"texts": ["a"]}).status_code == 401
        assert client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth("wrong")).status_code == 401
        assert client.get("/readyz").json()["checks"]["toy"] == "loading"
        release.set()
        assert wait_loaded(client.app, 30)
        assert client.get("/readyz").status_code == 200

    def broken_load(_engine):
        raise FileNotFoundError("no model at /data/toy: run aigc prepare-demo")

    with client_for(toy_plugin(broken_load)) as client:
        wait_loaded(client.app, 30)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "prepare-demo" in ready.json()["checks"]["toy"]
        down = client.post("/v1/toy/echo", json={"texts": ["a"]}, headers=auth("key-analyst"))
        assert down.status_code == 503 and "prepare-demo" in down.json()["error"]
        stranger = client.post("/v1/toy/echo", json={"texts": ["a"]})
        assert stranger.status_code == 401 and "prepare-demo" not in stranger.text
        assert client.get("/healthz").status_code == 200
