"""The suite's HTTP API (``aigc serve``): app factory, API-key auth, limits, errors, app plugins.

Apps contribute routers through the ``aigc.api`` entry points (:class:`ApiPlugin`); ``core`` never
imports ``apps``. See :mod:`core.api.app` for the service and :mod:`core.api.serve` for running it
locally (uvicorn) or on Ray Serve.
"""

from core.api.app import API_PREFIX, create_app, wait_loaded
from core.api.auth import Principal, authenticate, require
from core.api.errors import ApiError
from core.api.plugin import ApiPlugin, BenchRequest, service_dependency
from core.api.settings import ApiSettings

__all__ = [
    "API_PREFIX",
    "ApiError",
    "ApiPlugin",
    "ApiSettings",
    "BenchRequest",
    "Principal",
    "authenticate",
    "create_app",
    "require",
    "service_dependency",
    "wait_loaded",
]
