"""The export settings models: PATCH takes exactly the fields of POST (but the name and the
destination), each one optional, with the same types, limits and checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from spillway.api.models import ExportIn, ExportPatch
from spillway.api.models import ExportSettingsIn as ExportSettings

CREATE_ONLY = {"name", "destination_id", "start"}  # chosen once, at creation


def test_patch_fields_are_the_create_fields_plus_status() -> None:
    shared = set(ExportIn.model_fields) - CREATE_ONLY
    assert set(ExportPatch.model_fields) == shared | {"status"}
    assert set(ExportSettings.model_fields) | {"frequency"} == shared


@pytest.mark.parametrize("name", sorted(set(ExportIn.model_fields) - CREATE_ONLY))
def test_a_patch_field_is_defined_as_the_create_field(name: str) -> None:
    created, patched = ExportIn.model_fields[name], ExportPatch.model_fields[name]
    assert patched.annotation == created.annotation
    assert patched.metadata == created.metadata  # limits and checks
    assert not patched.is_required()


def test_patch_schema_has_no_defaults() -> None:
    """An omitted field keeps the stored value: the schema promises no default."""
    for name, schema in ExportPatch.model_json_schema()["properties"].items():
        assert "default" not in schema, name


INVALID: list[tuple[str, Any]] = [
    ("events", []),
    ("events", None),
    ("events", "some"),
    ("user_attributes", None),
    ("device_attributes", None),
    ("format", "xml"),
    ("format", None),
    ("compression", "brotli"),
    ("max_file_bytes", 10),
    ("max_file_bytes", None),
    ("webhook_url", "ftp://example.com/x"),
    ("webhook_url", "http://example.com/x"),
    ("pgp_public_key", "not a key"),
    ("record_format", "xml"),
    ("frequency", None),
    ("frequency", "monthly"),  # (hourly is a frequency now)
    ("layout", "flat"),
    ("layout", None),
]


@pytest.mark.parametrize(("name", "value"), INVALID)
def test_post_and_patch_refuse_the_same_values(name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as created:
        ExportIn.model_validate({"name": "e", "destination_id": "d", name: value})
    with pytest.raises(ValidationError) as patched:
        ExportPatch.model_validate({name: value})
    assert {e["loc"][0] for e in created.value.errors()} == {name}
    assert {e["loc"][0] for e in patched.value.errors()} == {name}


def test_patch_keeps_what_is_omitted_and_clears_what_is_null() -> None:
    patch = ExportPatch.model_validate({"webhook_url": None, "format": "csv"})
    assert patch.model_dump(exclude_unset=True) == {"webhook_url": None, "format": "csv"}
    assert ExportPatch.model_validate({}).model_dump(exclude_unset=True) == {}
