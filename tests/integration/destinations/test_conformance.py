"""Every object-store destination, against its real test server, behaves the same."""

from __future__ import annotations

import hashlib
import os

import pytest

from spillway import destinations as registry
from spillway.destinations.base import CheckStatus, Needs, all_passed
from tests.integration.destinations.cases import StoreCase

# "memory": a kind written in the tests (memory/), registered by its case fixture.
KINDS = ["local", "s3", "gcs", "azure_blob", "memory"]


@pytest.fixture(params=KINDS)
def case(request: pytest.FixtureRequest) -> StoreCase:
    result: StoreCase = request.getfixturevalue(f"{request.param}_case")
    return result


def test_small_object_reads_back_identical(case: StoreCase) -> None:
    store = case.make(case.min_part_size)
    data = b'{"event": 1}\n' * 100
    stored = store.put_object("exports_events/small.json", data)
    assert stored.size == len(data)
    assert case.raw_read("exports_events/small.json") == data
    assert store.read_object("exports_events/small.json") == data


def test_multipart_object_reads_back_identical(case: StoreCase) -> None:
    part = case.min_part_size
    store = case.make(part)
    data = os.urandom(part * 2 + part // 3)  # three parts, the last one short
    with store.open_object("exports_events/big.bin") as writer:
        for start in range(0, len(data), 256 * 1024 + 7):  # odd chunk sizes on purpose
            writer.write(data[start : start + 256 * 1024 + 7])
    assert writer.size == len(data)
    got = case.raw_read("exports_events/big.bin")
    assert got is not None
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_multipart_upload_really_uses_parts(case: StoreCase) -> None:
    if not registry.capabilities(case.kind).multipart:
        pytest.skip("a local file has no parts")  # the only skip: nothing to check
    part = case.min_part_size
    store = case.make(part)
    writer = store.open_object("exports_events/parts.bin")
    writer.write(os.urandom(part * 2 + 10))
    stored = writer.commit()
    assert stored.details.get("parts", 0) >= 2


def test_abort_leaves_no_object(case: StoreCase) -> None:
    part = case.min_part_size
    store = case.make(part)
    writer = store.open_object("exports_events/aborted.bin")
    writer.write(os.urandom(part + 100))  # at least one part already sent
    writer.abort()
    assert case.raw_read("exports_events/aborted.bin") is None
    assert "exports_events/aborted.bin" not in store.list_objects("exports_events/")


def test_commit_replaces_existing_object(case: StoreCase) -> None:
    store = case.make(case.min_part_size)
    store.put_object("exports_events/same.json", b"first")
    store.put_object("exports_events/same.json", b"second")
    assert case.raw_read("exports_events/same.json") == b"second"


def test_list_and_delete(case: StoreCase) -> None:
    store = case.make(case.min_part_size)
    for name in ("b", "a", "c"):
        store.put_object(f"exports_events/{name}.json", b"x")
    store.put_object("elsewhere/z.json", b"x")
    assert store.list_objects("exports_events/") == [
        "exports_events/a.json",
        "exports_events/b.json",
        "exports_events/c.json",
    ]
    store.delete_object("exports_events/b.json")
    store.delete_object("exports_events/b.json")  # already gone: no error
    assert case.raw_read("exports_events/b.json") is None


def test_validation_passes_with_every_need(case: StoreCase) -> None:
    checks = case.make(case.min_part_size).validate(Needs(read=True, list=True, delete=True))
    assert all_passed(checks), [c.as_dict() for c in checks]
    statuses = {c.name: c.status for c in checks}
    assert statuses["write"] is CheckStatus.PASSED
    assert statuses["delete"] is CheckStatus.PASSED


def test_validation_leaves_no_pile_of_test_objects(case: StoreCase) -> None:
    """One fixed key per folder, replaced by each validation, and deleted whenever the store
    allows it, cleanup needed or not (here it does: nothing stays)."""
    store = case.make(case.min_part_size)
    for _ in range(3):
        checks = store.validate(Needs())
        assert all_passed(checks), [c.as_dict() for c in checks]
        delete = next(c for c in checks if c.name == "delete")
        assert delete.status is CheckStatus.PASSED, delete.message
    assert store.list_objects("exports_spillway-validation/") == []


def test_bad_credentials_fail_the_credentials_check(case: StoreCase) -> None:
    checks = case.make_bad_credentials().validate(Needs())
    failed = [c for c in checks if c.status is CheckStatus.FAILED]
    assert failed, [c.as_dict() for c in checks]
    assert failed[0].name == case.credentials_check, [c.as_dict() for c in checks]
    assert failed[0].message
    for word in case.credentials_words:
        assert word in failed[0].message, failed[0].message
    if case.credentials_check == case.bucket_check:
        # Same check name: the message must tell a refused write from a missing bucket.
        missing = [c for c in case.make_missing_bucket().validate(Needs()) if c.message]
        assert failed[0].message not in {c.message for c in missing}, failed[0].message


def test_missing_bucket_fails_the_bucket_check(case: StoreCase) -> None:
    checks = case.make_missing_bucket().validate(Needs())
    failed = [c for c in checks if c.status is CheckStatus.FAILED]
    assert failed, [c.as_dict() for c in checks]
    assert failed[0].name == case.bucket_check, [c.as_dict() for c in checks]
    assert "exist" in failed[0].message
