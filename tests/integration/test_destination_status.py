"""A destination's status follows what its exports find (issue 9, item 6), on moto (IAM
enforced): credentials refused to an export or a stream turn the destination ``failing`` with
the reason, a write that works turns it ``active`` again; and validating leaves no pile of
test objects behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from spillway.api import views
from spillway.destinations.base import CheckStatus, all_passed
from spillway.model import Actor, Destination
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.store import catalog
from tests.integration.destinations.case_s3 import S3World, allow
from tests.integration.exporting import T0
from tests.integration.streaming import create_stream, make_stream_setup, read_stream
from tests.integration.test_export_failures import bucket_keys, credentials, s3_setup
from tests.server_moto import Moto

QUARTER = 900


def destination(engine: Engine, actor: Actor, destination_id: str) -> dict[str, Any]:
    return views.destination(destination_service.get(engine, actor.project_id, destination_id))


def swap_secret(engine: Engine, row: Destination, sealed: bytes) -> None:
    """Put other sealed credentials in place behind the API's back (no validation, no status
    change): what the service finds next is all that can change the destination's status."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_destination(conn, row.id, {"credentials_sealed": sealed})


def test_an_export_refused_its_credentials_turns_the_destination_failing_until_a_write_works(
    engine: Engine, tmp_path: Path, s3_world: S3World
) -> None:
    key = s3_world.full_user()
    s = s3_setup(engine, tmp_path, s3_world, key)
    export = s.export()
    scheduler = s.scheduler()
    good = s.destination.credentials_sealed
    wrong = s.box.seal_json(
        {**credentials(key), "secret_access_key": "x" * 40},
        context=s.destination.id.encode(),
    )

    s.clock.now = T0 + QUARTER - 100
    s.ingest(3)
    s.clock.now = T0 + QUARTER + 1
    assert scheduler.tick() == {"runs": 1, "failed": 0}
    shown = destination(engine, s.actor, s.destination.id)
    assert (shown["status"], shown.get("status_reason")) == ("active", None)
    assert shown["last_validation"]["ok"] is True

    swap_secret(engine, s.destination, wrong)
    s.clock.now = T0 + 2 * QUARTER - 100
    s.ingest(3)
    s.clock.now = T0 + 2 * QUARTER + 1
    assert scheduler.tick() == {"runs": 0, "failed": 1}
    shown = destination(engine, s.actor, s.destination.id)
    assert shown["status"] == "failing"
    assert "SignatureDoesNotMatch" in shown["status_reason"]
    assert shown["last_validation"]["ok"] is False
    assert shown["last_validation"]["export_id"] == export.id
    row = export_service.get(engine, s.project_id, export.id)
    assert row.status == "failing"

    # Fixed behind the API's back too (no validation, no rotation that would set it active):
    # the export's next write is what turns the destination active again.
    swap_secret(engine, s.destination, good)
    s.clock.now += 6 * 60  # past the export's back-off
    assert scheduler.tick() == {"runs": 1, "failed": 0}
    shown = destination(engine, s.actor, s.destination.id)
    assert (shown["status"], shown.get("status_reason")) == ("active", None)
    assert shown["last_validation"]["ok"] is True
    assert export_service.get(engine, s.project_id, export.id).status == "active"


def test_a_refusal_that_is_not_the_credentials_leaves_the_destination_active(
    engine: Engine, tmp_path: Path, s3_world: S3World
) -> None:
    """A policy that no longer lets the key write: the export fails, the destination (whose
    credentials AWS still accepts) is not blamed for one export's permissions."""
    iam: Any = s3_world.moto.client("iam")
    key = s3_world.full_user()
    user = iam.get_access_key_last_used(AccessKeyId=key.access_key_id)["UserName"]
    s = s3_setup(engine, tmp_path, s3_world, key)
    export = s.export()
    iam.delete_user_policy(UserName=user, PolicyName="p")
    s.clock.now = T0 + QUARTER - 100
    s.ingest(3)
    s.clock.now = T0 + QUARTER + 1
    assert s.scheduler().tick() == {"runs": 0, "failed": 1}
    row = export_service.get(engine, s.project_id, export.id)
    assert row.status == "failing" and "AccessDenied" in row.status_reason
    assert destination(engine, s.actor, s.destination.id)["status"] == "active"


def test_a_stream_refused_its_credentials_turns_the_destination_failing_then_active(
    engine: Engine, moto: Moto
) -> None:
    setup = make_stream_setup(engine, moto)
    name = create_stream(moto, shards=1)
    row = setup.destination("kinesis", {"stream": name})
    export = setup.export(row)
    good = row.credentials_sealed
    wrong = setup.box.seal_json(
        {"mode": "access_key", "access_key_id": moto.admin_key, "secret_access_key": "x" * 40},
        context=row.id.encode(),
    )
    delivery = setup.delivery()
    swap_secret(engine, row, wrong)
    uuids = setup.ingest(20, users=4)
    assert delivery.pass_once() == 0
    shown = destination(engine, setup.actor, row.id)
    assert shown["status"] == "failing"
    assert "SignatureDoesNotMatch" in shown["status_reason"]
    swap_secret(engine, row, good)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_export(conn, export.id, {"next_attempt_at": None})
    setup.drain(delivery)
    assert len(read_stream(moto, name)) == len(uuids)
    shown = destination(engine, setup.actor, row.id)
    assert (shown["status"], shown.get("status_reason")) == ("active", None)


def test_validating_again_and_again_leaves_at_most_one_test_object(
    engine: Engine, tmp_path: Path, s3_world: S3World
) -> None:
    prefix = "exports_spillway-validation/"
    # Allowed to delete (even with cleanup off): nothing stays behind.
    s = s3_setup(engine, tmp_path, s3_world, s3_world.full_user())
    for _ in range(3):
        checks = destination_service.validate_stored(engine, s.box, s.actor, s.destination.id)
        assert all_passed(checks)
        assert {c.name: c.status for c in checks}["delete"] is CheckStatus.PASSED
    assert bucket_keys(s3_world, prefix) == []

    # Allowed to write only: one object, the same one each time, named where it stays.
    arn = f"arn:aws:s3:::{s3_world.bucket}"
    writer = s3_world.user(allow("s3:PutObject", f"{arn}/*"))
    body = {
        "name": "write-only",
        "kind": "s3",
        "config": s3_world.config().model_dump(mode="json"),
        "credentials": credentials(writer),
    }
    row, checks = destination_service.create(engine, s.box, s.actor, body)
    assert all_passed(checks)
    for _ in range(3):
        checks = destination_service.validate_stored(engine, s.box, s.actor, row.id)
        assert all_passed(checks), [c.as_dict() for c in checks]
    kept = bucket_keys(s3_world, prefix)
    assert kept == [f"{prefix}check.txt"]
    delete = next(c for c in checks if c.name == "delete")
    assert delete.status is CheckStatus.SKIPPED and kept[0] in delete.message
