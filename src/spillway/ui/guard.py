"""What every UI route shares: the signed-in check, the POST check (origin + CSRF token), and
turning a refusal into an error page instead of the API's JSON."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from spillway.errors import Forbidden, NotFound, TooLarge, Unsupported
from spillway.ui import render, session
from spillway.ui.session import Viewer

P = ParamSpec("P")


class NotSignedIn(Exception):
    """The page needs a session; the browser is sent to sign in."""


class CrossSite(Exception):
    """A POST without this session's CSRF token, or from another origin: refused with 403."""


async def viewer_of(request: Request) -> Viewer:
    """The signed-in viewer, or :class:`NotSignedIn`."""
    viewer = await session.current(request)
    if viewer is None:
        raise NotSignedIn
    request.state.viewer = viewer  # for the error page's header
    return viewer


async def posted(request: Request) -> tuple[Viewer, dict[str, str]]:
    """A POST from a page of this server in this session: its viewer and its fields.

    The origin is checked before the body is read, the CSRF token after; either failing is
    :class:`CrossSite`. The session is checked first: nothing is read for a stranger.
    """
    viewer = await viewer_of(request)
    if not session.same_origin(request):
        raise CrossSite
    values = await render.read_form(request)
    if not session.token_matches(viewer.csrf, values.get("csrf")):
        raise CrossSite
    return viewer, values


def ui_page(
    handler: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Wrap a UI route: a missing session redirects to sign-in, a cross-site post or a key
    without the scope is a 403 page, an unknown object a 404 page (never the API's JSON)."""

    @functools.wraps(handler)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = next(a for a in (*args, *kwargs.values()) if isinstance(a, Request))
        try:
            return await handler(*args, **kwargs)
        except NotSignedIn:
            target = request.url.path if request.method == "GET" else "/data-sync"
            return RedirectResponse("/signin?next=" + quote(target, safe="/"), 303)
        except CrossSite:
            return _error(request, 403, "Request refused", _CROSS_SITE)
        except Forbidden as exc:
            return _error(request, 403, "Not allowed", str(exc))
        except NotFound as exc:
            return _error(request, 404, "Not found", str(exc))
        except (TooLarge, Unsupported) as exc:
            return _error(request, 400, "Form not accepted", str(exc))

    return wrapped


_CROSS_SITE = (
    "This form was not sent from a page of this server in your session (its security token "
    "is missing or wrong, or it came from another site). Nothing was changed. Reload the page "
    "and try again."
)


def _error(request: Request, status: int, title: str, message: str) -> Response:
    viewer: Any = getattr(request.state, "viewer", None)
    return render.page(request, "error.html", viewer, status=status, title=title, message=message)
