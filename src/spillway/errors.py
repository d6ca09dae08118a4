"""Error types that say what happened; the front door (``api/errors.py``, the CLI) decides how to
answer. The worker decides whether to retry by ``isinstance``, never by name."""

from __future__ import annotations


class SpillwayError(Exception):
    """Base class for errors Spillway raises on purpose; the message is meant for a person."""


class TransientError(SpillwayError):
    """A failure that may go away on its own (timeout, throttling, 5xx): retry with backoff."""


class TerminalError(SpillwayError):
    """A failure that needs a person (access denied, missing bucket, bad key): stop and report."""


class InputError(SpillwayError):
    """The caller asked for something Spillway will not do; the message says why."""


class Malformed(InputError):
    """The request cannot be used as sent: unreadable, the wrong shape, or naming nothing known."""


class Invalid(InputError):
    """A value breaks a rule; ``field`` names it (None when the reason names it already)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class Unsupported(InputError):
    """The request is in a form (encoding, media type) Spillway does not read."""


class NotFound(InputError):
    """The named object does not exist (or belongs to another project)."""


class Conflict(InputError):
    """The name (or other unique value) is taken, or the object's state forbids the change."""


class NotApplicable(InputError):
    """The action does not apply to this kind of object (a stream export has nothing to run)."""


class TooLarge(InputError):
    """A request exceeded a configured size limit; the message names the limit."""


class Unauthorized(InputError):
    """No usable credentials: missing, malformed, unknown or revoked."""


class Forbidden(InputError):
    """Valid credentials that may not do this."""


class Busy(InputError):
    """Spillway has no room for this work now; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(Busy):
    """The caller already has as much of this work running as it may."""
