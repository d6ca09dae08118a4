"""A new user's demo data reaches the bucket (issue 9, item 3): ``spillway demo --events
100000``, then an export created with ``"start": "retention"`` delivers all 100,000 in its first
run, and afterwards only what is new. An export with the default start (``"now"``) keeps
run-now's meaning: what was received since it was created, not the history.

Everything goes through the CLI, HTTP and the files in the folder, as a user would see it.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import (
    Server,
    ServerFactory,
    auth,
    create_key,
    db_path,
    run_cli,
    stored_uuids,
)

DEMO_EVENTS = 100_000
MORE_EVENTS = 700


def app_id(data_dir: Path, name: str) -> str:
    with closing(sqlite3.connect(db_path(data_dir))) as conn:
        row = conn.execute("select app_id from projects where name = ?", (name,)).fetchone()
    assert row is not None, f"no project {name!r}"
    return str(row[0])


def demo(data_dir: Path, env: dict[str, str], events: int) -> None:
    result = run_cli(
        data_dir, "demo", "--events", str(events), "--project", "acme", env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr
    assert f"stored {events:,} events" in result.stdout, result.stdout


def worker_once(data_dir: Path, env: dict[str, str]) -> None:
    result = run_cli(data_dir, "worker", "--once", env=env, timeout=900)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def delivered(folder: Path) -> Counter[str]:
    """event_uuid of every record in every delivered file under ``folder`` (with repeats)."""
    found: Counter[str] = Counter()
    for path in folder.rglob("event_exports_*.json.gz"):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            found[json.loads(line)["event"]["event_uuid"]] += 1
    return found


def run_now(server: Server, token: str, export_id: str) -> str:
    started = server.client.post(f"/api/v1/exports/{export_id}/run", headers=auth(token))
    assert started.status_code == 202, started.text
    run_id: str = started.json()["run_id"]
    return run_id


def run(server: Server, token: str, export_id: str, run_id: str) -> dict[str, Any]:
    got = server.client.get(f"/api/v1/exports/{export_id}/runs/{run_id}", headers=auth(token))
    assert got.status_code == 200, got.text
    found: dict[str, Any] = got.json()
    return found


def test_start_retention_delivers_the_demo_history_once(
    tmp_path: Path, start_spillway: ServerFactory
) -> None:
    data_dir, local = tmp_path / "data", tmp_path / "local"
    data_dir.mkdir()
    local.mkdir()
    env = {"SPILLWAY_LOCAL_ROOT": str(local)}
    demo(data_dir, env, DEMO_EVENTS)
    token = create_key(data_dir, "acme", "write", env)["token"]
    server = start_spillway(data_dir, extra_env=env)  # no worker: `worker --once` below

    made = server.client.post(
        "/api/v1/destinations",
        json={
            "name": "lake",
            "kind": "local",
            "config": {"path": "lake", "folder": "spillway"},
            "credentials": {"mode": "none"},
        },
        headers=auth(token),
    )
    assert made.status_code == 201, made.text
    destination_id = made.json()["id"]
    exports = {}
    for name, start in [("history", "retention"), ("fresh", None)]:
        body = {"name": name, "destination_id": destination_id}
        if start:
            body["start"] = start
        created = server.client.post("/api/v1/exports", json=body, headers=auth(token))
        assert created.status_code == 201, created.text
        assert created.json()["start"] == (start or "now")
        exports[name] = created.json()["id"]
    bucket = local / app_id(data_dir, "acme") / "lake"
    project = app_id(data_dir, "acme")

    # The first run of the "retention" export: the whole demo, each event once.
    first = {name: run_now(server, token, export_id) for name, export_id in exports.items()}
    worker_once(data_dir, env)
    history = run(server, token, exports["history"], first["history"])
    assert history["status"] == "succeeded", history
    assert history["events"] == DEMO_EVENTS
    demo_uuids = stored_uuids(data_dir, project)
    assert len(demo_uuids) == DEMO_EVENTS
    assert delivered(bucket / "spillway_history") == Counter(demo_uuids)
    # The default start is "now": run now delivers what came since creation, here nothing.
    fresh = run(server, token, exports["fresh"], first["fresh"])
    assert (fresh["status"], fresh["events"]) == ("succeeded", 0)
    assert not delivered(bucket / "spillway_fresh")

    # More events: the next run holds only those, in both exports; nothing twice.
    demo(data_dir, env, MORE_EVENTS)
    second = {name: run_now(server, token, export_id) for name, export_id in exports.items()}
    worker_once(data_dir, env)
    all_uuids = stored_uuids(data_dir, project)
    new = all_uuids - demo_uuids
    assert len(new) == MORE_EVENTS
    assert run(server, token, exports["history"], second["history"])["events"] == MORE_EVENTS
    assert run(server, token, exports["fresh"], second["fresh"])["events"] == MORE_EVENTS
    assert delivered(bucket / "spillway_history") == Counter(all_uuids)
    assert delivered(bucket / "spillway_fresh") == Counter(new)
