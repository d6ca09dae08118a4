"""The Azure Blob SDK's settings, and what its errors say.

How long calls wait and retry, which errors the SDK raises, their codes and statuses, and the
fixed words that may stand in a message for an answer. No destination state lives here.
"""

from __future__ import annotations

import logging
import re
from enum import Enum
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    ServiceRequestError,
    ServiceResponseError,
)

from spillway.destinations.base import CredentialsRejected, DestinationError
from spillway.errors import TransientError

# The SDK traces every request at INFO; keep that out of Spillway's log unless asked for.
HTTP_LOG = logging.getLogger("spillway.destinations.azure_blob.http")
HTTP_LOG.setLevel(logging.WARNING)

# Retries inside the SDK stay short (its default first wait is 15 s): the engine retries whole
# runs with its own backoff, and validation should answer within seconds.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "initial_backoff": 1,
    "increment_base": 2,
    "connection_timeout": 5,
    "read_timeout": 60,
    "logger": HTTP_LOG,
}
MAX_BLOCKS = 50_000  # blocks Azure accepts in one blob
TRANSIENT_CODES = {"ServerBusy", "OperationTimedOut", "InternalError"}
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# The SAS or key was not accepted at all (Azurite answers AuthorizationFailure where Azure
# answers AuthenticationFailed; Azure also uses AuthorizationFailure for its firewall).
AUTH_CODES = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
}
# The signature is good, but the SAS does not allow this request.
SAS_LIMIT_CODES = {
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationSourceIPMismatch",
}
SIG_PARAM = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
# What a server that is not Azure Blob Storage makes the SDK raise: an answer it cannot read.
GARBLED_ERRORS: tuple[type[Exception], ...] = (
    DecodeError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    SyntaxError,  # xml.etree's ParseError
)
# Everything a store operation turns into a TransientError or DestinationError.
SDK_ERRORS: tuple[type[Exception], ...] = (AzureError, *GARBLED_ERRORS)


def error_code(exc: BaseException) -> str:
    """Azure's error code ('ContainerNotFound'…), or '' for errors without one.

    The code comes from the answer (a header or the XML body): anything but an identifier is
    dropped, so a server that is not Azure cannot put its own text into a message.
    """
    code = getattr(exc, "error_code", None)
    text = str(code.value) if isinstance(code, Enum) else str(code or "")
    return text if _CODE.match(text) else ""


def status_code(exc: BaseException) -> int:
    """The HTTP status of a service error (0 when no answer came)."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else 0


def needed_permission(exc: BaseException) -> str:
    """The SAS permission the refused request needed, from its method and query."""
    request = getattr(getattr(exc, "response", None), "request", None)
    method = str(getattr(request, "method", "")).upper()
    url = str(getattr(request, "url", ""))
    if method == "PUT":
        return "w (write)"
    if method == "DELETE":
        return "d (delete)"
    if "comp=list" in url:
        return "l (list)"
    return "r (read)"


# Why no answer came, in fixed words (the SDK's own text names internal objects and addresses).
_NETWORK_REASONS = (
    ("refused", "connection refused"),
    ("name or service not known", "DNS lookup failed"),
    ("nodename nor servname", "DNS lookup failed"),
    ("temporary failure in name resolution", "DNS lookup failed"),
    ("getaddrinfo", "DNS lookup failed"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("certificate", "TLS certificate not accepted"),
    ("ssl", "TLS handshake failed"),
    ("reset", "connection reset"),
    ("aborted", "connection aborted"),
)


def network_reason(exc: BaseException) -> str:
    """Why a request got no answer, in Spillway's words."""
    text = str(exc).lower()
    for words, said in _NETWORK_REASONS:
        if words in text:
            return said
    return exc.__class__.__name__


def status_text(code: str, status: int) -> str:
    """'ServerBusy, HTTP 503': what of an answer may appear in a message."""
    parts = [part for part in (code, f"HTTP {status}" if status else "") if part]
    return ", ".join(parts) or "no status"


def classify(exc: BaseException, message: str) -> Exception:
    """An SDK error as transient (retry later) or terminal (a person must act), saying
    ``message`` (the store's explanation)."""
    transient = (
        isinstance(exc, ServiceRequestError | ServiceResponseError)
        or error_code(exc) in TRANSIENT_CODES
        or status_code(exc) in TRANSIENT_STATUS
    )
    if transient:
        return TransientError(message)
    if error_code(exc) in AUTH_CODES or isinstance(exc, ClientAuthenticationError):
        return CredentialsRejected(message)  # the key or SAS itself was not accepted
    return DestinationError(message)
