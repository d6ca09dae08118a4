"""The FastAPI application factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spillway import __version__, metrics, ui, validation
from spillway.api import (
    destinations,
    docs,
    endpoints,
    errors,
    events,
    exports,
    health,
    jobs,
    pinpoint,
    segments,
)
from spillway.api.deps import Context
from spillway.api.guard import Authenticator, GuardMiddleware
from spillway.api.urltext import UrlTextMiddleware
from spillway.ingest import Limits
from spillway.secrets import SecretBox
from spillway.settings import Settings
from spillway.store.db import create_engine, migrate
from spillway.store.writer import GroupWriter


def build_context(settings: Settings) -> Context:
    """Open the database (migrating it) and load the service key."""
    engine = create_engine(settings.resolved_database_url, settings.db_pool_size)
    migrate(engine)
    limits = Limits(
        max_request_bytes=settings.max_request_bytes,
        max_events_per_request=settings.max_events_per_request,
        max_event_bytes=settings.max_event_bytes,
    )
    box = SecretBox(settings.service_key())
    validation.configure(settings)
    return Context(settings, engine, box, limits, GroupWriter(engine))


class LatencyMiddleware:
    """Records request latency per route template (pure ASGI: no per-request task overhead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.REQUEST_LATENCY.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


def create_app(
    settings: Settings | None = None,
    *,
    on_startup: Callable[[Context], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
) -> FastAPI:
    """Build the app. ``on_startup`` lets ``spillway serve`` start the worker beside it."""
    settings = settings or Settings()
    context = build_context(settings)
    authenticator = Authenticator(context.engine, context.box)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        context.writer.start()
        if on_startup is not None:
            on_startup(context)
        try:
            yield
        finally:
            if on_shutdown is not None:
                on_shutdown()
            context.writer.stop()
            authenticator.close()

    app = FastAPI(
        title="Spillway",
        version=__version__,
        description="Collects engagement events and delivers them into your own cloud.",
        lifespan=lifespan,
        # /docs and /redoc are served by api/docs.py from local assets (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    errors.install(app)
    docs.install(app)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(endpoints.router)
    app.include_router(destinations.router)
    app.include_router(exports.router)
    app.include_router(segments.router)
    app.include_router(jobs.router)
    app.include_router(ui.router)  # the web UI's pages at / (spillway.ui)
    # Last: its catch-all answers any other /v1 path with a Pinpoint error.
    app.include_router(pinpoint.router)
    app.add_middleware(UrlTextMiddleware)  # inside the guard: keys are checked first
    # Outermost last: latency is measured around the guard, so refusals are counted too.
    app.add_middleware(GuardMiddleware, settings=settings, authenticator=authenticator)
    app.add_middleware(LatencyMiddleware)
    return app
