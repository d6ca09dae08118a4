"""The Pinpoint-compatible API: Amazon Pinpoint's REST paths, shapes and errors under
``/v1/apps``, signed with SigV4, over Spillway's own services (an app is a project).

Each module holds one group of operations; ``router`` gathers them, with a last route that
answers every other Pinpoint operation with Pinpoint's error saying it is not supported.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from spillway.api.pinpoint import apps, endpoints, events, streams
from spillway.api.pinpoint import jobs as pinpoint_jobs
from spillway.api.pinpoint.auth import Caller
from spillway.errors import NotApplicable

router = APIRouter(prefix="/v1", tags=["pinpoint"], include_in_schema=False)
router.include_router(apps.router)
router.include_router(events.router)
router.include_router(endpoints.router)
router.include_router(streams.router)
router.include_router(pinpoint_jobs.router)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unsupported(rest: str, request: Request, _caller: Caller) -> None:
    """Every Pinpoint operation Spillway does not implement (campaigns, journeys, messages…).
    Signed like the others: a bad signature is 403 here too, so no key id can be probed."""
    raise NotApplicable(
        f"{request.method} /v1/{rest} is a Pinpoint operation Spillway does not support; "
        "supported: apps, events, endpoints, users, the event stream and export/import jobs "
        "(see docs/pinpoint.md)"
    )
