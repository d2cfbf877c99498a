"""Typed errors and the one JSON shape every failure is answered with.

Why: a helpdesk integration branches on ``error.type`` (a stable identifier), shows ``message`` to a
person, and uses ``details[].index`` to find the offending post in the batch it sent. FastAPI's default
``{"detail": ...}`` shapes differ per error; here every handler answers::

    {"error": {"type": "validation_error", "message": "...",
               "details": [{"field": "posts[2].text", "index": 2, "problem": "..."}]}}

Error bodies never echo the submitted text (it may be personal data).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("frontline.serving")


class ErrorDetail(BaseModel):
    field: str | None = Field(None, description="Where the problem is, e.g. `posts[2].text`.", examples=["posts[2].text"])
    index: int | None = Field(None, description="Index of the offending post in `posts`, when there is one.", examples=[2])
    problem: str = Field(..., description="What is wrong there.", examples=["text is empty or only whitespace"])


class ErrorBody(BaseModel):
    type: str = Field(..., description="Stable machine-readable error type.", examples=["validation_error"])
    message: str = Field(..., description="Human-readable explanation.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Base of the service's typed errors: an HTTP status, a stable ``type`` and optional details."""

    status_code = 500
    type = "internal_error"

    def __init__(self, message: str, details: list[ErrorDetail] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers


class PostsInvalid(ApiError):
    status_code, type = 422, "validation_error"


class OperatingPointUnavailable(ApiError):
    """The call asked for a review trade-off (``review``) that the served model has no curves for."""

    status_code, type = 422, "operating_point_unavailable"


class TooManyPosts(ApiError):
    status_code, type = 413, "too_many_posts"


class UnsupportedMediaType(ApiError):
    status_code, type = 415, "unsupported_media_type"


class Unauthorized(ApiError):
    status_code, type = 401, "unauthorized"


class ModelUnavailable(ApiError):
    status_code, type = 503, "model_unavailable"


class Overloaded(ApiError):
    """Refused before queueing: the expected wait exceeds the queue deadline, or the queue is full (Retry-After)."""

    status_code, type = 429, "overloaded"


class RateLimited(ApiError):
    """This API key has spent its rate limit (Retry-After, RateLimit-* headers); other keys are unaffected."""

    status_code, type = 429, "rate_limited"


class InferenceFailed(ApiError):
    status_code, type = 500, "inference_failed"


class ReloadFailed(ApiError):
    status_code, type = 500, "reload_failed"


class ModelNotFound(ApiError):
    """A reload named no loadable frontline model (nothing there, not a frontline model, or labels that
    differ from the service's): the caller's mistake, not the server's. The previous model keeps serving."""

    status_code, type = 404, "model_not_found"


def error_json(status: int, type_: str, message: str, details: list[ErrorDetail] | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(type=type_, message=message, details=details or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> tuple[str | None, int | None]:
    """``("body", "posts", 2, "text")`` → ``("posts[2].text", 2)``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    path, index = "", None
    for i, p in enumerate(parts):
        if isinstance(p, int):
            path += f"[{p}]"
            if i > 0 and parts[i - 1] == "posts" and index is None:
                index = p
        else:
            path += ("." if path else "") + str(p)
    return (path or "body"), index


_STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
                 429: "overloaded", 503: "model_unavailable"}

# status → description, for every route's OpenAPI ``responses=``
DESCRIPTIONS = {
    400: "The body could not be read (it is not UTF-8 text).",
    401: "Missing or invalid API key.",
    413: "Too many posts in one call (or body too large).",
    415: "Content-Type is not application/json.",
    404: "No loadable frontline model at that URI (the previous model keeps serving).",
    422: "Malformed JSON, or one or more invalid posts (every bad post is listed by index), or a `review` "
         "operating point the served model cannot give.",
    429: "Refused at once, before queueing: `overloaded` (the expected wait for an answer exceeds the service's "
         "queue deadline, or the queue is full) or `rate_limited` (this API key's rate limit is spent; other keys "
         "are unaffected). Retry after the Retry-After seconds.",
    500: "Unexpected failure (for reload: the previous model keeps serving).",
    503: "No model loaded yet (or loading failed).",
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer"}}


RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": _header("Calls allowed in the window of the tightest rate limit (when rate limits are on)."),
    "RateLimit-Remaining": _header("Calls left in that window."),
    "RateLimit-Reset": _header("Seconds until that window frees a call."),
}

# status → response headers, for the OpenAPI of every route that can answer it
HEADERS: dict[int, dict[str, Any]] = {
    429: {"Retry-After": _header("Seconds to wait before retrying."), **RATE_LIMIT_HEADERS},
    503: {"Retry-After": _header("Seconds to wait before retrying.")},
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries, all with the ``ErrorResponse`` body (and their headers, where they have some)."""
    return {c: {"model": ErrorResponse, "description": DESCRIPTIONS[c], **({"headers": HEADERS[c]} if c in HEADERS else {})}
            for c in codes}


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_json(exc.status_code, exc.type, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        pos = e["loc"][1] if len(e.get("loc", ())) > 1 else None
        reason = (e.get("ctx") or {}).get("error", "invalid JSON")
        return error_json(422, "malformed_json", f"The request body is not valid JSON ({reason} at character {pos}).",
                          [ErrorDetail(field="body", problem=f"{reason} at character {pos}")])
    details = []
    for e in errors:
        path, index = field_path(e.get("loc", ()))
        if e.get("type") == "missing" and path == "body":
            problem = "a JSON body is required"
        else:
            problem = str(e.get("msg", "invalid"))  # pydantic messages do not contain the input value
        details.append(ErrorDetail(field=path, index=index, problem=problem))
    return error_json(422, "validation_error", f"The request is not valid: {len(details)} problem(s), see details.",
                      details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    type_ = _STATUS_TYPES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 413:
        message = f"Request body too large: {message}"
    return error_json(exc.status_code, type_, message, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_json(500, "internal_error", "Unexpected server error; it has been logged.")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into an ``ErrorResponse``."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
