"""How an app contributes to the HTTP API: an :class:`ApiPlugin` announced in the ``aigc.api`` entry points.

``core`` never imports ``apps``: each app's ``api.py`` builds an ``APIRouter`` over its own plain
functions and names, in ``pyproject.toml``, a function returning its plugin. The service mounts the
router at ``/v1/<name>`` and calls ``load`` once per process (per Ray Serve replica) in the
background, so models are loaded once and ``/readyz`` says when they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.engine import Engine

from core.api.errors import ApiError
from core.plugins import load_group

logger = logging.getLogger(__name__)

GROUP_API = "aigc.api"


@dataclass(frozen=True)
class BenchRequest:
    """One request of the load benchmark (``aigc bench api``).

    Attributes:
        name: Label in the report (e.g. ``classify``).
        method: HTTP method.
        path: Path with query string, under the service root.
        body: JSON body, or ``None``.
        items: Work units in one request (texts classified), for units/s.
        label_field: A field of the JSON answer whose value splits the report (``route``: quoted
            and generated answers are reported apart).
    """

    name: str
    method: str
    path: str
    body: Any = None
    items: int = 1
    label_field: str | None = None


@dataclass(frozen=True)
class ApiPlugin:
    """What one app contributes to the HTTP API.

    Attributes:
        name: Mount name: the router is served under ``/v1/<name>``.
        router: The app's endpoints (paths relative to the mount).
        load: Builds the app's service object (models, stores) once per process, given the
            service's database engine.
        check: Raises when a loaded service cannot serve (e.g. its database is unreachable).
        bench_requests: Sample requests for the load benchmark (``aigc bench api``), over the app's
            shipped sample data, which the demo state is built from.
    """

    name: str
    router: APIRouter
    load: Callable[[Engine], Any]
    check: Callable[[Any], None] | None = None
    bench_requests: Callable[[], list[BenchRequest]] | None = None


@dataclass
class ServiceSlot:
    """One app's service in this process: loading, loaded, or failed with the reason."""

    plugin: ApiPlugin
    value: Any = None
    error: str | None = None
    loaded: threading.Event = field(default_factory=threading.Event)

    def load(self, engine: Engine) -> None:
        """Load the service now (errors are kept as the reason the app is not ready)."""
        try:
            self.value = self.plugin.load(engine)
        except Exception as err:  # noqa: BLE001 - one app failing must not stop the others
            logger.warning("API app not ready", extra={"app": self.plugin.name, "error": str(err)})
            known = isinstance(err, OSError | ValueError)
            self.error = str(err) if known else f"{type(err).__name__}: {err}"
        finally:
            self.loaded.set()

    def status(self) -> tuple[bool, str]:
        """``(ready, detail)``: loaded and passing its check."""
        if not self.loaded.is_set():
            return False, "loading"
        if self.error is not None:
            return False, self.error
        if self.plugin.check is not None:
            try:
                self.plugin.check(self.value)
            except Exception as err:  # noqa: BLE001 - a failing probe is a "not ready", not a crash
                return False, str(err) or type(err).__name__
        return True, "ready"


def api_plugins() -> dict[str, ApiPlugin]:
    """Every installed app's :class:`ApiPlugin` (entry points of group ``aigc.api``)."""
    plugins = {}
    for name, factory in load_group(GROUP_API).items():
        try:
            plugins[name] = factory()
        except Exception:  # noqa: BLE001 - one broken app must not take the API down
            logger.exception("API plugin failed", extra={"plugin": name})
    return plugins


def service(request: Request, name: str) -> Any:
    """The loaded service of app ``name`` for an endpoint.

    Raises:
        ApiError: 503 while it loads or when it could not be loaded (with the reason).
    """
    slot: ServiceSlot | None = request.app.state.services.get(name)
    if slot is None:
        raise ApiError(404, f"no app {name!r} in this service")
    if not slot.loaded.is_set():
        raise ApiError(503, f"{name} is still loading its models", headers={"Retry-After": "5"})
    if slot.error is not None:
        raise ApiError(503, f"{name} is not available: {slot.error}")
    return slot.value


def service_dependency(name: str) -> Callable[..., Any]:
    """A FastAPI dependency returning app ``name``'s loaded service, for an authenticated caller only.

    The key is checked first (FastAPI runs ``authenticate`` once per request, shared with the route's
    ``require``), so a caller without a valid key gets 401, never an app's loading state or load error.
    """
    from core.api.auth import Principal, authenticate

    async def dependency(request: Request, _principal: Principal = Depends(authenticate)) -> Any:
        return service(request, name)  # no blocking work: stays on the event loop

    dependency.__name__ = f"{name}_service"
    return dependency


__all__ = [
    "GROUP_API",
    "ApiPlugin",
    "BenchRequest",
    "ServiceSlot",
    "api_plugins",
    "service",
    "service_dependency",
]
