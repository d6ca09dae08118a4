"""Each kind describes itself (``capabilities``), and what reads the descriptions — updates, the
stream/file check of exports — works for a kind added by a test as for the built-in ones."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.errors import InputError
from spillway.model import Actor
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from tests.integration.destinations.memory import client

BUILT_IN = ["local", "s3", "gcs", "azure_blob", "kinesis", "firehose"]


def _modes(schema: Any) -> set[str]:
    """Every value a ``mode`` property of a JSON schema may take."""
    found: set[str] = set()
    if isinstance(schema, dict):
        mode = (schema.get("properties") or {}).get("mode") or {}
        found.update(v for v in [mode.get("const"), mode.get("default")] if isinstance(v, str))
        found.update(mode.get("enum") or ())
        for value in schema.values():
            found |= _modes(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _modes(value)
    return found


@pytest.mark.parametrize("kind", BUILT_IN)
def test_every_kind_describes_itself(kind: str) -> None:
    module = registry.kind_module(kind)
    capabilities = registry.capabilities(kind)
    assert set(capabilities.updatable) <= set(module.Config.model_fields), kind
    assert _modes(module.Credentials.model_json_schema()) <= set(capabilities.auth_modes), kind
    assert capabilities.stream == (kind in ("kinesis", "firehose"))


@pytest.mark.parametrize(
    ("kind", "config", "shown"),
    [
        ("s3", {"bucket": "acme", "folder": "spillway/events"}, "s3://acme/spillway/events"),
        ("gcs", {"bucket": "acme", "folder": ""}, "gs://acme"),
        ("azure_blob", {"container": "exports", "folder": "f"}, "azure://exports/f"),
        ("local", {"path": "out", "folder": "spillway"}, "local://out/spillway"),
        (
            "kinesis",
            {"stream": "events", "region": "eu-west-1"},
            "kinesis stream events in eu-west-1",
        ),
        (
            "firehose",
            {"delivery_stream": "events", "region": "us-east-1"},
            "firehose delivery stream events in us-east-1",
        ),
    ],
)
def test_each_kind_shows_its_location(kind: str, config: dict[str, Any], shown: str) -> None:
    assert registry.capabilities(kind).location(config) == shown


def test_stream_kinds_come_from_the_kinds(memory_kind: str) -> None:
    assert registry.stream_kinds() == ["kinesis", "firehose"]  # memory is an object store
    assert memory_kind in registry.KINDS


def test_registering_a_kind_twice_is_refused(memory_kind: str) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register(memory_kind, "anything")


def test_a_registered_kind_drives_updates_and_the_export_check(
    memory_kind: str, engine: Engine
) -> None:
    client.BUCKETS["kinds"] = {}
    try:
        box = SecretBox(b"k" * 48)
        actor = Actor("test", create_project(engine, "acme").id)
        body = {
            "name": "memory",
            "kind": memory_kind,
            "config": {"bucket": "kinds"},
            "credentials": {"mode": "token", "token": client.TOKEN},
        }
        row, checks = destination_service.create(engine, box, actor, body)
        assert checks, "validated"
        destination_id = row.id
        # Only what the kind lists as updatable may change; the refusal names those fields.
        with pytest.raises(
            InputError, match="cannot change bucket of a memory destination; changeable: folder"
        ):
            destination_service.update(
                engine, box, actor, destination_id, {"config": {"bucket": "other"}}
            )
        moved, _ = destination_service.update(
            engine, box, actor, destination_id, {"config": {"folder": "elsewhere"}}
        )
        assert moved.config["folder"] == "elsewhere"
        # An object store takes file exports; "stream" names the kinds that take streams.
        export_service.check_frequency(memory_kind, "daily")
        with pytest.raises(InputError, match='"stream" needs a kinesis or firehose destination'):
            export_service.check_frequency(memory_kind, "stream")
    finally:
        client.BUCKETS.pop("kinds", None)
