"""Run now, an export's start and a deleted export's history, over HTTP with a hand-moved clock
(issue 9, items 2, 3 and 9).

- A run now never overwrites a file: not the one of a window closing in the same second, not
  another run now's; every bucket object keeps its bytes (sha256) from the moment it appears.
- Every run now answers with a run that exists and delivers everything received before it,
  also when two come in one second; across all files each event is delivered exactly once.
- ``"start"`` at creation: ``"retention"`` or a past epoch puts the retained history into the
  first run, exactly once with what follows; ``"now"`` (the default) does not; a start in the
  future or before retention is a 422 saying what is allowed.
- A deleted export's run history stays readable.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spillway.api.app import create_app
from spillway.errors import TransientError
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import Scope, create_key
from spillway.settings import Settings
from tests.integration.exporting import T0, Setup, delivered_uuids, make_setup

pytestmark = pytest.mark.usefixtures("local_root")

DAY = 86_400


@dataclass
class World:
    s: Setup
    client: TestClient
    headers: dict[str, str]
    settings: Settings
    run_ids: list[str] = field(default_factory=list)

    def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "events")
        body.setdefault("destination_id", self.s.destination.id)
        response = self.client.post("/api/v1/exports", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        shown: dict[str, Any] = response.json()
        return shown

    def run_now(self, export_id: str) -> str:
        response = self.client.post(f"/api/v1/exports/{export_id}/run", headers=self.headers)
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        self.run_ids.append(run_id)
        return run_id

    def run(self, export_id: str, run_id: str) -> dict[str, Any]:
        response = self.client.get(
            f"/api/v1/exports/{export_id}/runs/{run_id}", headers=self.headers
        )
        assert response.status_code == 200, f"run {run_id}: {response.status_code} {response.text}"
        found: dict[str, Any] = response.json()
        return found

    def tick(self, **kwargs: Any) -> dict[str, int]:
        return self.s.scheduler(**kwargs).tick()


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The API and a scheduler on one database, both on the setup's hand-moved clock."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    app = create_app(settings)
    engine = app.state.context.engine
    s = make_setup(engine, tmp_path)
    # The API's notion of "now" (a run now's second, creation) is the test's clock.
    monkeypatch.setattr(export_service, "now_ms", lambda: int(s.clock.now * 1000))
    token = create_key(engine, SecretBox(settings.service_key()), "acme", Scope.WRITE).token
    try:
        with TestClient(app) as client:
            yield World(s, client, {"Authorization": f"Bearer {token}"}, settings)
    finally:
        engine.dispose()


class Bucket:
    """Every export object (files and manifests) ever seen, with its sha256: none may change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, str] = {}

    def now(self) -> dict[str, str]:
        return {
            p.relative_to(self.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in self.root.rglob("event_exports_*")
            if p.is_file()
        }

    def check(self) -> None:
        current = self.now()
        for key, sha in self.seen.items():
            assert key in current, f"{key} was removed"
            assert current[key] == sha, f"{key} was overwritten"
        self.seen.update(current)


def exactly_once(root: Path, sent: list[str]) -> None:
    delivered = Counter(delivered_uuids(root))
    twice = sorted(u for u, n in delivered.items() if n > 1)
    missing = sorted(set(sent) - set(delivered))
    assert not twice, f"{len(twice)} events delivered more than once"
    assert not missing, f"{len(missing)} events not delivered"
    assert delivered == Counter(sent)


def test_run_now_in_the_second_a_window_closes_keeps_the_windows_file(world: World) -> None:
    s, bucket = world.s, Bucket(world.s.root)
    export = world.create()
    sent = s.ingest(30, at=T0 + 100)
    s.clock.now = T0 + 900  # the first window closes: its file is written
    assert world.tick() == {"runs": 1, "failed": 0}
    exactly_once(s.root, sent)
    bucket.check()
    assert len(bucket.seen) == 2  # the window's file and its manifest

    # In that very second: more events, then a run now, delivered at once.
    sent += s.ingest(20, at=T0 + 900)
    run_id = world.run_now(export["id"])
    assert world.tick() == {"runs": 1, "failed": 0}
    bucket.check()  # the window's file keeps its bytes
    exactly_once(s.root, sent)
    run = world.run(export["id"], run_id)
    assert run["status"] == "succeeded" and run["events"] == 20
    assert run["window_end"] == T0 + 900
    # Named by its second and its sequence range, in the window's day folder.
    after, through = run["sequence_range"]["after"], run["sequence_range"]["through"]
    assert run["files"] == [
        f"spillway_events/export_day=23-11-2026/event_exports_{T0 + 900}_manual_{after}-{through}"
        ".json.gz"
    ]

    # Later windows, later events: still each once, no file ever rewritten.
    sent += s.ingest(5, at=T0 + 1000)
    s.clock.now = T0 + 2 * DAY
    world.tick()
    bucket.check()
    exactly_once(s.root, sent)


def test_two_run_nows_in_one_second_are_two_runs_delivering_all_before_each(
    world: World,
) -> None:
    s, bucket = world.s, Bucket(world.s.root)
    export = world.create()
    sent: list[str] = []
    for moment in (T0 + 1000.25, T0 + 1000.5, T0 + 1000.75):
        # One second, three run-nows, each picked up before the next is asked for.
        s.clock.now = moment
        sent += s.ingest(10, at=moment)
        run_id = world.run_now(export["id"])
        assert world.tick()["failed"] == 0
        exactly_once(s.root, sent)  # everything received before it is delivered
        bucket.check()
        assert world.run(export["id"], run_id)["events"] == 10

    # Two more in the same second, both queued before the worker looks: the first takes
    # everything, the second finds nothing new; both exist and succeed.
    sent += s.ingest(7, at=T0 + 1000.8)
    first = world.run_now(export["id"])
    sent += s.ingest(3, at=T0 + 1000.9)
    second = world.run_now(export["id"])
    assert world.tick() == {"runs": 2, "failed": 0}
    exactly_once(s.root, sent)
    bucket.check()
    assert world.run(export["id"], first)["events"] == 10
    assert world.run(export["id"], second)["events"] == 0

    # The windows that close later hold only what came after.
    sent += s.ingest(4, at=T0 + 1200)
    s.clock.now = T0 + 2 * DAY
    world.tick()
    bucket.check()
    exactly_once(s.root, sent)
    assert len(set(world.run_ids)) == 5
    listed = world.client.get(f"/api/v1/exports/{export['id']}/runs", headers=world.headers)
    listed_ids = {run["id"] for run in listed.json()["runs"]}
    for run_id in world.run_ids:
        assert world.run(export["id"], run_id)["status"] == "succeeded"
        assert run_id in listed_ids


def test_cleanup_of_a_window_never_removes_a_run_nows_files(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window closing in a run now's second, delivered after it (with cleanup on, which
    deletes its own leftovers): the run now's files stay."""
    s = world.s
    tidy, _ = destination_service.create(
        s.engine,
        s.box,
        s.actor,
        {
            "name": "tidy",
            "kind": "local",
            "config": {"path": "tidy", "folder": "spillway"},
            "credentials": {"mode": "none"},
            "features": {"cleanup": True},
        },
    )
    root = s.root.parent / "tidy"
    bucket = Bucket(root)
    export = world.create(destination_id=tidy.id)
    sent = s.ingest(10, at=T0 + 100)
    s.clock.now = T0 + 900
    world.run_now(export["id"])

    failed = {"done": False}

    def fail_once(checkpoint: str) -> None:
        if checkpoint == "before_upload" and not failed["done"]:
            failed["done"] = True
            raise TransientError("injected: the run now's first upload fails")

    # The run now fixes its range, then fails; the window closing this second queues behind it.
    assert world.tick(hook=fail_once)["failed"] == 1
    # An event received before the window's end, stored only now: it is the window's.
    sent += s.ingest(5, at=T0 + 899)
    s.clock.now = T0 + 900 + 3600  # past the back-off
    world.tick()
    bucket.check()
    exactly_once(root, sent)
    names = sorted(bucket.seen)
    assert any("_manual_" in name for name in names), names
    assert f"spillway_events/export_day=23-11-2026/event_exports_{T0 + 900}.json.gz" in names


def test_start_retention_delivers_the_history_once(world: World) -> None:
    s = world.s
    s.clock.now = T0 + 60
    too_old = s.ingest(5, at=T0 - 100 * DAY)  # beyond the 90 days of retention
    history = s.ingest(40, at=T0 - 30 * DAY)
    history += s.ingest(10, at=T0 - 60)

    everything = world.create(name="everything", start="retention")
    assert everything["start"] == "retention"
    assert everything["start_at"] == (T0 + 60 - 90 * DAY) * 1000
    default = world.create(name="fresh")
    assert default["start"] == "now"
    since = world.create(name="since", start=T0 - 31 * DAY)
    assert since["start"] == T0 - 31 * DAY
    shown = world.client.get(f"/api/v1/exports/{since['id']}", headers=world.headers).json()
    assert (shown["start"], shown["start_seq"]) == (since["start"], since["start_seq"])

    fresh = s.ingest(6, at=T0 + 120)
    run_id = world.run_now(everything["id"])
    world.tick()
    first = world.run(everything["id"], run_id)
    assert first["events"] == len(history) + len(fresh)
    folder = s.root / "spillway_everything"
    exactly_once(folder, history + fresh)
    assert not set(too_old) & set(delivered_uuids(folder))

    # Afterwards only what is new, in windows and runs now alike.
    later = s.ingest(9, at=T0 + 1000)
    s.clock.now = T0 + 2 * DAY
    world.tick()
    exactly_once(folder, history + fresh + later)
    last = s.ingest(3, at=T0 + 2 * DAY)
    run_id = world.run_now(everything["id"])
    world.tick()
    assert world.run(everything["id"], run_id)["events"] == 3
    exactly_once(folder, history + fresh + later + last)

    # A past epoch: from then on. The default: what is received from the creation on.
    s.clock.now = T0 + 3 * DAY
    world.tick()
    exactly_once(s.root / "spillway_since", history + fresh + later + last)
    exactly_once(s.root / "spillway_fresh", fresh + later + last)


def test_a_start_in_the_future_or_before_retention_is_422(world: World) -> None:
    s = world.s
    s.clock.now = T0 + 60
    for start, why in [
        (T0 + 3600, "in the future"),
        (T0 - 91 * DAY, "before the retention period"),
    ]:
        response = world.client.post(
            "/api/v1/exports",
            json={"name": "e", "destination_id": s.destination.id, "start": start},
            headers=world.headers,
        )
        assert response.status_code == 422, response.text
        message = response.json()["message"]
        assert why in message
        assert '"now", "retention"' in message
        assert f"to {T0 + 60} (now)" in message
    bad: list[object] = ["yesterday", -1, 1.5, None]
    for value in bad:
        response = world.client.post(
            "/api/v1/exports",
            json={"name": "e", "destination_id": s.destination.id, "start": value},
            headers=world.headers,
        )
        assert response.status_code == 422, f"{value!r}: {response.text}"
    # Creation only: the cursor has moved on, a start cannot be changed.
    export = world.create()
    response = world.client.patch(
        f"/api/v1/exports/{export['id']}", json={"start": "retention"}, headers=world.headers
    )
    assert response.status_code == 422, response.text


def test_a_deleted_exports_run_history_stays_readable(world: World) -> None:
    s = world.s
    export = world.create()
    sent = s.ingest(12, at=T0 + 100)
    run_id = world.run_now(export["id"])
    world.tick()
    path = f"/api/v1/exports/{export['id']}"
    deleted = world.client.delete(path, headers=world.headers)
    assert deleted.status_code == 200, deleted.text

    history = world.client.get(f"{path}/runs", headers=world.headers)
    assert history.status_code == 200, history.text
    assert [r["id"] for r in history.json()["runs"]] == [run_id]
    run = world.run(export["id"], run_id)
    assert run["status"] == "succeeded" and run["events"] == len(sent)
    gone = world.client.get(path, headers=world.headers)
    assert gone.status_code == 404
    assert f"{path}/runs" in gone.json()["message"]  # says where the history is

    # The name is free again; the new export's history is its own.
    again = world.create()
    assert again["id"] != export["id"]
    fresh = world.client.get(f"/api/v1/exports/{again['id']}/runs", headers=world.headers)
    assert fresh.json()["runs"] == []
    assert world.client.get(f"{path}/runs", headers=world.headers).json()["runs"][0]["id"] == (
        run_id
    )
    # Another project's key finds nothing of it.
    other = create_key_for_other_project(world)
    assert world.client.get(f"{path}/runs", headers=other).status_code == 404


def create_key_for_other_project(world: World) -> dict[str, str]:
    from spillway.services.projects import create_project

    engine = world.s.engine
    create_project(engine, "other")
    box = SecretBox(world.settings.service_key())
    token = create_key(engine, box, "other", Scope.READ).token
    return {"Authorization": f"Bearer {token}"}
