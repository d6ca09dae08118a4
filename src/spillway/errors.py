"""Error types. The worker decides whether to retry by ``isinstance``, never by name."""

from __future__ import annotations


class SpillwayError(Exception):
    """Base class for errors Spillway raises on purpose; the message is meant for a person."""


class TransientError(SpillwayError):
    """A failure that may go away on its own (timeout, throttling, 5xx): retry with backoff."""


class TerminalError(SpillwayError):
    """A failure that needs a person (access denied, missing bucket, bad key): stop and report."""


class InputError(SpillwayError):
    """The caller sent something we cannot use; maps to a 4xx answer with this message."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code


class NotFound(InputError):
    """The named object does not exist (or belongs to another project)."""

    status_code = 404
    code = "not_found"


class Conflict(InputError):
    """The name (or other unique value) is taken; the message says by what."""

    status_code = 409
    code = "conflict"


class TooLarge(InputError):
    """A request exceeded a configured size limit; the message names the limit."""

    status_code = 413
    code = "too_large"
