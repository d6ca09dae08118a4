"""``POST /api/v1/events``: the ingest endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from spillway import metrics
from spillway.api import schemas
from spillway.api.deps import Context, ContextDep, IngestKey
from spillway.api.docs import documented
from spillway.api.errors import ErrorBody
from spillway.api.responses import JSON
from spillway.errors import InputError, TooLarge, TransientError
from spillway.ingest import Judged, Outcome, decode_body, judge, outcome, parse_body
from spillway.store.db import now_ms

router = APIRouter(prefix="/api/v1", tags=["events"])

_INGEST_DOC = """Ingest a batch of events.

The body is a JSON array of events, `{"events": [...]}`, or NDJSON
(`Content-Type: application/x-ndjson`), optionally `Content-Encoding: gzip`.
Each event is judged on its own: the answer counts what was stored and lists each rejected
event by index with a reason, and each duplicate (an `event_uuid` already stored).
"""


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing early (413) once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InputError("Content-Length is not a number") from None
        if size > limit:
            raise TooLarge(
                f"request body is {size:,} bytes; the limit is {limit:,} bytes "
                "(SPILLWAY_MAX_REQUEST_BYTES); send smaller batches"
            )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise TooLarge(
                f"request body exceeds {limit:,} bytes (SPILLWAY_MAX_REQUEST_BYTES); "
                "send smaller batches"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def judge_body(
    context: Context, body: bytes, content_type: str | None, content_encoding: str | None
) -> tuple[int, Judged]:
    """Decode and judge one request body (CPU work, run off the event loop)."""
    raw = parse_body(decode_body(body, content_encoding, context.limits), content_type)
    received = now_ms()
    return received, judge(raw, received, context.limits)


def answer(result: Outcome) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for an ingest outcome."""
    metrics.EVENTS_ACCEPTED.inc(result.accepted)
    metrics.EVENTS_DUPLICATE.inc(len(result.duplicates))
    if result.rejected:
        metrics.EVENTS_REJECTED.inc(len(result.rejected))
    body: dict[str, Any] = {
        "received": result.received,
        "accepted": result.accepted,
        "duplicate": len(result.duplicates),
        "rejected": result.rejected,
        "duplicates": result.duplicates,
    }
    if result.accepted == 0 and not result.duplicates:
        message = f"none of the {result.received} events was valid; see 'rejected'"
        return 400, {"error": "no_valid_events", "message": message, **body}
    return 200, body


@router.post(
    "/events",
    description=_INGEST_DOC,
    response_class=JSON,
    openapi_extra=schemas.ingest_body(),
    responses={
        **documented(schemas.IngestResult, 413, 415),
        400: {
            "model": ErrorBody,
            "description": "No event was valid (the counts and `rejected` say why), or the body "
            "could not be read.",
        },
    },
)
async def post_events(request: Request, context: ContextDep, principal: IngestKey) -> JSON:
    """Ingest a batch of events."""
    body = await read_body(request, context.limits.max_request_bytes)
    received, judged = await run_in_threadpool(
        judge_body,
        context,
        body,
        request.headers.get("content-type"),
        request.headers.get("content-encoding"),
    )
    future = context.writer.submit(principal.project_id, received, judged.rows)
    try:
        existing = await asyncio.wrap_future(future)
    except SQLAlchemyError as exc:
        raise TransientError(
            f"the database could not store the batch ({exc.__class__.__name__}); nothing was "
            "stored, send it again"
        ) from exc
    status, result = answer(outcome(judged, existing))
    return JSON(result, status)
