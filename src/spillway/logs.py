"""Logging set-up: Spillway's own loggers at the chosen level, every other library at WARNING,
and a filter that redacts secrets from every line (DESIGN.md invariant 5: secrets never leave).

Cloud SDKs log whole requests and answers at DEBUG: botocore prints the session token in the
signed headers and the secret key of an AssumeRole answer, the Azure and Google SDKs print
authorization headers and token answers. So their loggers stay at WARNING whatever
``SPILLWAY_LOG_LEVEL`` says; ``SPILLWAY_LOG_LEVEL_THIRD_PARTY`` lowers them for a debugging
session (unsafe: what those libraries print at DEBUG is exactly what this module exists to
keep out). The redacting filter is defence in depth on every handler, whatever logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
# Loggers that follow SPILLWAY_LOG_LEVEL; everything else inherits the root's level. Not
# alembic: it prints its set-up at INFO on every start, even with nothing to upgrade (the
# schema's upgrades are logged by spillway.store.db instead).
OWN_LOGGERS = ("spillway", "uvicorn")
THIRD_PARTY_DEFAULT = "WARNING"

# Field names whose value is a secret, in any of the shapes SDKs print them: JSON or a Python
# repr ("name": "v", 'name': b'v'), a query string or connection string (name=v&, name=v;),
# an HTTP header or canonical request line (name: v, name:v), XML (<Name>v</Name>).
_SECRET_NAMES = (
    r"(?:aws_)?secret_?access_?key|secret_?key|(?:aws_)?session_?token|security_?token"  # noqa: S105
    r"|x-amz-security-token|(?:x-amz-)?signature|account_?key|shared_?access_?signature"
    r"|sas_?token|sig|private_?key(?:_?id)?|client_?secret|refresh_?token|access_?token"
    r"|id_?token|assertion|password|passwd|secret|token|credentials?_?sealed"
)
# A Python bytes repr's prefix: b'…' (and only that, so the b of a value is not skipped).
_BYTES = r"(?:(?-i:b)(?=\\*[\"']))?"
_FIELD = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_SECRET_NAMES})(\\*[\"']?\s*[:=]\s*{_BYTES}\\*[\"']?)"
    r"(?!\[redacted\])([^\s\"'<>&,;)}\]\\]+)"
)
_XML = re.compile(rf"(?i)(<({_SECRET_NAMES})>)([^<]+)(</)")
# The whole value of an Authorization header: the scheme and what follows it.
_AUTHORIZATION = re.compile(
    rf"(?i)((?:proxy-)?authorization\\*[\"']?\s*[:=]\s*{_BYTES}\\*[\"']?)"
    r"(?!\[redacted\])([^\"'\r\n\\]+)"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)(?!\[redacted\])([A-Za-z0-9._~+/=-]+)")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY"
    r"( BLOCK)?-----|[^\"']*)",
    re.DOTALL,
)


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[redacted]``."""
    if "-----BEGIN" in text:
        text = _PRIVATE_KEY.sub(REDACTED, text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _XML.sub(lambda m: m.group(1) + REDACTED + m.group(4), text)
    return _FIELD.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Renders each record once, redacted, so no handler or formatter can print a secret.

    The message (with its arguments), the traceback and the stack are replaced by their
    redacted text; the record always passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show what was given rather than lose it
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure(level: str, third_party_level: str | None = None) -> None:
    """Log to stderr: Spillway (and uvicorn) at ``level``, other libraries at WARNING (or at
    ``third_party_level`` when the operator asks), every line redacted."""
    own = _level(level)
    others = _level(third_party_level or THIRD_PARTY_DEFAULT)
    logging.basicConfig(level=others, format=FORMAT)
    root = logging.getLogger()
    root.setLevel(others)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
    install_filter(root.handlers)
    logging.getLogger(__name__).debug(
        "logging at %s; other libraries at %s%s",
        logging.getLevelName(own),
        logging.getLevelName(others),
        " (SPILLWAY_LOG_LEVEL_THIRD_PARTY: unsafe)" if others < logging.WARNING else "",
    )


def install_filter(handlers: Iterable[logging.Handler]) -> None:
    """Add the redacting filter to each handler that lacks it."""
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _level(name: str) -> int:
    value = logging.getLevelName(name.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {name!r}: use DEBUG, INFO, WARNING or ERROR")
    return value
