"""Memory case: the in-memory kind of ``memory/``, registered for the test and built through the
registry exactly as the app builds a destination (parse, then build)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from spillway import destinations as registry
from spillway.destinations.base import ObjectStore, Tenant
from tests.integration.destinations.cases import StoreCase
from tests.integration.destinations.memory import client

MEMORY = "tests.integration.destinations.memory.kind"


@pytest.fixture
def memory_kind() -> Iterator[str]:
    """The ``memory`` kind in the registry for one test, gone afterwards."""
    registry.register("memory", MEMORY)
    try:
        yield "memory"
    finally:
        registry.unregister("memory")


@pytest.fixture
def memory_case(memory_kind: str) -> Iterator[StoreCase]:
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    client.BUCKETS[bucket] = {}
    tenant = Tenant(uuid.uuid4().hex, "acme", "unused-external-id")

    def store(bucket: str, token: str = client.TOKEN, part_size: int = 1024) -> ObjectStore:
        config = {"bucket": bucket, "folder": "exports"}
        parsed = registry.parse(memory_kind, config, {"mode": "token", "token": token}, tenant)
        built = registry.build(parsed, tenant)
        assert isinstance(built, ObjectStore)
        built.part_size = part_size
        return built

    yield StoreCase(
        kind=memory_kind,
        make=lambda part_size: store(bucket, part_size=part_size),
        make_bad_credentials=lambda: store(bucket, token="wrong"),
        make_missing_bucket=lambda: store(f"missing-{bucket}"),
        raw_read=lambda key: client.BUCKETS[bucket].get(key),
        credentials_check="credentials",
        bucket_check="bucket",
        min_part_size=1024,
    )
    client.BUCKETS.pop(bucket, None)
