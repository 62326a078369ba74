"""The one table from the project's errors to HTTP status codes, and the error body.

404 an unknown job, 409 a state or an existing id that forbids the request, 422 something
invalid in the request (a job's TOML, a message, a parameter), 503 the control plane is not
reachable (Redis down, no supervisor registered yet). Never a 200 with an error inside.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from enrgdaq.api.schemas import Problem
from enrgdaq.control.masking import mask_text
from enrgdaq.errors import (
    ConfigError,
    ControlPlaneError,
    JobConflictError,
    JobNotFoundError,
    MessageError,
    MessagePayloadError,
)

logger = logging.getLogger(__name__)

STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (JobNotFoundError, 404),
    (JobConflictError, 409),
    (ConfigError, 422),
    (MessageError, 422),
    (ControlPlaneError, 503),
    (redis.RedisError, 503),
)
"""First match wins: JobNotFoundError is a ControlPlaneError too."""

_MEANING = {
    401: "The API token is missing or wrong",
    404: "No such job",
    409: "The job's state, or an existing job or file, forbids it",
    422: "Invalid request: the field is named",
    503: "Redis or the supervisor is not reachable",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of an endpoint, for the OpenAPI document (always 401, 422 and 503)."""
    wanted = sorted({401, 422, 503, *codes})
    return {code: {"model": Problem, "description": _MEANING[code]} for code in wanted}


def problem(code: int, detail: str, **where: object) -> JSONResponse:
    body = {"detail": mask_text(detail), **{k: v for k, v in where.items() if v is not None}}
    return JSONResponse(body, status_code=code)


def _handle(_request: Request, exc: Exception) -> JSONResponse:
    code = next(c for t, c in STATUS_OF if isinstance(exc, t))
    if isinstance(exc, ConfigError):
        return problem(code, exc.message, field=exc.field, file=exc.file, line=exc.line)
    if isinstance(exc, MessagePayloadError):
        return problem(code, str(exc), field=exc.field)
    if isinstance(exc, redis.RedisError):
        logger.warning("Redis did not answer: %s", exc)
        return problem(code, f"Redis of the control plane does not answer ({type(exc).__name__})")
    return problem(code, str(exc))


def _validation(_request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    field = ".".join(str(p) for p in first.get("loc", ()))
    return problem(422, str(first.get("msg", "invalid request")), field=field)


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = problem(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


def install(app: FastAPI) -> None:
    for error_type, _code in STATUS_OF:
        app.add_exception_handler(error_type, _handle)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
