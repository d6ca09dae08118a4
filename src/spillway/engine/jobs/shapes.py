"""Endpoint definitions as Pinpoint's export files hold them (PascalCase, one JSON per line), and
the flat CSV columns Pinpoint's imports take (``ChannelType``, ``User.UserId``,
``Attributes.<name>``, …). An export job writes these shapes; an import job reads them, so a
Pinpoint audience export comes in unchanged and a Spillway export goes back in.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from spillway.model import Endpoint

# Stored snake_case field → Pinpoint's name, for the nested maps.
_NESTED = {
    "app_version": "AppVersion",
    "locale": "Locale",
    "make": "Make",
    "model": "Model",
    "model_version": "ModelVersion",
    "platform": "Platform",
    "platform_version": "PlatformVersion",
    "timezone": "Timezone",
    "city": "City",
    "country": "Country",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "postal_code": "PostalCode",
    "region": "Region",
}
_NESTED_BACK = {pascal: snake for snake, pascal in _NESTED.items()}
NESTED_NAMES = _NESTED
_SCALARS = {
    "channel_type": "ChannelType",
    "address": "Address",
    "endpoint_status": "EndpointStatus",
    "opt_out": "OptOut",
    "effective_date": "EffectiveDate",
}


_EPOCH = dt.date(1970, 1, 1)


@functools.lru_cache(maxsize=4_096)
def _iso_day(days: int) -> str:
    return (_EPOCH + dt.timedelta(days=days)).isoformat()


def iso_time(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds, as Pinpoint writes dates.

    Plain arithmetic and a cache of day strings: an export job formats one per record, and
    ``datetime.strftime`` costs more than the rest of the record together."""
    if ms is None:
        return None
    days, rest = divmod(int(ms), 86_400_000)
    seconds, milli = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_iso_day(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{milli:03d}Z"


def pascal_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """A demographic or location map with Pinpoint's field names; unset fields left out."""
    return {_NESTED.get(k, k): v for k, v in values.items() if v is not None}


def to_pinpoint(endpoint: Endpoint, application_id: str) -> dict[str, Any]:
    """A stored endpoint as one line of a Pinpoint endpoint export."""
    out: dict[str, Any] = {"Id": endpoint.endpoint_id}
    for snake, pascal in _SCALARS.items():
        value = getattr(endpoint, snake)
        if value is not None:
            out[pascal] = value
    out["Attributes"] = dict(endpoint.attributes or {})
    out["Demographic"] = pascal_fields(endpoint.demographic or {})
    out["Location"] = pascal_fields(endpoint.location or {})
    out["Metrics"] = dict(endpoint.metrics or {})
    user: dict[str, Any] = {"UserAttributes": dict(endpoint.user_attributes or {})}
    if endpoint.user_id is not None:
        user["UserId"] = endpoint.user_id
    out["User"] = user
    out["ApplicationId"] = application_id
    out["CreationDate"] = iso_time(endpoint.created_at)
    return out


# An export line is ``head + application_id_member(app) + tail``: the head (``{"Id": …`` to the
# end of ``"User"``, no closing brace) and the tail (``,"CreationDate":"…"}``) depend on the
# endpoint alone, so the store keeps them with it (``pinpoint_parts``) and an export job copies
# bytes instead of building JSON. Only ApplicationId comes from the project.


def pinpoint_parts(endpoint: Endpoint) -> tuple[bytes, bytes]:
    """The head and tail of the endpoint's export line (``orjson.dumps(to_pinpoint(…))`` split
    around ApplicationId)."""
    out = to_pinpoint(endpoint, "")
    del out["ApplicationId"]
    created = out.pop("CreationDate")
    head = orjson.dumps(out)[:-1]  # without the closing brace
    return head, b',"CreationDate":' + orjson.dumps(created) + b"}"


def application_id_member(application_id: str) -> bytes:
    """What goes between an export line's head and tail."""
    return b',"ApplicationId":' + orjson.dumps(application_id)


def from_pinpoint(item: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """One endpoint definition (Pinpoint's shape) as an endpoint id and the fields of an
    endpoint upsert (snake_case, as ``PUT /api/v1/endpoints/{id}`` takes them). Unknown
    top-level names are ignored (Pinpoint adds ApplicationId, CohortId, RequestId…)."""
    endpoint_id = item.get("Id")
    if not isinstance(endpoint_id, str) or not endpoint_id:
        raise ValueError("Id: every endpoint definition needs an Id (a non-empty string)")
    fields: dict[str, Any] = {}
    for snake, pascal in _SCALARS.items():
        if item.get(pascal) is not None:
            fields[snake] = item[pascal]
    for name, pascal in (("attributes", "Attributes"), ("metrics", "Metrics")):
        if item.get(pascal):
            fields[name] = item[pascal]
    for name, pascal in (("demographic", "Demographic"), ("location", "Location")):
        value = item.get(pascal)
        if value:
            if not isinstance(value, Mapping):
                raise ValueError(f"{pascal}: expected an object")
            fields[name] = {_NESTED_BACK.get(k, k): v for k, v in value.items()}
    user = item.get("User")
    if user:
        if not isinstance(user, Mapping):
            raise ValueError("User: expected an object with UserId and UserAttributes")
        if user.get("UserId") is not None:
            fields["user_id"] = user["UserId"]
        if user.get("UserAttributes"):
            fields["user_attributes"] = user["UserAttributes"]
    return endpoint_id, fields


# CSV: nested maps become dotted columns. A map value that is a list (attributes are lists of
# strings) is one value when it has one element, else its JSON text ("[\"a\",\"b\"]").


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A record as CSV cells: ``{"User": {"UserId": "u"}}`` → ``{"User.UserId": "u"}``."""
    cells: dict[str, str] = {}
    for name, value in record.items():
        column = f"{prefix}{name}"
        if isinstance(value, Mapping):
            cells.update(flatten(value, f"{column}."))
        elif value is None:
            continue
        elif isinstance(value, list):
            if len(value) == 1 and isinstance(value[0], str):
                cells[column] = value[0]
            else:
                cells[column] = orjson.dumps(value).decode()
        elif isinstance(value, bool):
            cells[column] = "true" if value else "false"
        else:
            cells[column] = str(value)
    return cells


# Columns whose values are lists of strings (everything under these maps); numbers under Metrics
# and Location's coordinates.
_LIST_MAPS = ("Attributes", "User.UserAttributes")
_NUMBERS = ("Metrics", "Location.Latitude", "Location.Longitude")


def unflatten(row: Mapping[str, str]) -> dict[str, Any]:
    """CSV cells (Pinpoint's column names) back into an endpoint definition."""
    out: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":
            continue
        path = column.strip().split(".")
        value: Any = cell
        if any(column.startswith(m + ".") for m in _LIST_MAPS):
            value = _list_cell(cell)
        elif any(column == n or column.startswith(n + ".") for n in _NUMBERS):
            try:
                value = float(cell)
            except ValueError as exc:
                raise ValueError(f"{column}: {cell!r} is not a number") from exc
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{column}: clashes with another column")
        node[path[-1]] = value
    return out


def _list_cell(cell: str) -> list[str]:
    if cell.startswith("["):
        try:
            parsed = orjson.loads(cell)
        except orjson.JSONDecodeError:
            return [cell]
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return parsed
    return [cell]


def csv_text(records: Iterable[Mapping[str, Any]]) -> bytes:
    """Records as one CSV document: a header of every column seen (first-seen order)."""
    rows = [flatten(record) for record in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
