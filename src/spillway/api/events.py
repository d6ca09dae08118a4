"""``POST /api/v1/events``: the ingest endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from spillway import metrics
from spillway.api.deps import Context, ContextDep, WriteKey
from spillway.api.responses import JSON
from spillway.errors import InputError, TooLarge
from spillway.ingest import decode_body, ingest, parse_body

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


def ingest_body(
    context: Context, project_id: int, body: bytes, content_type: str | None,
    content_encoding: str | None,
) -> tuple[int, dict[str, Any]]:
    """Decode, judge and store one request body; returns (status, answer)."""
    raw = parse_body(decode_body(body, content_encoding, context.limits), content_type)
    outcome = ingest(context.engine, project_id, raw, context.limits)
    metrics.EVENTS_ACCEPTED.inc(outcome.accepted)
    metrics.EVENTS_DUPLICATE.inc(len(outcome.duplicates))
    if outcome.rejected:
        metrics.EVENTS_REJECTED.inc(len(outcome.rejected))
    answer: dict[str, Any] = {
        "received": outcome.received,
        "accepted": outcome.accepted,
        "duplicate": len(outcome.duplicates),
        "rejected": outcome.rejected,
        "duplicates": outcome.duplicates,
    }
    if outcome.accepted == 0 and not outcome.duplicates:
        message = f"none of the {outcome.received} events was valid; see 'rejected'"
        return 400, {"error": "no_valid_events", "message": message, **answer}
    return 200, answer


@router.post("/events", description=_INGEST_DOC, response_class=JSON)
async def post_events(request: Request, context: ContextDep, principal: WriteKey) -> JSON:
    """Ingest a batch of events."""
    body = await read_body(request, context.limits.max_request_bytes)
    status, answer = await run_in_threadpool(
        ingest_body,
        context,
        principal.project_id,
        body,
        request.headers.get("content-type"),
        request.headers.get("content-encoding"),
    )
    return JSON(answer, status)
