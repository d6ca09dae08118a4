"""One export's failure is that export's alone (issue 9, item 1).

Three projects share one worker and one stream loop. Project A's exports are broken in every
way an export can be broken from outside the engine: a destination deleted and the export
enabled again behind the API's back, credentials this server's key cannot open, an endpoint
the operator no longer allows, a stored destination this version cannot build, and a store
that raises an error nobody foresaw; some of them streams. Project B's scheduled export and
project C's Kinesis stream deliver every event on time all along, retention still prunes, and
each of A's exports says it is ``failing``, and why, where a person looks (not only in the log).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.api import models as api_models
from spillway.api import views
from spillway.api.errors import answer_for
from spillway.engine.streamer import StreamDelivery
from spillway.engine.worker import Worker
from spillway.errors import InputError
from spillway.model import Actor, Destination
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.settings import Settings
from spillway.store import catalog
from tests.integration.chaos import CHAOS
from tests.integration.destinations.case_s3 import S3World
from tests.integration.destinations.policy import Policy
from tests.integration.exporting import T0, Clock, Setup, data_files, records
from tests.integration.streaming import create_stream, event_uuid, make_stream_setup, read_stream
from tests.server_moto import REGION, Moto
from tests.store_queries import count_events

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT.
pytestmark = pytest.mark.usefixtures("local_root")

QUARTER = 900
DAY = 86_400
BOX = SecretBox(b"k" * 48)  # the service key of every project here, as on one server


def local_destination(engine: Engine, actor: Actor, name: str) -> Destination:
    row, _ = destination_service.create(
        engine,
        BOX,
        actor,
        {
            "name": name,
            "kind": "local",
            "config": {"path": name, "folder": "spillway"},
            "credentials": {"mode": "none"},
        },
    )
    return row


def file_export(engine: Engine, actor: Actor, destination: Destination) -> str:
    body = api_models.ExportIn(name="events", destination_id=destination.id)
    return export_service.create(engine, actor, body, now=(T0 + 60) * 1000).id


def stream_export(engine: Engine, actor: Actor, destination: Destination) -> str:
    body = api_models.ExportIn(name="live", destination_id=destination.id, frequency="stream")
    return export_service.create(engine, actor, body).id


def kinesis_destination(
    engine: Engine, actor: Actor, moto: Moto, name: str, stream: str
) -> Destination:
    row, _ = destination_service.create(
        engine,
        BOX,
        actor,
        {
            "name": name,
            "kind": "kinesis",
            "config": {"stream": stream, "region": REGION, "endpoint_url": moto.endpoint},
            "credentials": {
                "mode": "access_key",
                "access_key_id": moto.admin_key,
                "secret_access_key": moto.admin_secret,
            },
        },
    )
    return row


def delete_then_enable_behind_the_api(engine: Engine, actor: Actor, export: str) -> None:
    """Delete the export's destination (which disables the export), check that the API refuses
    to enable it again, then enable it in the store anyway (an old version, a hand-made fix)."""
    destination = export_service.get(engine, actor.project_id, export).destination_id
    destination_service.delete(engine, actor, destination)
    assert export_service.get(engine, actor.project_id, export).status == "disabled"
    with pytest.raises(InputError) as refused:
        export_service.update(engine, actor, export, api_models.ExportPatch(status="active"))
    assert answer_for(refused.value).status == 409
    assert "deleted" in str(refused.value)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_export(conn, export, {"status": "active", "status_reason": None})


def make_unreadable(engine: Engine, destination: Destination) -> None:
    """Seal the destination's credentials with another service key (as after a key change)."""
    other = SecretBox(b"o" * 48)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_destination(
            conn,
            destination.id,
            {
                "credentials_sealed": other.seal_json(
                    {"mode": "none"}, context=destination.id.encode()
                )
            },
        )


def test_a_broken_project_stops_no_one_else(
    engine: Engine,
    tmp_path: Path,
    moto: Moto,
    s3_world: S3World,
    policy: Policy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setitem(registry.KINDS, "chaos", CHAOS)
    clock = Clock(T0 + 60)
    local_root = Settings().local_root
    assert local_root is not None

    # --- B: a scheduled export to a local folder; some of its events are past retention.
    b_project = create_project(engine, "bravo")
    b_actor = Actor("test", b_project.id)
    b_destination = local_destination(engine, b_actor, "bucket")
    b_root = local_root / b_project.app_id / "bucket"
    b = Setup(engine, BOX, b_root, b_project.id, b_actor, b_destination, clock)
    # Retention keeps what came after T0 - 100 days, whatever day the test runs on; these five
    # are older (and came before the export: only retention cares about them).
    retention_days = int((time.time() - (T0 - 100 * DAY)) / DAY)
    b.ingest(5, at=T0 - 200 * DAY)
    file_export(engine, b_actor, b_destination)

    # --- C: a stream to Kinesis.
    c = make_stream_setup(engine, moto)
    c_stream = create_stream(moto, shards=2)
    c.export(c.destination("kinesis", {"stream": c_stream}))

    # --- A: everything that can go wrong, each on an export of its own.
    a_project = create_project(engine, "alpha")
    a_actor = Actor("test", a_project.id)
    a = Setup(engine, BOX, tmp_path, a_project.id, a_actor, {}, clock)
    broken: dict[str, tuple[str, list[str]]] = {}  # what → (export id, words its reason has)

    export = file_export(engine, a_actor, local_destination(engine, a_actor, "gone"))
    delete_then_enable_behind_the_api(engine, a_actor, export)
    broken["destination deleted"] = (export, ["'gone'", "was deleted", "create a new export"])

    unreadable = local_destination(engine, a_actor, "sealed")
    export = file_export(engine, a_actor, unreadable)
    make_unreadable(engine, unreadable)
    broken["unreadable secret"] = (export, ["cannot be decrypted", "/credentials"])

    moved = "http://localhost:" + moto.endpoint.rsplit(":", 1)[1]  # another origin, same moto
    policy.allow(moved)
    key = s3_world.full_user()
    refused, _ = destination_service.create(
        engine,
        BOX,
        a_actor,
        {
            "name": "warehouse",
            "kind": "s3",
            "config": s3_world.config(endpoint_url=moved).model_dump(mode="json"),
            "credentials": {
                "mode": "access_key",
                "access_key_id": key.access_key_id,
                "secret_access_key": key.secret_access_key.get_secret_value(),
            },
        },
    )
    export = file_export(engine, a_actor, refused)
    policy.forbid(moved)  # the operator takes the origin off SPILLWAY_ALLOWED_ENDPOINTS
    broken["endpoint no longer allowed"] = (export, ["SPILLWAY_ALLOWED_ENDPOINTS"])

    unbuildable = local_destination(engine, a_actor, "old")
    export = file_export(engine, a_actor, unbuildable)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        # Stored by a version that had one more option: this version's models refuse it.
        config = {**unbuildable.config, "retired_option": True}
        catalog.update_destination(conn, unbuildable.id, {"config": config})
    broken["destination cannot be built"] = (export, ["cannot be opened", "config", "PATCH"])

    chaos, _ = destination_service.create(
        engine,
        BOX,
        a_actor,
        {"name": "chaos", "kind": "chaos", "config": {}, "credentials": {}, "force": True},
    )
    export = file_export(engine, a_actor, chaos)
    broken["unexpected error"] = (export, ["internal error", "RuntimeError", "chaos"])

    a_stream = create_stream(moto, shards=1)
    export = stream_export(
        engine, a_actor, kinesis_destination(engine, a_actor, moto, "live-gone", a_stream)
    )
    delete_then_enable_behind_the_api(engine, a_actor, export)
    broken["stream: destination deleted"] = (export, ["'live-gone'", "was deleted"])

    sealed_stream = kinesis_destination(engine, a_actor, moto, "live-sealed", a_stream)
    export = stream_export(engine, a_actor, sealed_stream)
    make_unreadable(engine, sealed_stream)
    broken["stream: unreadable secret"] = (export, ["cannot be decrypted"])

    # --- Three quarter-hours: events for everyone, a worker pass and a stream pass each.
    worker = Worker(engine, retention_days=retention_days, box=BOX, clock=clock)
    streams = StreamDelivery(engine, BOX, linger_ms=0)
    b_sent: list[str] = []
    pruned = 0
    for k in (1, 2, 3):
        end = T0 + k * QUARTER
        clock.now = end - 300
        window = b.ingest(7)
        b_sent += window
        a.ingest(4)
        c.ingest(40, users=10)
        clock.now = end + 1
        done = worker.run_once()
        pruned += done["pruned"]
        # B's window was delivered in the pass right after it closed: on time, all of it.
        files = data_files(b.root)
        assert len(files) == k, f"window {k} of project B was not delivered on time"
        assert files[-1].name == f"event_exports_{end}.json.gz"
        assert [r["event"]["event_uuid"] for r in records(files[-1])] == window
        # C's stream has every event stored so far, after one stream pass.
        c.drain(streams)
        got = sorted(event_uuid(data) for _, data in read_stream(moto, c_stream))
        assert got == sorted(uuid for _, uuid in c.sent), f"stream of project C behind at {k}"
    streams.close()

    assert pruned == 5  # retention ran in spite of A
    with engine.connect() as conn:
        assert count_events(conn, b_project.id) == len(b_sent)
    delivered = [r["event"]["event_uuid"] for path in data_files(b.root) for r in records(path)]
    assert delivered == b_sent

    # Each of A's exports shows what is wrong with it, where a person looks.
    for what, (export_id, words) in broken.items():
        row = export_service.get(engine, a_project.id, export_id)
        shown = views.export(engine, row)
        assert shown["status"] == "failing", f"{what}: {shown['status']} ({shown['status_reason']})"
        for word in words:
            assert word in (shown["status_reason"] or ""), f"{what}: {shown['status_reason']!r}"
    # The credentials no key opens are the destination's problem too: it says so.
    for destination in (unreadable, sealed_stream):
        row = views.destination(destination_service.get(engine, a_project.id, destination.id))
        assert row["status"] == "failing"
        assert "cannot be decrypted" in (row["status_reason"] or "")
    assert "AssertionError" not in caplog.text
