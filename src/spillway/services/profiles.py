"""Endpoint profiles (SPEC R3): the merge rules of an update, and upserts. The request models
are in ``api/models.py``, the JSON an endpoint is shown as in ``api/views.py``."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Engine

from spillway.api.models import MAX_ID, EndpointIn
from spillway.engine.jobs.shapes import pinpoint_parts
from spillway.errors import Invalid, Malformed
from spillway.model import ENDPOINT_MAPS, Endpoint
from spillway.store import endpoints as endpoint_store
from spillway.store.db import now_ms

# Maps that merge key by key on update; a key sent as null is removed.
MERGED = ENDPOINT_MAPS


def check_id(endpoint_id: str) -> str:
    """An endpoint id from a path: 1 to 256 characters, no NUL."""
    if not 0 < len(endpoint_id) <= MAX_ID:
        raise Invalid(None, f"an endpoint id must be 1 to {MAX_ID} characters long")
    if "\x00" in endpoint_id:
        raise Invalid(None, "an endpoint id must not contain the NUL character")
    return endpoint_id


def _merge_map(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    if new is None:
        return old
    merged = dict(old)
    for key, value in new.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


_SCALARS = ("user_id", "channel_type", "address", "endpoint_status", "opt_out", "effective_date")


def merge(existing: Endpoint | None, update: EndpointIn, endpoint_id: str) -> Endpoint:
    """Apply an update to a stored endpoint (or create it): scalars replace, maps merge."""
    now = now_ms()
    base = existing or Endpoint(endpoint_id=endpoint_id, created_at=now)
    changes: dict[str, Any] = {}
    for name in _SCALARS:
        value = getattr(update, name)
        if value is not None:
            changes[name] = value
    for name in MERGED:
        value = getattr(update, name)
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        changes[name] = _merge_map(getattr(base, name), value)
    return dataclasses.replace(base, **changes, updated_at=now)


def _check_ids(items: list[tuple[str, EndpointIn]]) -> None:
    for endpoint_id, item in items:
        if item.endpoint_id is not None and item.endpoint_id != endpoint_id:
            raise Malformed(
                f"endpoint_id in the body ({item.endpoint_id!r}) does not match the "
                f"path ({endpoint_id!r})"
            )


def upsert(engine: Engine, project_id: int, items: list[tuple[str, EndpointIn]]) -> list[Endpoint]:
    """Create or update endpoints in one transaction; returns the stored endpoints."""
    _check_ids(items)
    results = []
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        stored = endpoint_store.get_endpoints(
            conn, project_id, [endpoint_id for endpoint_id, _ in items]
        )
        for endpoint_id, item in items:
            existing = stored.get(endpoint_id)
            endpoint = merge(existing, item, endpoint_id)
            endpoint_store.save_endpoint(
                conn, project_id, endpoint, pinpoint_parts(endpoint), exists=existing is not None
            )
            stored[endpoint_id] = endpoint
            results.append(endpoint)
    return results


def upsert_many(engine: Engine, project_id: int, items: list[tuple[str, EndpointIn]]) -> int:
    """``upsert`` for bulk loads (import jobs): the same checks and merge rules, in one
    transaction, but the endpoints are stored with one statement per kind (insert, update) for
    the whole batch instead of one per endpoint, and not returned. An id given twice merges
    twice, in order, as ``upsert`` does. Returns how many endpoints were stored."""
    _check_ids(items)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        stored = endpoint_store.get_endpoints(
            conn, project_id, [endpoint_id for endpoint_id, _ in items]
        )
        existed = set(stored)
        for endpoint_id, item in items:
            stored[endpoint_id] = merge(stored.get(endpoint_id), item, endpoint_id)
        written = [(key, (e, pinpoint_parts(e))) for key, e in stored.items()]
        new = [pair for key, pair in written if key not in existed]
        changed = [pair for key, pair in written if key in existed]
        endpoint_store.save_endpoints(conn, project_id, new, changed)
    return len(stored)
