"""Errors of the HTTP API as JSON ``{"error": ..., "field": ...}`` with the right status, never a traceback.

Routers raise :class:`ApiError` (or let a known exception through: :func:`install_error_handlers`
maps validation errors to 422, ``KeyError``-style lookups are the router's job). Anything unexpected
is logged with its traceback on the server and answered with a plain 500 body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.generation import GenerationUnavailableError

logger = logging.getLogger(__name__)

# The documented error body, also used in the OpenAPI schema of every endpoint.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
    "required": ["error"],
}


class ApiError(Exception):
    """An error answered to the client as ``{"error": message, "field": field}``.

    Args:
        status: HTTP status code.
        message: What went wrong, for the client (no secrets, no internals).
        field: The request field at fault, dotted (``body.texts.3``), or ``None``.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error response."""
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.field, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "json_invalid":  # its loc is ("body", offset): a character, not an item
        offset = loc[1] if len(loc) > 1 else None
        message = "the body is not valid JSON" + (f" (at character {offset})" if offset is not None else "")
        loc = ("body",)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return error_response(422, message, _field_of(loc) or None)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(exc.status_code, detail, None, dict(exc.headers or {}))


async def _generation_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Generation unavailable", extra={"error": str(exc)})
    return error_response(503, "generation is unavailable right now; retry later", None, {"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unhandled error", extra={"path": request.url.path, "error": type(exc).__name__})
    return error_response(500, "internal server error (logged on the server)")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as the JSON error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(GenerationUnavailableError, _generation_unavailable)
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["ERROR_SCHEMA", "ApiError", "error_response", "install_error_handlers"]
