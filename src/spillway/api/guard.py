"""Nothing heavy before authentication: the key and the body limit are checked first.

:class:`GuardMiddleware` (pure ASGI) sits in front of every ``/api/v1`` route. Before a byte of
the body is read it checks the bearer key (off the event loop, with a short cache of keys that
passed) and answers 401 without reading the body; then it holds the body to the route's limit:
a ``Content-Length`` over it is answered 413 at once, and a body without one (chunked) is
counted as it streams in and cut off with 413 as soon as it passes the limit. The principal it
found is left in the request state, where the route dependencies (``api/deps.py``) take it.

The Pinpoint-compatible routes (``/v1/``) are signed with SigV4 instead: the guard parses the
``Authorization`` header and finds the key and its secret (403 ``ForbiddenException`` when
either is missing) before the body is read; the route then checks the signature over the body
(``api/pinpoint/auth.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spillway.api.errors import answer_for, error_body
from spillway.api.pinpoint import sigv4
from spillway.api.pinpoint.errors import answer_for as pinpoint_answer
from spillway.api.pinpoint.errors import is_pinpoint
from spillway.api.responses import JSON
from spillway.errors import Forbidden, InputError, TooLarge, Unauthorized
from spillway.secrets import SecretBox
from spillway.services.projects import Principal, parse_bearer, secret_of, verify
from spillway.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
# A key that passed is trusted again, without a query, for this long: a revoked key stops
# working within these seconds. Only keys that passed are kept, so bad tokens cannot fill it.
CACHE_SECONDS = 3.0
CACHE_ENTRIES = 10_000
# Key lookups run in these threads, apart from the pool that runs sync routes.
AUTH_THREADS = 4


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The largest body a route takes, and the setting that sets it (named in the 413)."""

    size: int
    setting: str

    def declared(self, size: int) -> str:
        """The 413 message for a ``Content-Length`` over the limit."""
        return (
            f"request body is {size:,} bytes; the limit for this call is {self.size:,} bytes "
            f"({self.setting})"
        )

    def exceeded(self) -> str:
        """The 413 message for a streamed body that passed the limit."""
        return f"request body exceeds {self.size:,} bytes, the limit for this call ({self.setting})"


_PINPOINT_INGEST = re.compile(r"^/v1/apps/[^/]+/(events|endpoints)/?$")


def body_limit(settings: Settings, method: str, path: str) -> BodyLimit:
    """The body limit of an ``/api/v1`` (or Pinpoint ``/v1``) call: ingest routes get the
    ingest limit, one endpoint document its own, every other (management) call the small JSON
    limit."""
    if (
        (method == "POST" and path == "/api/v1/events")
        or (method == "PUT" and path == "/api/v1/endpoints")
        or (method in ("POST", "PUT") and _PINPOINT_INGEST.match(path))
    ):
        return BodyLimit(settings.max_request_bytes, "SPILLWAY_MAX_REQUEST_BYTES")
    if method == "PUT" and path.startswith("/api/v1/endpoints/"):
        return BodyLimit(settings.max_endpoint_bytes, "SPILLWAY_MAX_ENDPOINT_BYTES")
    return BodyLimit(settings.max_json_bytes, "SPILLWAY_MAX_JSON_BYTES")


class Authenticator:
    """Checks bearer keys in its own threads, remembering the good ones for a few seconds."""

    def __init__(
        self,
        engine: Engine,
        box: SecretBox | None = None,
        *,
        cache_seconds: float = CACHE_SECONDS,
        cache_entries: int = CACHE_ENTRIES,
        threads: int = AUTH_THREADS,
    ) -> None:
        self._engine = engine
        self._box = box
        self._ttl = cache_seconds
        self._max = cache_entries
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spillway-auth")
        # sha256(token) → (monotonic expiry, principal). Touched only on the event loop.
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        # One lookup per token at a time: concurrent requests with the same key share it.
        self._pending: dict[bytes, asyncio.Future[Principal]] = {}

    async def principal(self, header: str | None) -> Principal:
        """The caller of a request, or :class:`Unauthorized` (:class:`SQLAlchemyError` when the
        database does not answer)."""
        key_id, secret = parse_bearer(header)
        digest = hashlib.sha256(f"{key_id}.{secret}".encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            if hit[0] > time.monotonic():
                return hit[1]
            del self._cache[digest]
        loop = asyncio.get_running_loop()
        pending = self._pending.get(digest)
        if pending is None or pending.get_loop() is not loop:
            pending = asyncio.wrap_future(
                self._pool.submit(verify, self._engine, key_id, secret), loop=loop
            )
            self._pending[digest] = pending
            pending.add_done_callback(lambda done: self._settle(digest, done))
        # Shielded: a caller that goes away does not cancel the lookup others wait for.
        return await asyncio.shield(pending)

    def _settle(self, digest: bytes, done: asyncio.Future[Principal]) -> None:
        if self._pending.get(digest) is done:
            del self._pending[digest]
        if done.cancelled() or done.exception() is not None:
            return  # failures are never remembered
        if len(self._cache) >= self._max:
            now = time.monotonic()
            for stale in [d for d, (until, _) in self._cache.items() if until <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._max:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[digest] = (time.monotonic() + self._ttl, done.result())

    async def signer(self, key_id: str) -> tuple[Principal, str]:
        """A SigV4 caller's key and its secret (the signature is checked by the route, over
        the body), or :class:`Forbidden`."""
        if self._box is None:
            raise Forbidden("this server was started without its service key")
        loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(
            self._pool.submit(secret_of, self._engine, self._box, key_id), loop=loop
        )

    def close(self) -> None:
        """Stop the lookup threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    await JSON(error_body(code, message), status, headers=headers)(scope, receive, send)


async def _refuse_error(scope: Scope, receive: Receive, send: Send, exc: InputError) -> None:
    answer = answer_for(exc)
    await _refuse(scope, receive, send, answer.status, answer.code, str(exc), answer.headers)


class GuardMiddleware:
    """Authenticates ``/api/v1`` and ``/v1`` requests and holds their bodies to the route's
    limit, before and while the body is read (pure ASGI: the body is never buffered here)."""

    def __init__(self, app: ASGIApp, settings: Settings, authenticator: Authenticator) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        pinpoint = is_pinpoint(path)
        if not (pinpoint or path.startswith(API_PREFIX)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            if pinpoint:
                signed = sigv4.parse_authorization(headers.get("authorization"))
                principal, secret = await self.authenticator.signer(signed.key_id)
                scope.setdefault("state", {})["pinpoint"] = (signed, principal, secret)
            else:
                principal = await self.authenticator.principal(headers.get("authorization"))
        except (Unauthorized, Forbidden) as exc:
            if pinpoint:
                await pinpoint_answer(exc)(scope, receive, send)
            else:
                await _refuse_error(scope, receive, send, exc)
            return
        except SQLAlchemyError as exc:
            log.warning("answering 503: key lookup failed (%s)", exc.__class__.__name__)
            await _refuse(
                scope,
                receive,
                send,
                503,
                "unavailable",
                "the database did not answer; try again",
                {"Retry-After": "1"},
            )
            return

        limit = body_limit(self.settings, scope["method"], scope["path"])
        declared = headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _refuse(
                    scope, receive, send, 400, "bad_request", "Content-Length is not a number"
                )
                return
            if size > limit.size:
                too_large = TooLarge(limit.declared(size))
                if pinpoint:
                    await pinpoint_answer(too_large)(scope, receive, send)
                else:
                    await _refuse_error(scope, receive, send, too_large)
                return

        scope.setdefault("state", {})["principal"] = principal
        counted = 0
        refused: str | None = None  # the 413 message, once a streamed body passed the limit
        started = False

        async def receive_limited() -> Message:
            nonlocal counted, refused
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > limit.size:
                    refused = limit.exceeded()
                    raise TooLarge(refused)
            return message

        async def send_guarded(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                return  # whatever the route made of a body we cut short; our 413 follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_guarded)
        except Exception:
            if refused is None or started:
                raise
        if refused is not None and not started:
            if pinpoint:
                await pinpoint_answer(TooLarge(refused))(scope, receive, send)
            else:
                await _refuse_error(scope, receive, send, TooLarge(refused))
