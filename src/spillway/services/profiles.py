"""Endpoint profiles (SPEC R3): validation and the merge rules of an update."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import Engine

from spillway import text
from spillway.errors import Invalid, Malformed
from spillway.store import endpoints as q
from spillway.store.db import now_ms

ChannelType = Literal[
    "EMAIL",
    "SMS",
    "VOICE",
    "PUSH",
    "APNS",
    "APNS_SANDBOX",
    "APNS_VOIP",
    "APNS_VOIP_SANDBOX",
    "GCM",
    "BAIDU",
    "ADM",
    "IN_APP",
    "CUSTOM",
]
MAX_BATCH = 100
MAX_ID = 256
# A metric is a finite number: JSON has no NaN or infinity, and PostgreSQL's json refuses them.
Metric = Annotated[float, Field(allow_inf_nan=False)]
# Maps that merge key by key on update; a key sent as null is removed.
MERGED = ("attributes", "user_attributes", "demographic", "location", "metrics")


def _string_lists(value: dict[str, Any] | None) -> dict[str, list[str] | None] | None:
    """Attribute values are lists of strings (as in Pinpoint); a lone string is wrapped."""
    if value is None:
        return None
    out: dict[str, list[str] | None] = {}
    for key, item in value.items():
        if item is None:
            out[key] = None
        elif isinstance(item, str):
            out[key] = [item]
        elif isinstance(item, list) and all(isinstance(v, str) for v in item):
            out[key] = item
        else:
            raise ValueError(f"attribute {key!r} must be a string or a list of strings")
    return out


def check_id(endpoint_id: str) -> str:
    """An endpoint id from a path: 1 to 256 characters, no NUL."""
    if not 0 < len(endpoint_id) <= MAX_ID:
        raise Invalid(None, f"an endpoint id must be 1 to {MAX_ID} characters long")
    if "\x00" in endpoint_id:
        raise Invalid(None, "an endpoint id must not contain the NUL character")
    return endpoint_id


class Demographic(BaseModel):
    """Device and locale facts about an endpoint."""

    model_config = ConfigDict(extra="forbid")
    app_version: str | None = None
    locale: str | None = None
    make: str | None = None
    model: str | None = None
    model_version: str | None = None
    platform: str | None = None
    platform_version: str | None = None
    timezone: str | None = None


class Location(BaseModel):
    """Where an endpoint is."""

    model_config = ConfigDict(extra="forbid")
    city: str | None = None
    country: str | None = Field(default=None, max_length=3)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    postal_code: str | None = None
    region: str | None = None


class EndpointIn(BaseModel):
    """The body of an endpoint upsert. Every field is optional on update."""

    model_config = ConfigDict(extra="forbid")
    endpoint_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    user_id: str | None = Field(default=None, max_length=256)
    channel_type: ChannelType | None = None
    address: str | None = Field(default=None, max_length=512)
    endpoint_status: Literal["ACTIVE", "INACTIVE"] | None = None
    opt_out: Literal["ALL", "NONE"] | None = None
    attributes: dict[str, Any] | None = None
    user_attributes: dict[str, Any] | None = None
    demographic: Demographic | None = None
    location: Location | None = None
    metrics: dict[str, Metric | None] | None = None
    effective_date: str | None = None

    _lists = field_validator("attributes", "user_attributes")(_string_lists)

    # No NUL (PostgreSQL text cannot hold it) and no lone surrogate (no UTF-8 form), in keys
    # too: the field is named so the caller knows what to fix.
    _text = model_validator(mode="before")(text.checked)


class EndpointBatch(BaseModel):
    """``PUT /api/v1/endpoints``: up to 100 endpoints, each with its id."""

    model_config = ConfigDict(extra="forbid")
    endpoints: list[EndpointIn] = Field(min_length=1, max_length=MAX_BATCH)


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


def merge(existing: dict[str, Any] | None, update: EndpointIn, endpoint_id: str) -> dict[str, Any]:
    """Apply an update to a stored endpoint (or create it): scalars replace, maps merge."""
    now = now_ms()
    base: dict[str, Any] = existing or {
        "endpoint_id": endpoint_id,
        "user_id": None,
        "channel_type": None,
        "address": None,
        "endpoint_status": "ACTIVE",
        "opt_out": "NONE",
        "attributes": {},
        "user_attributes": {},
        "demographic": {},
        "location": {},
        "metrics": {},
        "effective_date": None,
        "created_at": now,
    }
    record = dict(base)
    for name in (
        "user_id",
        "channel_type",
        "address",
        "endpoint_status",
        "opt_out",
        "effective_date",
    ):
        value = getattr(update, name)
        if value is not None:
            record[name] = value
    for name in MERGED:
        value = getattr(update, name)
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        record[name] = _merge_map(base[name], value)
    record["updated_at"] = now
    return record


def upsert(
    engine: Engine, project_id: int, items: list[tuple[str, EndpointIn]]
) -> list[dict[str, Any]]:
    """Create or update endpoints in one transaction; returns the stored records."""
    for endpoint_id, item in items:
        if item.endpoint_id is not None and item.endpoint_id != endpoint_id:
            raise Malformed(
                f"endpoint_id in the body ({item.endpoint_id!r}) does not match the "
                f"path ({endpoint_id!r})"
            )
    results = []
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        stored = q.get_endpoints(conn, project_id, [endpoint_id for endpoint_id, _ in items])
        for endpoint_id, item in items:
            existing = stored.get(endpoint_id)
            record = merge(existing, item, endpoint_id)
            q.save_endpoint(conn, project_id, record, exists=existing is not None)
            stored[endpoint_id] = record
            results.append(record)
    return results


def public(record: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as the API shows it (encodable even if stored before text was checked)."""
    shown = {
        "endpoint_id": record["endpoint_id"],
        "user_id": record["user_id"],
        "channel_type": record["channel_type"],
        "address": record["address"],
        "endpoint_status": record["endpoint_status"],
        "opt_out": record["opt_out"],
        "attributes": record["attributes"],
        "user_attributes": record["user_attributes"],
        "demographic": record["demographic"],
        "location": record["location"],
        "metrics": record["metrics"],
        "effective_date": record["effective_date"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }
    try:
        orjson.dumps(shown)
    except orjson.JSONEncodeError:
        # A key or value with a lone surrogate, stored before input was checked: every answer
        # holding it failed (response serialisation chokes on such map keys). Show U+FFFD.
        return dict(text.printable(shown))
    return shown
