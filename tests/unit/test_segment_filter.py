"""The endpoint filter of segments: what it selects, how it is kept, how a request is checked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from spillway.api.segments import FilterIn, SegmentIn
from spillway.filters import EndpointFilter, parse_instant
from spillway.model import Endpoint


def record(**overrides: Any) -> Endpoint:
    """A stored endpoint with everything set."""
    base: dict[str, Any] = {
        "endpoint_id": "ep-1",
        "user_id": "u1",
        "channel_type": "EMAIL",
        "endpoint_status": "ACTIVE",
        "opt_out": "NONE",
        "attributes": {"interests": ["cats", "chess"], "tier": ["gold"]},
        "user_attributes": {"plan": ["pro"]},
        "demographic": {"platform": "ios", "locale": "en_GB"},
        "location": {"country": "NG", "city": "Lagos", "latitude": 6.5},
        "effective_date": "2026-03-01T10:00:00Z",
    }
    base.update(overrides)
    return Endpoint(**base)


def test_empty_filter_selects_everything() -> None:
    assert EndpointFilter().matches(record())
    assert EndpointFilter().matches(record(user_id=None, effective_date=None, attributes={}))
    assert EndpointFilter().columns() == {}
    assert not EndpointFilter().needs_python


@pytest.mark.parametrize(
    ("selected", "dropped"),
    [
        (EndpointFilter(user_ids=("u1", "u9")), EndpointFilter(user_ids=("u2",))),
        (EndpointFilter(channel_type=("SMS", "EMAIL")), EndpointFilter(channel_type=("SMS",))),
        (
            EndpointFilter(endpoint_status=("ACTIVE",)),
            EndpointFilter(endpoint_status=("INACTIVE",)),
        ),
        (EndpointFilter(opt_out=("NONE",)), EndpointFilter(opt_out=("ALL",))),
        (
            EndpointFilter(attributes={"interests": ("dogs", "chess")}),
            EndpointFilter(attributes={"interests": ("dogs",)}),
        ),
        (
            EndpointFilter(user_attributes={"plan": ("pro",)}),
            EndpointFilter(user_attributes={"plan": ("free",)}),
        ),
        (
            EndpointFilter(demographic={"platform": ("android", "ios")}),
            EndpointFilter(demographic={"platform": ("android",)}),
        ),
        (
            EndpointFilter(location={"country": ("NG",), "city": ("Lagos",)}),
            EndpointFilter(location={"country": ("NG",), "city": ("Abuja",)}),
        ),
        (
            EndpointFilter(effective_after=datetime(2026, 3, 1, 10, tzinfo=UTC)),
            EndpointFilter(effective_after=datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)),
        ),
        (
            EndpointFilter(effective_before=datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)),
            EndpointFilter(effective_before=datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ),
    ],
)
def test_each_field_selects_and_drops(selected: EndpointFilter, dropped: EndpointFilter) -> None:
    assert selected.matches(record())
    assert not dropped.matches(record())


def test_fields_are_anded() -> None:
    both = EndpointFilter(channel_type=("EMAIL",), attributes={"tier": ("gold",)})
    assert both.matches(record())
    assert not both.matches(record(channel_type="SMS"))
    assert not both.matches(record(attributes={"tier": ["silver"]}))


def test_every_named_attribute_must_hold() -> None:
    wanted = EndpointFilter(attributes={"tier": ("gold",), "interests": ("cats",)})
    assert wanted.matches(record())
    assert not wanted.matches(record(attributes={"tier": ["gold"]}))  # no interests at all


def test_missing_values_never_match() -> None:
    assert not EndpointFilter(user_ids=("u1",)).matches(record(user_id=None))
    assert not EndpointFilter(demographic={"make": ("apple",)}).matches(record())
    dated = EndpointFilter(effective_before=datetime(2030, 1, 1, tzinfo=UTC))
    assert not dated.matches(record(effective_date=None))
    assert not dated.matches(record(effective_date="last tuesday"))


def test_effective_dates_compare_as_instants() -> None:
    after = EndpointFilter(effective_after=datetime(2026, 3, 1, 9, tzinfo=UTC))
    assert after.matches(record(effective_date="2026-03-01T10:30:00+01:00"))  # 09:30 UTC
    assert not after.matches(record(effective_date="2026-03-01T09:30:00+01:00"))  # 08:30 UTC
    assert after.matches(record(effective_date="2026-03-02"))  # a date: midnight UTC
    assert parse_instant("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)


def test_columns_go_to_sql_and_json_parts_stay_in_python() -> None:
    mixed = EndpointFilter(user_ids=("u1",), opt_out=("NONE",), location={"country": ("NG",)})
    assert mixed.columns() == {"user_id": ("u1",), "opt_out": ("NONE",)}
    assert mixed.needs_python
    assert not EndpointFilter(channel_type=("SMS",)).needs_python


def test_json_round_trip() -> None:
    full = EndpointFilter(
        user_ids=("u1", "u2"),
        channel_type=("EMAIL",),
        endpoint_status=("ACTIVE",),
        opt_out=("NONE",),
        attributes={"tier": ("gold",)},
        user_attributes={"plan": ("pro", "team")},
        demographic={"platform": ("ios",)},
        location={"country": ("NG",)},
        effective_after=datetime(2026, 1, 1, tzinfo=UTC),
        effective_before=datetime(2026, 2, 1, 12, tzinfo=UTC),
    )
    shown = full.to_json()
    assert shown["effective_after"] == "2026-01-01T00:00:00Z"
    assert shown["user_attributes"] == {"plan": ["pro", "team"]}
    assert EndpointFilter.from_json(shown) == full
    assert EndpointFilter().to_json() == {}


def test_request_becomes_the_typed_filter() -> None:
    sent = FilterIn.model_validate(
        {
            "user_ids": ["u1", "u1", "u2"],
            "channel_type": ["SMS"],
            "demographic": {"platform": ["ios"]},
            "effective_after": "2026-01-01T01:00:00+01:00",
        }
    )
    assert sent.to_filter() == EndpointFilter(
        user_ids=("u1", "u2"),
        channel_type=("SMS",),
        demographic={"platform": ("ios",)},
        effective_after=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"colour": ["red"]}, "filter.colour"),
        ({"user_ids": "u1"}, "filter.user_ids"),
        ({"user_ids": ["u1", 7]}, "filter.user_ids.1"),
        ({"user_ids": []}, "filter.user_ids"),
        ({"attributes": {"tier": "gold"}}, "filter.attributes.tier"),
        ({"channel_type": ["FAX"]}, "filter.channel_type.0"),
        ({"demographic": {"shoe_size": ["9"]}}, "shoe_size"),
        ({"location": {"latitude": ["6.5"]}}, "latitude"),
        ({"effective_after": "yesterday"}, "filter.effective_after"),
        ({"effective_after": "2026-02-01", "effective_before": "2026-01-01"}, "effective_before"),
    ],
)
def test_bad_filters_name_the_field(body: dict[str, Any], names: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SegmentIn.model_validate({"name": "s", "filter": body})
    described = "; ".join(
        ".".join(str(p) for p in err["loc"]) + ": " + err["msg"] for err in caught.value.errors()
    )
    assert names in described, described
