"""The web UI: server-rendered pages (Jinja2) at ``/``, calling the same services as the API.

How to add a page (``exports.py`` and ``jobs.py`` follow this):

- **Routes**: a module with its own ``APIRouter(include_in_schema=False)``, included in
  :data:`router` below; add ``(path, label)`` to ``render.NAV`` for the navigation bar.
  Decorate each route with ``guard.ui_page`` (under ``@router.get``/``post``): a missing session
  redirects to sign-in, a refusal (``Forbidden``, ``NotFound``, a bad CSRF token) becomes an
  error page, never the API's JSON.
- **Auth**: ``viewer = await guard.viewer_of(request)`` on a GET; ``viewer, values = await
  guard.posted(request)`` on a POST (session, then ``Origin``/``Sec-Fetch-Site``, then the
  form's ``csrf`` field; any failing is a 403). The session cookie holds the key sealed with
  the service key (``session.py``); every request re-verifies it.
- **Write scope**: in a template, ``{{ m.action_button("Run now", viewer) }}`` (or
  ``viewer.blocked("write")``) shows a disabled control with the reason; in the route,
  ``viewer.require("write")`` before any change: the server refuses too.
- **Forms**: every ``<form method=post>`` includes ``{{ m.csrf(csrf) }}``. On failure, render
  the page again with a ``render.FormState`` (values typed, minus secrets; ``errors`` by field
  name; ``error`` for the form) and status 422; ``{{ m.field(...) }}`` shows each error beside
  its input. ``data_sync.place`` puts a domain error's message next to the field it names.
- **Pages**: templates extend ``base.html`` (header, navigation, sign out, main landmark);
  ``static/spillway.css`` and ``static/spillway.js`` are all the styling and script (no other
  host: the Content-Security-Policy says ``'self'``; no inline scripts).
"""

from __future__ import annotations

from fastapi import APIRouter

from spillway.ui import auth, data_sync, exports, jobs

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(data_sync.router)
router.include_router(exports.router)
router.include_router(jobs.router)

__all__ = ["router"]
