"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from spillway import __version__, metrics
from spillway.api import schemas
from spillway.api.deps import ContextDep
from spillway.api.responses import JSON

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_class=JSON,
    responses={
        200: {"model": schemas.Health, "description": "The database answers."},
        503: {"model": schemas.Health, "description": "The database does not answer."},
    },
)
def healthz(context: ContextDep) -> JSON:
    """200 when the database answers, 503 otherwise."""
    try:
        with context.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return JSON({"status": "unavailable", "database": str(exc.__class__.__name__)}, 503)
    return JSON({"status": "ok", "version": __version__})


@router.get("/metrics", include_in_schema=False)
def prometheus(context: ContextDep) -> Response:
    """Prometheus text exposition; the exports' families are read from the database."""
    return Response(metrics.exposition(context.engine), media_type=CONTENT_TYPE_LATEST)
