"""Which endpoints a filter selects: the rule of a segment, of an export job's inline filter
and of an import's ``define_segment``. Pure: no I/O. The store gets plain "column IN values"
conditions from it (:meth:`EndpointFilter.columns`) to pre-filter in SQL; the JSON parts
(attributes, demographic, location, effective date) are checked here, so the same code runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spillway.model import Endpoint  # model imports this module

# Columns the store can compare directly; the order is the order of the SQL conditions.
COLUMN_FIELDS = ("endpoint_ids", "user_ids", "channel_type", "endpoint_status", "opt_out")
_COLUMN_OF = {"endpoint_ids": "endpoint_id", "user_ids": "user_id"}
MAP_FIELDS = ("attributes", "user_attributes", "demographic", "location")

Values = tuple[str, ...]
ValueMap = Mapping[str, Values]


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 date or date-time as an aware datetime (no zone: UTC), or None if unreadable."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EndpointFilter:
    """Which endpoints a segment selects. Every field is optional; the fields set must all hold
    (AND), and each holds when the endpoint has any of its values (OR). An empty filter selects
    every endpoint of the project."""

    endpoint_ids: Values | None = None  # the endpoints themselves (a segment an import defines)
    user_ids: Values | None = None
    channel_type: Values | None = None
    endpoint_status: Values | None = None
    opt_out: Values | None = None
    # name -> values: the endpoint's list under that name holds at least one of the values.
    attributes: ValueMap | None = None
    user_attributes: ValueMap | None = None
    # field -> values: the endpoint's value of that field is one of the values.
    demographic: ValueMap | None = None
    location: ValueMap | None = None
    # Half-open range of the endpoint's effective date: after <= date < before.
    effective_after: datetime | None = None
    effective_before: datetime | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> EndpointFilter:
        """A filter as stored (the output of :meth:`to_json`, already validated)."""
        value = value or {}
        known: dict[str, Any] = {}
        for name in COLUMN_FIELDS:
            if value.get(name) is not None:
                known[name] = tuple(value[name])
        for name in MAP_FIELDS:
            if value.get(name) is not None:
                known[name] = {key: tuple(items) for key, items in value[name].items()}
        for name in ("effective_after", "effective_before"):
            if value.get(name) is not None:
                known[name] = parse_instant(value[name])
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        """The fields that are set, as JSON (lists, ISO 8601 UTC)."""
        out: dict[str, Any] = {}
        for name in COLUMN_FIELDS:
            values = getattr(self, name)
            if values is not None:
                out[name] = list(values)
        for name in MAP_FIELDS:
            mapping = getattr(self, name)
            if mapping is not None:
                out[name] = {key: list(items) for key, items in mapping.items()}
        for name in ("effective_after", "effective_before"):
            instant = getattr(self, name)
            if instant is not None:
                out[name] = _iso(instant)
        return out

    def columns(self) -> dict[str, Values]:
        """``column -> accepted values`` the store can check in SQL (an index-friendly IN)."""
        return {
            _COLUMN_OF.get(name, name): getattr(self, name)
            for name in COLUMN_FIELDS
            if getattr(self, name) is not None
        }

    @property
    def needs_python(self) -> bool:
        """Whether some condition reads the JSON columns (the store cannot count alone)."""
        return any(getattr(self, name) is not None for name in MAP_FIELDS) or (
            self.effective_after is not None or self.effective_before is not None
        )

    def matches(self, endpoint: Endpoint) -> bool:
        """Whether a stored endpoint is selected."""
        for name, values in self.columns().items():
            if getattr(endpoint, name) not in values:
                return False
        for name in ("attributes", "user_attributes"):
            wanted: ValueMap | None = getattr(self, name)
            if wanted is not None and not _lists_match(getattr(endpoint, name) or {}, wanted):
                return False
        for name in ("demographic", "location"):
            wanted = getattr(self, name)
            if wanted is not None and not _fields_match(getattr(endpoint, name) or {}, wanted):
                return False
        return self._effective_matches(endpoint.effective_date)

    def _effective_matches(self, stored: Any) -> bool:
        if self.effective_after is None and self.effective_before is None:
            return True
        # An endpoint without a readable effective date is outside every date range.
        instant = parse_instant(stored) if isinstance(stored, str) else None
        if instant is None:
            return False
        if self.effective_after is not None and instant < self.effective_after:
            return False
        return self.effective_before is None or instant < self.effective_before


def _lists_match(stored: Mapping[str, Any], wanted: ValueMap) -> bool:
    for name, values in wanted.items():
        have = stored.get(name)
        items = [have] if isinstance(have, str) else (have or [])
        if not any(item in values for item in items):
            return False
    return True


def _fields_match(stored: Mapping[str, Any], wanted: ValueMap) -> bool:
    return all(stored.get(name) in values for name, values in wanted.items())


def as_lists(values: Sequence[str]) -> Values:
    """A request's list of values as the filter keeps it (order kept, duplicates dropped)."""
    return tuple(dict.fromkeys(values))
