"""Error answers: always JSON ``{"error": code, "message": text}``, never a bare 500 for input."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from spillway import errors, fielderrors
from spillway.api.pinpoint import errors as pinpoint
from spillway.api.responses import JSON
from spillway.errors import InputError, TransientError

log = logging.getLogger(__name__)

# The codes of the two input errors every route may answer (the rest are in the table below).
MALFORMED = "bad_request"  # 400: the request cannot be read or used as sent
INVALID = "invalid_request"  # 422: a value breaks a rule; the message names the field


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one shape of every error answer."""
    return {"error": code, "message": message, **extra}


class ErrorBody(BaseModel):
    """The shape of :func:`error_body`, for the OpenAPI schema only (answers are built as
    dicts): some answers add fields (``details``, ``checks``, an ingest's counts)."""

    model_config = ConfigDict(extra="allow", title="Error")
    error: str = Field(description="A stable code to branch on, such as `not_found`.")
    message: str = Field(description="What went wrong and what to do, in words.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="With `invalid_request`: each field that failed and why."
    )
    checks: list[dict[str, Any]] | None = Field(
        default=None, description="With `validation_failed`: every check that ran."
    )


def _describe(errors: list[Any], model: type[BaseModel] | None = None) -> str:
    """``field: what is expected; …`` in people's words (see :mod:`spillway.fielderrors`)."""
    return fielderrors.describe(errors, model=model, limit=10)


def _body_model(request: Request) -> type[BaseModel] | None:
    """The request model of the route that refused the body, to suggest a misspelt field."""
    field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(field, "field_info", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


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
    from spillway.services.jobs import TooManyJobs

    # The first row whose type matches wins: subclasses before their bases.
    return [
        (ValidationFailed, 422, "validation_failed"),
        (CredentialsUnreadable, 409, "credentials_unreadable"),
        (BadExportSettings, 422, INVALID),
        (BadGzip, 400, "bad_gzip"),
        (BadJson, 400, "bad_json"),
        (EmptyBatch, 400, "empty_batch"),
        (UnknownEncoding, 415, "unsupported_encoding"),
        (UnknownMediaType, 415, "unsupported_media_type"),
        (TooManyJobs, 429, "too_many_jobs"),
        (errors.RateLimited, 429, "too_many_validations"),
        (errors.Busy, 503, "validation_busy"),
        (errors.Unauthorized, 401, "unauthorized"),
        (errors.Forbidden, 403, "forbidden"),
        (errors.NotFound, 404, "not_found"),
        (errors.Conflict, 409, "conflict"),
        (errors.NotApplicable, 409, "not_applicable"),
        (errors.TooLarge, 413, "too_large"),
        (errors.Unsupported, 415, "unsupported_media_type"),
        # One code per meaning (docs/api.md, "Error codes"): a value that breaks a rule is
        # invalid_request wherever it is met, by a request model or by a service.
        (errors.Invalid, 422, INVALID),
        (errors.Malformed, 400, MALFORMED),
        (InputError, 400, MALFORMED),
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
            return pinpoint.answer(400, "BadRequestException", _describe(list(exc.errors())))
        # Described from the full errors (their limits and allowed values); ``details`` keeps
        # only loc, msg and type: never the input, which may be a secret.
        message = _describe(list(exc.errors()), _body_model(request))
        return JSON(error_body(INVALID, message, details=errors), 422)

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
