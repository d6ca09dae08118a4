"""Error answers: always JSON ``{"error": code, "message": text}``, never a bare 500 for input."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from spillway import errors
from spillway.api.pinpoint import errors as pinpoint
from spillway.api.responses import JSON
from spillway.errors import InputError, TransientError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one shape of every error answer."""
    return {"error": code, "message": message, **extra}


def _describe(errors: list[Any]) -> str:
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        # A model's own check names the field in its message ("attributes.plan[0]: …").
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


@dataclass(frozen=True)
class Answer:
    """The status, ``error`` code and headers an error gets over HTTP."""

    status: int
    code: str
    headers: dict[str, str]


@functools.cache
def _table() -> list[tuple[type[InputError], int, str]]:
    # Imported on first use: spillway.errors reaches this module lazily, and these import it.
    from spillway.engine.targets import CredentialsUnreadable
    from spillway.ingest import BadGzip, BadJson, EmptyBatch, UnknownEncoding, UnknownMediaType
    from spillway.services.destinations import ValidationFailed
    from spillway.services.exports import BadExportSettings

    # The first row whose type matches wins: subclasses before their bases.
    return [
        (ValidationFailed, 422, "validation_failed"),
        (CredentialsUnreadable, 409, "credentials_unreadable"),
        (BadExportSettings, 422, "invalid_request"),
        (BadGzip, 400, "bad_gzip"),
        (BadJson, 400, "bad_json"),
        (EmptyBatch, 400, "empty_batch"),
        (UnknownEncoding, 415, "unsupported_encoding"),
        (UnknownMediaType, 415, "unsupported_media_type"),
        (errors.RateLimited, 429, "too_many_validations"),
        (errors.Busy, 503, "validation_busy"),
        (errors.Unauthorized, 401, "unauthorized"),
        (errors.Forbidden, 403, "forbidden"),
        (errors.NotFound, 404, "not_found"),
        (errors.Conflict, 409, "conflict"),
        (errors.NotApplicable, 409, "bad_request"),
        (errors.TooLarge, 413, "too_large"),
        (errors.Unsupported, 415, "unsupported_media_type"),
        (errors.Invalid, 422, "bad_request"),
        (errors.Malformed, 400, "bad_request"),
        (InputError, 400, "bad_request"),
    ]


def answer_for(exc: InputError) -> Answer:
    """The one mapping from a domain error to its HTTP answer."""
    status, code = next((s, c) for kind, s, c in _table() if isinstance(exc, kind))
    headers: dict[str, str] = {}
    if isinstance(exc, errors.Busy):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return Answer(status, code, headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON answers."""

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSON:
        if pinpoint.is_pinpoint(request.url.path):
            return pinpoint.answer_for(exc)
        answer = answer_for(exc)
        extra: dict[str, Any] = {}
        checks = getattr(exc, "checks", None)
        if checks is not None:
            extra["checks"] = [check.as_dict() for check in checks]
        return JSON(
            error_body(answer.code, str(exc), **extra), answer.status, headers=answer.headers
        )

    @app.exception_handler(TransientError)
    async def _transient(request: Request, exc: TransientError) -> JSON:
        log.warning("answering 503: %s", exc)
        if pinpoint.is_pinpoint(request.url.path):
            return pinpoint.answer_for(exc)
        return JSON(error_body("unavailable", str(exc)), 503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSON:
        errors = [
            {k: v for k, v in err.items() if k in ("loc", "msg", "type")} for err in exc.errors()
        ]
        if pinpoint.is_pinpoint(request.url.path):
            return pinpoint.answer(400, "BadRequestException", _describe(errors))
        return JSON(error_body("invalid_request", _describe(errors), details=errors), 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSON:
        # A bug, logged with its traceback; the client gets the error shape of its API.
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        if pinpoint.is_pinpoint(request.url.path):
            return pinpoint.answer_for(exc)
        return JSON(error_body("internal_error", "internal error; see the server log"), 500)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSON:
        if pinpoint.is_pinpoint(request.url.path):
            names = {404: "NotFoundException", 405: "MethodNotAllowedException"}
            return pinpoint.answer(
                exc.status_code, names.get(exc.status_code, "BadRequestException"), str(exc.detail)
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSON(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)
