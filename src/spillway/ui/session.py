"""Who is looking at the page: the session cookie, CSRF, and what the key may do.

The cookie holds the integration key sealed with the server's service key (AES-GCM via
:class:`~spillway.secrets.SecretBox`), a random CSRF token and the sign-in time: the browser
never holds the plain secret, and the server keeps no session table. Every request re-checks
the key (``services.projects.verify``), so a revoked key signs its sessions out at once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from spillway.api.deps import Context
from spillway.errors import Forbidden, InputError, Unauthorized
from spillway.model import Actor, Project
from spillway.secrets import SecretBox, SecretUnreadable
from spillway.services.projects import Principal, Scope, parse_bearer, require, verify
from spillway.store.projects import project_by_id

COOKIE = "spillway_session"
SIGNIN_COOKIE = "spillway_signin"  # the CSRF token of the sign-in form (no session yet)
SESSION_SECONDS = 12 * 3600
_CONTEXT = b"spillway/ui-session/v1"


def context_of(request: Request) -> Context:
    """The app's service context (the same one the API routes use)."""
    context: Context = request.app.state.context
    return context


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in key: what it may do, its project, and its session's CSRF token."""

    principal: Principal
    project: Project
    csrf: str

    @property
    def actor(self) -> Actor:
        """Who the audit log names for changes made through the UI."""
        return Actor(f"key:{self.principal.key_id}", self.principal.project_id)

    def blocked(self, needed: str = "write") -> str | None:
        """Why this key may not do an action that needs ``needed``; None when it may.

        Templates show the reason beside a disabled control; routes call :meth:`require`.
        """
        scope = Scope(needed)
        if self.principal.scope.allows(scope):
            return None
        return (
            f"Your key has '{self.principal.scope}' scope: it can see everything here but not "
            f"change it. Sign in with a '{scope}' or 'admin' key to do this."
        )

    def require(self, needed: str = "write") -> None:
        """Refuse (403) an action the key may not do: the server decides, not the page."""
        reason = self.blocked(needed)
        if reason:
            raise Forbidden(reason + " Nothing was changed.")
        require(self.principal, Scope(needed))


def _encode(box: SecretBox, payload: dict[str, Any]) -> str:
    sealed = box.seal(orjson.dumps(payload), context=_CONTEXT)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def _decode(box: SecretBox, value: str) -> dict[str, Any] | None:
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = orjson.loads(box.open(sealed, context=_CONTEXT))
    except (binascii.Error, ValueError, SecretUnreadable, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def refusal_for(principal: Principal) -> str | None:
    """Why a key may not sign in to the UI (None: it may)."""
    if principal.operator:
        return (
            "This is an operator key: it acts on the Pinpoint-compatible API (/v1/apps), not "
            "on one project. Sign in with a project's read, write or admin key."
        )
    if not principal.scope.allows(Scope.READ):
        return (
            "This is an ingest key: it can only send events and endpoints (it is what an app "
            "embeds), so it cannot see or change settings. Sign in with a read, write or admin "
            "key."
        )
    return None


def check_key(context: Context, token: str) -> tuple[Principal, Project]:
    """The key behind a typed token and its project, or :class:`Unauthorized` /
    :class:`Forbidden` saying why it cannot sign in."""
    key_id, secret = parse_bearer("Bearer " + token.strip())
    principal = verify(context.engine, key_id, secret)
    refusal = refusal_for(principal)
    if refusal:
        raise Forbidden(refusal)
    with context.engine.connect() as conn:
        project = project_by_id(conn, principal.project_id)
    if project is None:
        raise Unauthorized("this key's project no longer exists")
    return principal, project


def start(response: Response, request: Request, token: str) -> None:
    """Set the session cookie for a key that passed :func:`check_key`."""
    payload = {"t": token.strip(), "c": secrets.token_urlsafe(24), "iat": int(time.time())}
    response.set_cookie(
        COOKIE,
        _encode(context_of(request).box, payload),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/")


def end(response: Response) -> None:
    """Sign out: drop the cookie."""
    response.delete_cookie(COOKIE, path="/")


async def current(request: Request) -> Viewer | None:
    """The signed-in viewer, or None (no cookie, expired, damaged, or the key revoked)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    context = context_of(request)
    payload = _decode(context.box, raw)
    if payload is None or int(payload.get("iat", 0)) + SESSION_SECONDS < time.time():
        return None
    try:
        principal, project = await run_in_threadpool(check_key, context, str(payload["t"]))
    except (InputError, KeyError):
        return None
    return Viewer(principal, project, str(payload["c"]))


def signin_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one in its cookie, or a new one."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)


def keep_signin_token(response: Response, request: Request, token: str) -> None:
    """Set the sign-in form's CSRF cookie (double submit: a cross-site page cannot read it)."""
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def same_origin(request: Request) -> bool:
    """False for a request a browser says came from another site (``Sec-Fetch-Site``) or
    whose ``Origin`` is not this server's."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers omit it on same-origin posts; the token still decides
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}",)


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def seal_for(viewer: Viewer, box: SecretBox, value: dict[str, Any]) -> str:
    """Seal typed secrets into the page between Validate and Create, bound to this session:
    the HTML never holds them in the clear, and another session cannot open them."""
    sealed = box.seal(orjson.dumps(value), context=_CONTEXT + viewer.csrf.encode())
    return base64.urlsafe_b64encode(sealed).decode()


def open_for(viewer: Viewer, box: SecretBox, value: str) -> dict[str, Any] | None:
    """Open what :func:`seal_for` sealed (None when it does not open for this session)."""
    try:
        plain = box.open(base64.urlsafe_b64decode(value), context=_CONTEXT + viewer.csrf.encode())
        opened = orjson.loads(plain)
    except (binascii.Error, ValueError, SecretUnreadable, orjson.JSONDecodeError):
        return None
    return opened if isinstance(opened, dict) else None
