"""URLs with a NUL character are refused before any route sees them.

``%00`` decodes to NUL in a path parameter (an id) or a query value, and PostgreSQL cannot hold
NUL in text: every lookup with it answered 500 there (SQLite merely found nothing). No valid
id, cursor or filter holds one, so the whole request is refused with a 400 that says why.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from spillway.api.errors import error_body
from spillway.api.responses import JSON

_MESSAGE = "the URL must not hold the NUL character (%00): no id, cursor or filter contains it"


class UrlTextMiddleware:
    """Pure ASGI: answers 400 when the decoded path or the query string holds NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            await JSON(error_body("bad_request", _MESSAGE), 400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query
