"""Error answers: always JSON ``{"error": code, "message": text}``, never a bare 500 for input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

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


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON answers."""

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSON:
        headers = dict(getattr(exc, "headers", None) or {})  # e.g. Retry-After of a 429
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        extra: dict[str, Any] = {}
        checks = getattr(exc, "checks", None)
        if checks is not None:
            extra["checks"] = [check.as_dict() for check in checks]
        return JSON(error_body(exc.code, str(exc), **extra), exc.status_code, headers=headers)

    @app.exception_handler(TransientError)
    async def _transient(_: Request, exc: TransientError) -> JSON:
        log.warning("answering 503: %s", exc)
        return JSON(error_body("unavailable", str(exc)), 503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSON:
        errors = [
            {k: v for k, v in err.items() if k in ("loc", "msg", "type")} for err in exc.errors()
        ]
        return JSON(error_body("invalid_request", _describe(errors), details=errors), 422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSON:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSON(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)
