"""Scheduled exports to S3 (moto, IAM enforced) through failures and changes.

Credentials revoked for three simulated days: the export stops, says why (status, run history,
webhook), writes nothing and keeps everything; after a rotation it catches up window by window
with every event exactly once. And frequency changes on S3 lose and repeat nothing.
"""

from __future__ import annotations

import gzip
import http.server
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.api import views
from spillway.destinations.s3.config import AccessKey
from spillway.engine import webhooks
from spillway.model import Actor
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.store import runs as q
from tests.integration.destinations.case_s3 import S3World
from tests.integration.exporting import T0, Clock, Setup
from tests.servers import allow_endpoint

QUARTER = 900
DAY = 86_400


def s3_setup(engine: Engine, tmp_path: Path, world: S3World, key: AccessKey) -> Setup:
    """A project with an S3 destination (validated against moto) using ``key``."""
    box = SecretBox(b"k" * 48)
    project = create_project(engine, "acme")
    actor = Actor("test", project.id)
    row, checks = destination_service.create(
        engine,
        box,
        actor,
        {
            "name": "warehouse",
            "kind": "s3",
            "config": world.config().model_dump(mode="json"),
            "credentials": credentials(key),
        },
    )
    assert all(c.status.value != "failed" for c in checks)
    return Setup(engine, box, tmp_path, project.id, actor, row, Clock(T0 + 60))


def credentials(key: AccessKey) -> dict[str, str]:
    """The API's credentials body for an access key."""
    return {
        "mode": "access_key",
        "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key.get_secret_value(),
    }


def bucket_keys(world: S3World, prefix: str) -> list[str]:
    """Every object key under ``prefix``, read as the admin (not through Spillway)."""
    s3: Any = world.moto.client("s3")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=world.bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def data_keys(world: S3World, prefix: str) -> list[str]:
    """The export's data files (no manifests), ordered by their window's epoch."""
    keys = [
        k
        for k in bucket_keys(world, prefix)
        if "/event_exports_" in k and not k.endswith(".manifest.json")
    ]
    return sorted(keys, key=epoch_of)


def epoch_of(key: str) -> int:
    """The ``<epoch>`` of ``…/event_exports_<epoch>[_<part>].json.gz``."""
    return int(key.rsplit("/event_exports_", 1)[1].split(".")[0].split("_")[0])


def read_uuids(world: S3World, keys: list[str]) -> dict[str, list[str]]:
    """event_uuid of every record of each jsonl.gz object, in file order (read as the admin)."""
    s3: Any = world.moto.client("s3")
    found: dict[str, list[str]] = {}
    for key in keys:
        data = gzip.decompress(s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())
        found[key] = [orjson.loads(line)["event"]["event_uuid"] for line in data.splitlines()]
    return found


def open_uploads(world: S3World) -> list[dict[str, Any]]:
    """Multipart uploads begun and never completed or aborted."""
    s3: Any = world.moto.client("s3")
    uploads: list[dict[str, Any]] = s3.list_multipart_uploads(Bucket=world.bucket).get(
        "Uploads", []
    )
    return uploads


@dataclass
class Hooks:
    """A tiny real HTTP server that records the webhook calls it receives."""

    url: str
    calls: list[dict[str, Any]]


@pytest.fixture
def webhook_receiver() -> Iterator[Hooks]:
    calls: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            calls.append(orjson.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/spillway"
        allow_endpoint(url)  # a loopback receiver only works when the operator lists it
        yield Hooks(url, calls)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_three_days_of_revoked_credentials_then_rotation_catches_up(
    engine: Engine, tmp_path: Path, s3_world: S3World, webhook_receiver: Hooks
) -> None:
    iam: Any = s3_world.moto.client("iam")
    old_key = s3_world.full_user()
    user = iam.get_access_key_last_used(AccessKeyId=old_key.access_key_id)["UserName"]
    s = s3_setup(engine, tmp_path, s3_world, old_key)
    export = s.export(frequency="every_15_minutes", webhook_url=webhook_receiver.url)
    prefix = "exports_events/"
    scheduler = s.scheduler(notify=webhooks.notify)
    sent: dict[int, list[str]] = {}  # window end → the uuids received inside that window

    def quarter(end: int, count: int) -> None:
        """Receive ``count`` events inside the 15-minute window ending at ``end``."""
        s.clock.now = end - QUARTER + 30
        sent[end] = s.ingest(count)
        s.clock.now = end + 1

    # One healthy hour: one file per window.
    healthy = [T0 + QUARTER * (k + 1) for k in range(4)]
    for end in healthy:
        quarter(end, 3)
        scheduler.tick()
    assert [epoch_of(k) for k in data_keys(s3_world, prefix)] == healthy

    # The customer deletes the access key (moto enforces deletion, not the Inactive status).
    # Three days pass. The worker ticks every three hours here (a real one ticks every few
    # seconds and retries a failing export every five minutes); events arrive in the first two
    # quarter-hours of each three hours, so the other windows close with nothing to deliver.
    iam.delete_access_key(UserName=user, AccessKeyId=old_key.access_key_id)
    blocks = [healthy[-1] + 3 * 3600 * b for b in range(24)]
    outage: list[int] = []
    for start in blocks:
        for end in (start + QUARTER, start + 2 * QUARTER):
            quarter(end, 2)
            outage.append(end)
        s.clock.now = start + 3 * 3600 + 1
        scheduler.tick()

    row = views.export(engine, export_service.get(engine, s.project_id, export.id))
    assert row["status"] == "failing"
    assert "InvalidAccessKeyId" in row["status_reason"]
    assert row["cursor_seq"] < q_high_water(engine)  # nothing delivered, all of it kept
    with engine.connect() as conn:
        history = [views.run(r) for r in q.list_runs(conn, export.id, limit=1000)]
    waiting = [r for r in history if r["status"] != "succeeded"]
    assert sorted(r["window_end"] for r in waiting) == outage  # a run per window with events
    first = min(waiting, key=lambda r: r["window_end"])
    assert first["status"] == "failed"
    assert "InvalidAccessKeyId" in first["error"]
    assert first["attempts"] == len(blocks)  # retried at every tick, never given up
    assert first["files"] == [] and first["events"] == 0
    assert {r["status"] for r in waiting if r is not first} == {"queued"}
    # Nothing written during the outage, not even a part; the events wait in the store.
    assert [epoch_of(k) for k in data_keys(s3_world, prefix)] == healthy
    assert open_uploads(s3_world) == []
    assert webhooks.flush(10)  # calls go out from the background queue
    assert [c["status"] for c in webhook_receiver.calls] == ["failing"]
    assert "InvalidAccessKeyId" in webhook_receiver.calls[0]["reason"]
    assert webhook_receiver.calls[0]["export_id"] == export.id

    # The fix: a new key for the same user, validated by the rotation before it is saved.
    new_key = iam.create_access_key(UserName=user)["AccessKey"]
    destination_service.rotate(
        engine,
        s.box,
        s.actor,
        s.destination.id,
        {
            "mode": "access_key",
            "access_key_id": new_key["AccessKeyId"],
            "secret_access_key": new_key["SecretAccessKey"],
        },
    )
    done = scheduler.tick()  # no waiting for the back-off: rotation cleared it
    assert done == {"runs": len(outage), "failed": 0}

    keys = data_keys(s3_world, prefix)
    assert [epoch_of(k) for k in keys] == healthy + outage  # window by window
    delivered = read_uuids(s3_world, keys)
    for key, uuids in delivered.items():
        assert uuids == sent[epoch_of(key)]
    every = Counter(u for uuids in delivered.values() for u in uuids)
    assert every == Counter(u for uuids in sent.values() for u in uuids)
    assert set(every.values()) == {1}
    assert open_uploads(s3_world) == []
    row = views.export(engine, export_service.get(engine, s.project_id, export.id))
    assert (row["status"], row["status_reason"], row["next_attempt_at"]) == ("active", None, None)
    assert row["last_window_end"] == blocks[-1] + 3 * 3600
    assert row["cursor_seq"] == q_high_water(engine)
    with engine.connect() as conn:
        history = q.list_runs(conn, export.id, limit=1000)
    assert {r.status for r in history} == {"succeeded"}
    assert webhooks.flush(10)
    assert [c["status"] for c in webhook_receiver.calls] == ["failing", "active"]
    assert webhook_receiver.calls[1]["reason"] is None


def q_high_water(engine: Engine) -> int:
    """The newest stored event's sequence."""
    with engine.connect() as conn:
        return q.high_water_now(conn)


def test_frequency_changes_on_s3_lose_and_repeat_nothing(
    engine: Engine, tmp_path: Path, s3_world: S3World
) -> None:
    s = s3_setup(engine, tmp_path, s3_world, s3_world.full_user())
    export = s.export(frequency="every_15_minutes")
    scheduler = s.scheduler()
    sent: list[str] = []

    def at(moment: int, count: int = 0) -> None:
        s.clock.now = moment
        if count:
            sent.extend(s.ingest(count))
        scheduler.tick()

    def change(frequency: Any) -> None:
        patch = api_models.ExportPatch(frequency=frequency)
        export_service.update(engine, s.actor, export.id, patch)

    for k in range(3):  # 00:00-00:45, three quarter-hour files
        at(T0 + k * QUARTER + 100, 4)
    at(T0 + 3 * QUARTER + 100, 4)  # received in 00:45-01:00, not delivered yet…
    change("daily")  # …when the frequency changes: they go into the daily file
    at(T0 + 3 * 3600, 5)
    at(T0 + 20 * 3600, 5)
    at(T0 + DAY + 1)  # the first daily window closes
    at(T0 + DAY + 2 * 3600, 5)
    at(T0 + 2 * DAY + 1)
    at(T0 + 2 * DAY + 3 * 3600, 5)  # pending when the frequency changes again
    change("weekly")
    at(T0 + 4 * DAY, 5)
    at(T0 + 6 * DAY + 23 * 3600, 5)
    at(T0 + 7 * DAY + 1)  # Monday 00:00: the weekly window closes
    change("every_15_minutes")  # and back
    at(T0 + 7 * DAY + 100, 3)
    at(T0 + 7 * DAY + QUARTER + 1)

    keys = data_keys(s3_world, "exports_events/")
    assert [epoch_of(k) for k in keys] == [
        T0 + QUARTER,
        T0 + 2 * QUARTER,
        T0 + 3 * QUARTER,
        T0 + DAY,
        T0 + 2 * DAY,
        T0 + 7 * DAY,
        T0 + 7 * DAY + QUARTER,
    ]
    assert keys[3].startswith("exports_events/export_day=24-11-2026/")
    assert keys[5].startswith("exports_events/export_day=30-11-2026/")
    delivered = [u for uuids in read_uuids(s3_world, keys).values() for u in uuids]
    assert Counter(delivered) == Counter(sent)
    assert len(delivered) == len(set(delivered)) == len(sent) == 49
