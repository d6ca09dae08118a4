"""Unit tests of endpoint validation and the merge rules of an update."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from spillway.api.errors import answer_for
from spillway.api.models import EndpointBatch, EndpointIn
from spillway.api.views import endpoint as public
from spillway.errors import InputError
from spillway.model import Endpoint
from spillway.services.profiles import merge, upsert
from spillway.services.projects import create_project
from spillway.store import endpoints as q
from spillway.store.db import create_engine, migrate


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path}/db")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def project_id(sqlite_engine: Engine) -> int:
    return create_project(sqlite_engine, "demo").id


def stored(engine: Engine, project_id: int, endpoint_id: str) -> Endpoint | None:
    with engine.connect() as conn:
        return q.get_endpoint(conn, project_id, endpoint_id)


def created(**fields: Any) -> Endpoint:
    """A record as merge() creates it from ``fields``."""
    return merge(None, EndpointIn(**fields), "ep-1")


# --- merge --------------------------------------------------------------------------------


def test_new_endpoint_gets_defaults() -> None:
    record = created(channel_type="EMAIL", address="a@example.com")
    assert record.endpoint_id == "ep-1"
    assert record.channel_type == "EMAIL"
    assert record.address == "a@example.com"
    assert record.endpoint_status == "ACTIVE"
    assert record.opt_out == "NONE"
    assert record.user_id is None
    for name in ("attributes", "user_attributes", "demographic", "location", "metrics"):
        assert getattr(record, name) == {}
    assert record.created_at == record.updated_at


def test_maps_merge_key_by_key() -> None:
    existing = created(
        attributes={"interests": ["golf"], "plan": ["pro"]},
        metrics={"visits": 3, "spend": 10.5},
        demographic={"locale": "en_US", "platform": "ios"},
    )
    update = EndpointIn(
        attributes={"plan": ["enterprise"], "team": ["a", "b"]},
        metrics={"visits": 4},
        demographic={"timezone": "Europe/Paris"},
    )
    record = merge(existing, update, "ep-1")
    assert record.attributes == {
        "interests": ["golf"],
        "plan": ["enterprise"],
        "team": ["a", "b"],
    }
    assert record.metrics == {"visits": 4, "spend": 10.5}
    assert record.demographic == {
        "locale": "en_US",
        "platform": "ios",
        "timezone": "Europe/Paris",
    }


def test_null_removes_a_key_from_a_map() -> None:
    existing = created(
        attributes={"interests": ["golf"], "plan": ["pro"]},
        metrics={"visits": 3},
        location={"city": "Lyon", "country": "FR"},
    )
    update = EndpointIn(
        attributes={"plan": None, "never-there": None},
        metrics={"visits": None},
        location={"city": None},
    )
    record = merge(existing, update, "ep-1")
    assert record.attributes == {"interests": ["golf"]}
    assert record.metrics == {}
    assert record.location == {"country": "FR"}


def test_omitted_maps_and_scalars_are_kept() -> None:
    existing = created(user_id="u1", address="a@example.com", attributes={"a": ["1"]})
    record = merge(existing, EndpointIn(), "ep-1")
    assert record.user_id == "u1"
    assert record.address == "a@example.com"
    assert record.attributes == {"a": ["1"]}


def test_scalars_replace() -> None:
    existing = created(
        user_id="u1",
        channel_type="EMAIL",
        address="old@example.com",
        endpoint_status="ACTIVE",
        opt_out="NONE",
        effective_date="2026-01-01T00:00:00Z",
    )
    update = EndpointIn(
        user_id="u2",
        channel_type="SMS",
        address="+33600000000",
        endpoint_status="INACTIVE",
        opt_out="ALL",
        effective_date="2026-02-01T00:00:00Z",
    )
    record = merge(existing, update, "ep-1")
    assert {name: getattr(record, name) for name in update.model_fields_set} == update.model_dump(
        exclude_unset=True
    )
    assert record.created_at == existing.created_at


def test_merge_does_not_modify_the_existing_record() -> None:
    existing = created(attributes={"a": ["1"]})
    snapshot = {
        key: (dict(value) if isinstance(value, dict) else value)
        for key, value in existing.columns().items()
    }
    merge(existing, EndpointIn(attributes={"a": None, "b": "2"}, user_id="u9"), "ep-1")
    assert existing.columns() == snapshot


# --- validation ---------------------------------------------------------------------------


def test_lone_string_attribute_is_wrapped_into_a_list() -> None:
    item = EndpointIn(attributes={"plan": "pro"}, user_attributes={"tier": "gold"})
    assert item.attributes == {"plan": ["pro"]}
    assert item.user_attributes == {"tier": ["gold"]}
    assert created(attributes={"plan": "pro"}).attributes == {"plan": ["pro"]}


@pytest.mark.parametrize("value", [5, 1.5, True, {"nested": "x"}, ["ok", 3], [None]])
@pytest.mark.parametrize("field", ["attributes", "user_attributes"])
def test_non_string_attribute_value_is_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        EndpointIn.model_validate({field: {"plan": value}})
    assert "attribute 'plan' must be a string or a list of strings" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        {"channel_type": "PIGEON"},
        {"endpoint_status": "active"},
        {"opt_out": "SOME"},
        {"metrics": {"visits": "many"}},
        {"location": {"latitude": 91}},
        {"location": {"country": "FRANCE"}},
        {"demographic": {"shoe_size": "42"}},
        {"unknown_field": 1},
        {"endpoint_id": ""},
    ],
)
def test_invalid_endpoint_bodies_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EndpointIn.model_validate(body)


def test_batch_holds_1_to_100_endpoints() -> None:
    assert len(EndpointBatch.model_validate({"endpoints": [{"endpoint_id": "a"}]}).endpoints) == 1
    with pytest.raises(ValidationError):
        EndpointBatch.model_validate({"endpoints": []})
    with pytest.raises(ValidationError):
        EndpointBatch.model_validate({"endpoints": [{"endpoint_id": str(i)} for i in range(101)]})


# --- upsert -------------------------------------------------------------------------------


def test_upsert_creates_then_merges_with_the_stored_endpoint(
    sqlite_engine: Engine, project_id: int
) -> None:
    first = EndpointIn(
        channel_type="EMAIL",
        address="a@example.com",
        attributes={"interests": ["golf"], "plan": "pro"},
    )
    [record] = upsert(sqlite_engine, project_id, [("ep-1", first)])
    assert record.attributes == {"interests": ["golf"], "plan": ["pro"]}

    second = EndpointIn(endpoint_id="ep-1", attributes={"plan": None, "team": "x"}, user_id="u1")
    [record] = upsert(sqlite_engine, project_id, [("ep-1", second)])
    assert record.attributes == {"interests": ["golf"], "team": ["x"]}

    row = stored(sqlite_engine, project_id, "ep-1")
    assert row is not None
    assert public(row) == public(record)
    assert row.address == "a@example.com"
    assert row.user_id == "u1"


def test_upsert_applies_repeated_ids_in_order(sqlite_engine: Engine, project_id: int) -> None:
    items = [
        ("ep-1", EndpointIn(attributes={"a": "1"})),
        ("ep-1", EndpointIn(attributes={"b": "2"})),
    ]
    upsert(sqlite_engine, project_id, items)
    row = stored(sqlite_engine, project_id, "ep-1")
    assert row is not None
    assert row.attributes == {"a": ["1"], "b": ["2"]}


def test_mismatched_endpoint_id_is_an_input_error_and_nothing_is_stored(
    sqlite_engine: Engine, project_id: int
) -> None:
    items = [
        ("ep-1", EndpointIn(address="a@example.com")),
        ("ep-2", EndpointIn(endpoint_id="ep-3", address="b@example.com")),
    ]
    with pytest.raises(InputError) as info:
        upsert(sqlite_engine, project_id, items)
    assert answer_for(info.value).status == 400
    assert "'ep-3'" in str(info.value)
    assert "'ep-2'" in str(info.value)
    assert stored(sqlite_engine, project_id, "ep-1") is None
    assert stored(sqlite_engine, project_id, "ep-2") is None
