"""Errors on the Pinpoint-compatible routes, in the form botocore parses: the code in the
``x-amzn-ErrorType`` header, ``{"Message", "RequestID"}`` in the body (PascalCase, so that
``e.response["Message"]`` is filled), the request id in ``x-amzn-RequestId`` too."""

from __future__ import annotations

import uuid

from spillway import errors
from spillway.api.responses import JSON

PREFIX = "/v1/"

# Domain error → (status, Pinpoint's code). The first matching row wins: subclasses first.
_TABLE: list[tuple[type[Exception], int, str]] = [
    (errors.NotFound, 404, "NotFoundException"),
    (errors.Unauthorized, 403, "ForbiddenException"),
    (errors.Forbidden, 403, "ForbiddenException"),
    (errors.TooLarge, 413, "PayloadTooLargeException"),
    (errors.Busy, 429, "TooManyRequestsException"),
    (errors.InputError, 400, "BadRequestException"),
    (errors.TransientError, 429, "TooManyRequestsException"),
]


def is_pinpoint(path: str) -> bool:
    """Whether a request path is one of the Pinpoint-compatible routes."""
    return path.startswith(PREFIX)


def answer(status: int, code: str, message: str) -> JSON:
    """A Pinpoint error response."""
    request_id = str(uuid.uuid4())
    return JSON(
        {"Message": message, "RequestID": request_id},
        status,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
    )


def answer_for(exc: Exception) -> JSON:
    """The Pinpoint answer for an exception (500 InternalServerErrorException for a bug)."""
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            return answer(status, code, str(exc))
    return answer(500, "InternalServerErrorException", "Internal server error")
