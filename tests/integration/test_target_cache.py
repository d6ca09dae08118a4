"""The scheduler keeps a destination's client across runs (issue 15, item 4) and builds a new
one when the destination changes: after a credentials rotation (the old key deleted at the
provider), the very next run delivers with the new key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.services import destinations as destination_service
from spillway.store import catalog
from tests.integration.destinations.case_s3 import S3World
from tests.integration.test_export_failures import data_keys, s3_setup

QUARTER = 900


def test_one_s3_client_across_runs_and_a_new_one_after_a_rotation(
    engine: Engine, tmp_path: Path, s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    build = registry.build

    ticking = False

    def counting(parsed: Any, tenant: Any) -> Any:  # the real build, counted in ticks
        if ticking:
            built.append(tenant)
        return build(parsed, tenant)

    monkeypatch.setattr(registry, "build", counting)  # what engine/targets.py calls
    iam: Any = s3_world.moto.client("iam")
    old_key = s3_world.full_user()
    user = iam.get_access_key_last_used(AccessKeyId=old_key.access_key_id)["UserName"]
    s = s3_setup(engine, tmp_path, s3_world, old_key)
    s.export(frequency="every_15_minutes")
    scheduler = s.scheduler()
    start = int(s.clock.now) // QUARTER * QUARTER

    def window(k: int) -> dict[str, int]:
        nonlocal ticking
        end = start + QUARTER * k
        s.clock.now = end - 300
        s.ingest(3)
        s.clock.now = end + 1
        ticking = True
        try:
            return scheduler.tick()
        finally:
            ticking = False

    for k in (1, 2, 3):
        assert window(k) == {"runs": 1, "failed": 0}
    assert len(built) == 1, "the client was built again for a run"

    # A rotation, and the old key deleted at the provider: the kept client is stale now.
    new_key = iam.create_access_key(UserName=user)["AccessKey"]
    rotated = {
        "mode": "access_key",
        "access_key_id": new_key["AccessKeyId"],
        "secret_access_key": new_key["SecretAccessKey"],
    }
    destination_service.rotate(engine, s.box, s.actor, s.destination.id, rotated)
    iam.delete_access_key(UserName=user, AccessKeyId=old_key.access_key_id)
    assert window(4) == {"runs": 1, "failed": 0}, "the run used the client of the old key"
    assert window(5) == {"runs": 1, "failed": 0}
    assert len(built) == 2
    assert len(data_keys(s3_world, "exports_events/")) == 5

    # Any other change to the stored destination gives a new client too.
    with engine.begin() as conn:
        config = s3_world.config(folder="moved").model_dump(mode="json")
        catalog.update_destination(conn, s.destination.id, {"config": config})
    assert window(6) == {"runs": 1, "failed": 0}
    assert len(built) == 3
    scheduler.close()
