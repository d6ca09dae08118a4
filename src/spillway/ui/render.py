"""Templates, the form-error pattern, and reading a posted form.

``page(request, "x.html", viewer, **data)`` renders a page on ``base.html``; every template
gets ``viewer`` (None before sign-in), ``csrf`` and ``nav``. A form's state travels as a
:class:`FormState`: the values typed (secrets left out), an error per field and one for the
whole form, which ``_macros.html``'s ``field`` macro shows next to each input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from spillway.errors import TooLarge, Unsupported
from spillway.ui.session import Viewer

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024  # a pasted key file or credentials CSV fits many times over

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# The navigation every page shows: (path, label).
NAV: list[tuple[str, str]] = [
    ("/data-sync", "Data Sync"),
    ("/exports", "Exports"),
    ("/jobs", "Jobs"),
]


def when(ms: int | None, empty: str = "—") -> str:
    """An epoch-ms time as UTC text with how far it is from now ("in 12 min", "3 h ago")."""
    if not ms:
        return empty
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))
    delta = ms / 1000 - time.time()
    span = abs(delta)
    if span < 60:
        rel = "now" if span < 5 else ("in under a minute" if delta > 0 else "under a minute ago")
    else:
        amount = (
            f"{round(span / 60)} min"
            if span < 3600
            else f"{round(span / 3600)} h"
            if span < 86400
            else f"{round(span / 86400)} d"
        )
        rel = f"in {amount}" if delta > 0 else f"{amount} ago"
    return f"{stamp} ({rel})"


_env.filters["when"] = when


@dataclass
class FormState:
    """What a form shows again after a failed post: the values typed (never secrets), an
    error per field name, and one for the form as a whole."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def value(self, name: str, default: str = "") -> str:
        """The value to show in field ``name``."""
        return self.values.get(name, default)


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status: int = 200,
    csrf: str | None = None,
    **data: Any,
) -> HTMLResponse:
    """Render ``template`` (extending ``base.html``) as a full page."""
    html = _env.get_template(template).render(
        viewer=viewer,
        csrf=csrf if csrf is not None else (viewer.csrf if viewer else ""),
        nav=NAV,
        path=request.url.path,
        **data,
    )
    return HTMLResponse(
        html,
        status,
        headers={
            # Nothing from another host, no framing; inline scripts and styles are not used.
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a posted ``application/x-www-form-urlencoded`` body (the last value of a
    repeated name), read up to :data:`MAX_FORM_BYTES`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Unsupported("forms are posted as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLarge(f"the form is larger than {MAX_FORM_BYTES:,} bytes")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
