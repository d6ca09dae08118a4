"""Sign in with an integration key, sign out, the home redirect and the static files."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from spillway.errors import Forbidden, InputError, Unauthorized
from spillway.ui import render, session
from spillway.ui.guard import CrossSite, posted, ui_page

router = APIRouter(include_in_schema=False)

STATIC = render.HERE / "static"
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _next(target: str | None) -> str:
    """Where to go after signing in: a path of this server only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/data-sync"


@router.get("/")
async def home(request: Request) -> Response:
    """Data Sync when signed in, the sign-in page otherwise."""
    viewer = await session.current(request)
    return RedirectResponse("/data-sync" if viewer else "/signin", 303)


def _signin_page(
    request: Request, form: render.FormState, status: int = 200, next_path: str = ""
) -> Response:
    token = session.signin_token(request)
    response = render.page(
        request, "signin.html", None, status=status, csrf=token, form=form, next=next_path
    )
    session.keep_signin_token(response, request, token)
    return response


@router.get("/signin")
async def signin_form(request: Request, next: str = "") -> Response:
    """The sign-in page."""
    if await session.current(request) is not None:
        return RedirectResponse(_next(next), 303)
    return _signin_page(request, render.FormState(), next_path=_next(next))


@router.post("/signin")
@ui_page
async def signin(request: Request) -> Response:
    """Check the key; a read, write or admin key of a project gets a session."""
    if not session.same_origin(request):
        raise CrossSite
    values = await render.read_form(request)
    expected = request.cookies.get(session.SIGNIN_COOKIE, "")
    if not expected or not session.token_matches(expected, values.get("csrf")):
        raise CrossSite
    token = values.get("key", "").strip()
    next_path = _next(values.get("next"))
    if not token:
        state = render.FormState(errors={"key": "Paste your integration key."})
        return _signin_page(request, state, 422, next_path)
    try:
        await run_in_threadpool(session.check_key, session.context_of(request), token)
    except (Unauthorized, Forbidden) as exc:
        message = str(exc)
        if isinstance(exc, Unauthorized) and "malformed" in message:
            message = "That is not an integration key: it looks like KEYID.SECRET (one dot)."
        state = render.FormState(errors={"key": message})
        return _signin_page(
            request, state, 401 if isinstance(exc, Unauthorized) else 403, next_path
        )
    except InputError as exc:
        return _signin_page(request, render.FormState(errors={"key": str(exc)}), 400, next_path)
    response = RedirectResponse(next_path, 303)
    session.start(response, request, token)
    return response


@router.post("/signout")
@ui_page
async def signout(request: Request) -> Response:
    """Drop the session (a CSRF-checked post, so another site cannot sign you out)."""
    await posted(request)
    response = RedirectResponse("/signin", 303)
    session.end(response)
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The UI's own CSS and JavaScript (nothing is loaded from another host)."""
    path = STATIC / name
    kind = _STATIC_TYPES.get(path.suffix)
    if kind is None or path.parent != STATIC or not path.is_file():
        return Response("not found", 404, media_type="text/plain")
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "max-age=300"})
