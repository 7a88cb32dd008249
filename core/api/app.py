"""The FastAPI application of ``aigc serve``: versioned app routers, health probes, auth, limits, errors.

Every installed app's router (entry points ``aigc.api``, see :mod:`core.api.plugin`) is mounted at
``/v1/<app>``; ``/healthz`` says the process is alive, ``/readyz`` that every app's models are loaded
and its database answers. The OpenAPI schema is at ``/openapi.json`` (docs at ``/docs``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from core import __version__
from core.api.auth import CachedVerifier, KeyVerifier, core_auth_verifier
from core.api.errors import ERROR_SCHEMA, install_error_handlers
from core.api.limits import BodySizeLimit, RateLimiter
from core.api.plugin import ApiPlugin, ServiceSlot, api_plugins
from core.api.settings import ApiSettings

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in (
        (401, "No valid API key"),
        (403, "The key's role may not do this"),
        (413, "Request body too large"),
        (422, "Invalid request"),
        (429, "Rate limit exceeded"),
        (503, "The app is loading or unavailable"),
    )
}


def create_app(
    settings: ApiSettings | None = None,
    plugins: Mapping[str, ApiPlugin] | None = None,
    verify_key: KeyVerifier | None = None,
    db_url: str | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        settings: Limits (default: :meth:`ApiSettings.from_env`).
        plugins: The apps to serve (default: every installed ``aigc.api`` plugin).
        verify_key: Key verifier (default: the suite's API keys in the database).
        db_url: Database of users, keys and the apps (default ``AIGC_DB_URL`` / the local SQLite file).

    Returns:
        The FastAPI app; its apps' models load in the background when it starts.
    """
    from core.schema import migrate
    from core.storage import create_engine

    settings = settings or ApiSettings.from_env()
    plugins = dict(api_plugins() if plugins is None else plugins)
    engine = create_engine(db_url)
    slots = {name: ServiceSlot(plugin) for name, plugin in plugins.items()}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        migrate(engine)  # users and keys (and every app's tables) exist before the first request
        threading.Thread(target=_load_all, args=(slots, engine), name="aigc-api-load", daemon=True).start()
        yield
        engine.dispose()

    app = FastAPI(
        title="aigc-suite API",
        version=__version__,
        description="Support bot, finance news monitor and recommender over HTTP. "
        "Authenticate with `Authorization: Bearer KEY` (`aigc users api-key NAME`).",
        lifespan=lifespan,
        responses=_ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.services = slots
    app.state.engine = engine
    app.state.rate_limiter = RateLimiter(settings.rate_per_s, settings.burst)
    app.state.verify_key = CachedVerifier(verify_key or core_auth_verifier(engine), settings.auth_cache_s)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for name, plugin in plugins.items():
        app.include_router(plugin.router, prefix=f"{API_PREFIX}/{name}", tags=[name])
    _add_probes(app, slots, engine)
    return app


def _load_all(slots: Mapping[str, ServiceSlot], engine: sa.Engine) -> None:
    for slot in slots.values():
        slot.load(engine)


def wait_loaded(app: FastAPI, timeout: float | None = None) -> bool:
    """Block until every app's load finished (ready or failed); ``False`` on timeout."""
    timeout = app.state.settings.load_timeout_s if timeout is None else timeout
    return all(slot.loaded.wait(timeout) for slot in app.state.services.values())


def _add_probes(app: FastAPI, slots: Mapping[str, ServiceSlot], engine: sa.Engine) -> None:
    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: models loaded, database reachable",
        responses={503: {"description": "Not ready (the body says what is missing)"}},
    )
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            checks["database"] = "ready"
        except Exception as err:  # noqa: BLE001 - any failure means "not ready"
            checks["database"] = f"unreachable: {type(err).__name__}"
        for name, slot in slots.items():
            checks[name] = slot.status()[1]
        ready = all(value == "ready" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


__all__ = ["API_PREFIX", "create_app", "wait_loaded"]
