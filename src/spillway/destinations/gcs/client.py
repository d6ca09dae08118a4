"""The Cloud Storage SDK's settings, and the sorting of what it raises.

What a call may wait, how it retries, which errors are Google's and which are worth another
try, and the token endpoint's refusals in Spillway's words. No destination state lives here.
"""

from __future__ import annotations

import re

import google.api_core.exceptions as api_errors
import google.auth.exceptions as auth_errors
import requests
from google.api_core.retry import Retry
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY

from spillway.destinations.base import (
    VALIDATION_READ_TIMEOUT,
    CredentialsRejected,
    DestinationError,
    is_validating,
)
from spillway.errors import TransientError

# Resumable uploads take chunks in multiples of 256 KiB (all but the last).
CHUNK_MULTIPLE = 256 * 1024
CRC32C_TEXT = re.compile(r"^[A-Za-z0-9+/]{6}==$")
# Objects only: read, write, list, delete. Never bucket or IAM administration.
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# The SDK's retry (5xx, 429, connection resets) kept short: the engine retries whole runs.
RETRY: Retry = DEFAULT_RETRY.with_timeout(30.0)
TIMEOUT = 60.0


def call_retry() -> Retry:
    """The SDK's retry: none inside a validation (it should answer within seconds)."""
    return DEFAULT_RETRY.with_timeout(0.0) if is_validating() else RETRY


def call_timeout() -> float:
    """Per-call timeout: short inside a validation."""
    return VALIDATION_READ_TIMEOUT if is_validating() else TIMEOUT


# What the SDK raises when an answer is not what Cloud Storage sends (a server behind a custom
# endpoint that is something else): its parsing trips over a body it cannot read.
GARBLED_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, AttributeError, KeyError)
# Everything the SDK, google-auth and requests raise for a failed call.
GOOGLE_ERRORS: tuple[type[Exception], ...] = (
    api_errors.GoogleAPIError,
    auth_errors.GoogleAuthError,
    requests.RequestException,
    InvalidResponse,
    DataCorruption,
    *GARBLED_ERRORS,
)
# Failures worth another try within the same upload session.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    api_errors.TooManyRequests,
    api_errors.ServerError,
    auth_errors.TransportError,
    requests.ConnectionError,
    requests.Timeout,
    TransientError,
)


def chunk_size(part_size: int) -> int:
    """``part_size`` rounded up to a multiple of 256 KiB."""
    return max(CHUNK_MULTIPLE, -(-part_size // CHUNK_MULTIPLE) * CHUNK_MULTIPLE)


def as_api_error(exc: BaseException) -> BaseException:
    """The resumable-upload layer raises InvalidResponse; give it the API error's shape."""
    if isinstance(exc, api_errors.RetryError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, InvalidResponse) and getattr(exc, "response", None) is not None:
        error: BaseException = api_errors.from_http_response(exc.response)  # type: ignore[no-untyped-call]
        return error
    return exc


# What of a remote answer may appear in a message: short identifiers, never free text.
_REASON = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def _reason_of(exc: api_errors.GoogleAPICallError) -> str | None:
    """The answer's machine-readable reason ('forbidden', 'notFound'…) when it has one."""
    for error in exc.errors or ():
        reason = error.get("reason") if isinstance(error, dict) else None
        if isinstance(reason, str) and _REASON.match(reason):
            return reason
    return None


def detail(exc: api_errors.GoogleAPICallError) -> str:
    """HTTP status and reason code of a refused call. The answer's message is not repeated:
    behind a custom endpoint it is whatever that server sent (an HTML page, a proxy's error)."""
    code = f"HTTP {exc.code}" if isinstance(exc.code, int) else "no status"
    reason = _reason_of(exc)
    return f"{code} {reason}" if reason else code


# Google's token endpoint's known refusals: (words in its answer, what Spillway says, the fix).
# Only these fixed phrases reach a message; the answer's own text never does.
_REFUSALS = (
    (
        "invalid jwt signature",
        "Invalid JWT Signature",
        "the key was deleted or disabled in the Cloud console, or its private_key does not "
        "belong to its private_key_id: create a new JSON key",
    ),
    (
        "short-lived token",
        "the token request's time is out of range",
        "the Spillway server's clock is off: synchronise it (NTP)",
    ),
    (
        "not a valid email",
        "unknown service account",
        "the service account does not exist (was it deleted?): check client_email",
    ),
    (
        "not found",
        "unknown service account",
        "the service account does not exist (was it deleted?): check client_email",
    ),
    (
        "disabled",
        "account disabled",
        "the service account is disabled: enable it in IAM & Admin → Service accounts",
    ),
)


def refusal(exc: auth_errors.RefreshError) -> str:
    """Why the token endpoint refused, in Spillway's words, with the likely fix.

    google-auth puts the endpoint's answer into the error (the whole body when it is not
    JSON); only the OAuth error code, when it is one, is repeated from it.
    """
    data = next((arg for arg in exc.args[1:] if isinstance(arg, dict)), None)
    code = data.get("error") if data is not None else None
    shown_code = code if isinstance(code, str) and _REASON.match(code) else None
    description = data.get("error_description") if data is not None else None
    lowered = f"{code} {description}".lower() if data is not None else ""
    if data is None:
        return (
            "the token endpoint did not answer like Google's (no OAuth error in JSON); check "
            "the key's token_uri, and the network, proxy and firewall of the Spillway server"
        )
    for words, said, cause in _REFUSALS:
        if words in lowered:
            label = f"{shown_code}: {said}" if shown_code else said
            return f"{label} ({cause})"
    label = shown_code or "no error code"
    return f"{label} (check that the key and its service account still exist and are enabled)"


def classify(exc: BaseException, message: str) -> Exception:
    """Transient (the engine retries later) or terminal (a person must act), saying ``message``
    (the store's explanation); what is already sorted stays as it is."""
    api = as_api_error(exc)
    if isinstance(api, DestinationError | TransientError):
        return api
    transient = isinstance(
        api,
        api_errors.TooManyRequests
        | api_errors.ServerError
        | api_errors.RetryError
        | auth_errors.TransportError
        | requests.ConnectionError
        | requests.Timeout
        | DataCorruption,
    ) or (isinstance(api, auth_errors.RefreshError) and bool(api.retryable))
    if transient:
        return TransientError(message)
    if isinstance(api, api_errors.Unauthorized | auth_errors.RefreshError):
        return CredentialsRejected(message)  # the key itself: deleted, disabled, revoked
    return DestinationError(message)
