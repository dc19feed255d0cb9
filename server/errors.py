"""One shape for every error the API answers: `{"error": "<the CLI's one line>"}` and a
status that says whose fault it was. Never a traceback."""

from __future__ import annotations

import json
from typing import Any

import structlog
from sagactl.engine import InputError, RunNotFound, SagaError
from sagactl.engine.store import RunBusy
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = structlog.get_logger("sagactl.server")


class ApiError(Exception):
    """Answer `status` with `message` (raised by handlers and helpers)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def problem(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def status_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, RunNotFound):
        return 404
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, RunBusy):
        return 409
    if isinstance(exc, SagaError):
        return 409
    return 500


async def handle(request: Request, exc: Exception) -> Response:
    status = status_for(exc)
    if status == 500:
        log.exception("request failed", path=request.url.path)
        return problem(500, "internal error: see the server's log")
    message = exc.message if isinstance(exc, ApiError) else str(exc)
    return problem(status, message.splitlines()[0] if message else type(exc).__name__)


async def handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail))


async def read_json(request: Request, cap: int) -> Any:
    """The request's JSON body, at most `cap` bytes (413 beyond, 400 when not JSON)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise ApiError(413, f"request body over the limit of {cap} bytes")
    if not body:
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not JSON: {exc}") from None
