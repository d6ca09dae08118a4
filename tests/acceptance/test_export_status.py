"""How an export is doing, at a glance, against a real ``spillway serve`` with its worker.

The README's quickstart, run as a new user would (CLI for the project and keys, HTTP for the
rest, an S3 bucket on moto with IAM enforced): from ``GET /api/v1/exports`` alone the user can
tell whether the export works, when it last delivered and when it will next. And ``/metrics``
has the same for file exports and streams, the gauges right after a restart too.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import (
    Server,
    ServerFactory,
    auth,
    cli_json,
    make_events,
    run_cli,
)
from tests.integration.destinations.case_s3 import S3World
from tests.integration.streaming import create_stream, read_stream
from tests.server_moto import REGION, Moto

EXPORTS = "/api/v1/exports"
QUARTER_MS = 15 * 60 * 1000
FAST_WORKER = {"SPILLWAY_WORKER_INTERVAL_SECONDS": "0.3", "SPILLWAY_STREAM_POLL_SECONDS": "0.2"}


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for(
    what: str, probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60.0
) -> Any:
    """Probe until ``done`` holds; fail with the last answer otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s; last seen: {seen}")
        time.sleep(0.2)


def clear_of_a_quarter_hour(margin: float = 45.0) -> None:
    """Wait out a quarter-hour boundary that is less than ``margin`` seconds away: a window
    closing mid-test would deliver, by schedule, what the test delivers with a run now."""
    left = QUARTER_MS / 1000 - time.time() % (QUARTER_MS / 1000)
    if left < margin:
        time.sleep(left + 1)


def listed(server: Server, token: str, export_id: str) -> dict[str, Any]:
    """The export as ``GET /api/v1/exports`` lists it."""
    answer = server.client.get(EXPORTS, headers=auth(token))
    assert answer.status_code == 200, answer.text
    found = [e for e in answer.json()["exports"] if e["id"] == export_id]
    assert len(found) == 1, answer.text
    return found[0]


def same_alone(server: Server, token: str, entry: dict[str, Any]) -> None:
    """``GET …/{id}`` shows what the list showed (call it while nothing runs)."""
    one = server.client.get(f"{EXPORTS}/{entry['id']}", headers=auth(token)).json()
    for field in ("status", "status_reason", "last_run", "last_success_at", "next_run_at"):
        assert one[field] == entry[field], (field, one, entry)


def test_readme_quickstart_get_exports_alone_tells_how_the_export_is_doing(
    start_spillway: ServerFactory, s3_world: S3World
) -> None:
    clear_of_a_quarter_hour()
    server = start_spillway(extra_env=FAST_WORKER, worker=True)  # `make run`: API and worker
    data = server.data_dir

    # The keys, as the README creates them.
    cli_json(data, "admin", "create-project", "acme")
    app_token = cli_json(data, "admin", "create-key", "acme", "--scope", "ingest")["token"]
    token = cli_json(data, "admin", "create-key", "acme", "--scope", "write")["token"]

    sent = server.client.post(
        "/api/v1/events",
        headers=auth(app_token),
        json=[
            {
                "event_name": "Purchase",
                "uid": "user-1",
                "event_time": "2026-11-23T10:00:00Z",
                "event_attributes": {"sku": "sku-1001", "price": 19.99},
            },
            {
                "event_name": "Email Sent",
                "event_type": "CAMPAIGN_EVENT",
                "uid": "user-1",
                "email_id": "user1@example.com",
                "event_time": 1795426960,
            },
            {"uid": "user-2"},
        ],
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 2
    profile = server.client.put(
        "/api/v1/endpoints/device-42",
        headers=auth(app_token),
        json={
            "user_id": "user-1",
            "channel_type": "EMAIL",
            "address": "user1@example.com",
            "attributes": {"interests": ["shoes", "hats"]},
        },
    )
    assert profile.status_code in (200, 201), profile.text
    demo = run_cli(data, "demo", "--events", "300", "--project", "acme")
    assert demo.returncode == 0, demo.stderr

    # Connect the bucket and export every 15 minutes.
    user = s3_world.full_user()
    destination = server.client.post(
        "/api/v1/destinations",
        headers=auth(token),
        json={
            "name": "warehouse",
            "kind": "s3",
            "config": {
                "bucket": s3_world.bucket,
                "folder": "spillway",
                "region": REGION,
                "endpoint_url": s3_world.moto.endpoint,  # moto stands in for AWS
            },
            "credentials": {
                "mode": "access_key",
                "access_key_id": user.access_key_id,
                "secret_access_key": user.secret_access_key.get_secret_value(),
            },
        },
    )
    assert destination.status_code == 201, destination.text
    assert destination.json()["status"] == "active"
    created = server.client.post(
        EXPORTS,
        headers=auth(token),
        json={
            "name": "events",
            "destination_id": destination.json()["id"],
            "frequency": "every_15_minutes",
            "start": "retention",  # the README's: the events already stored too
        },
    )
    assert created.status_code == 201, created.text
    export_id = created.json()["id"]

    # Before any run: nothing delivered yet, and the next run is the next quarter hour.
    before, fresh, after = now_ms(), listed(server, token, export_id), now_ms()
    assert fresh["status"] == "active", fresh
    assert fresh["last_run"] is None
    assert fresh["last_success_at"] is None
    next_run = fresh["next_run_at"]
    assert isinstance(next_run, int) and next_run % QUARTER_MS == 0, fresh
    assert before - 10_000 <= next_run <= after + QUARTER_MS, (before, fresh)
    same_alone(server, token, fresh)

    # The app goes on sending; the user delivers now (the README's two events, the demo's 300
    # and these 25), then looks at GET /exports only.
    events = make_events(25)
    sent = server.client.post("/api/v1/events", headers=auth(app_token), json=events)
    assert sent.json()["accepted"] == 25, sent.text
    queued = server.client.post(f"{EXPORTS}/{export_id}/run", headers=auth(token))
    assert queued.status_code == 202, queued.text
    done = wait_for(
        "the run now succeeded",
        lambda: listed(server, token, export_id),
        lambda e: (e["last_run"] or {}).get("status") == "succeeded",
    )
    before, done, after = now_ms(), listed(server, token, export_id), now_ms()
    assert done["status"] == "active", done
    run = done["last_run"]
    assert run["id"] == queued.json()["run_id"]
    assert run["kind"] == "manual"
    assert run["events"] == 2 + 300 + 25
    assert run["error"] is None
    assert done["last_success_at"] == run["finished_at"]
    assert fresh["created_at"] <= done["last_success_at"] <= after
    assert done["next_run_at"] % QUARTER_MS == 0
    assert before - 10_000 <= done["next_run_at"] <= after + QUARTER_MS, (before, done)
    same_alone(server, token, done)
    # ... and it tells the truth: the run's file is in the bucket with those events.
    files = server.client.get(f"{EXPORTS}/{export_id}/runs/{run['id']}", headers=auth(token))
    (key,) = files.json()["files"]
    assert key.startswith("spillway_events/export_day=")
    body = s3_world.raw_read(key)
    assert body is not None
    assert len(gzip.decompress(body).splitlines()) == 2 + 300 + 25

    # The bucket's key is revoked: the next run fails, and GET /exports says so, and why.
    iam: Any = s3_world.moto.client("iam")
    owner = iam.get_access_key_last_used(AccessKeyId=user.access_key_id)["UserName"]
    iam.delete_access_key(UserName=owner, AccessKeyId=user.access_key_id)
    server.client.post("/api/v1/events", headers=auth(app_token), json=make_events(5))
    again = server.client.post(f"{EXPORTS}/{export_id}/run", headers=auth(token))
    assert again.status_code == 202, again.text
    broken = wait_for(
        "the export turned failing",
        lambda: listed(server, token, export_id),
        lambda e: e["status"] == "failing" and (e["last_run"] or {}).get("status") == "failed",
    )
    assert broken["status_reason"], broken
    assert broken["last_run"]["id"] == again.json()["run_id"]
    assert broken["last_run"]["error"], broken
    assert broken["last_run"]["finished_at"] is None
    assert broken["last_success_at"] == done["last_success_at"]  # when it last delivered
    # When it will next: at its retry, a few minutes from now, never in the past.
    assert broken["next_run_at"] == broken["next_attempt_at"], broken
    assert broken["next_run_at"] > now_ms()
    same_alone(server, token, broken)


def metric(text: str, family: str, /, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != family:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def scrape(server: Server) -> str:
    answer = httpx.get(server.base_url + "/metrics", timeout=30)
    assert answer.status_code == 200
    return answer.text


def test_metrics_show_runs_events_last_success_and_failing_exports_across_a_restart(
    start_spillway: ServerFactory, moto: Moto, tmp_path: Path
) -> None:
    root = tmp_path / "local-root"
    root.mkdir()
    env = {**FAST_WORKER, "SPILLWAY_LOCAL_ROOT": str(root), "SPILLWAY_LOG_LEVEL": "INFO"}
    server = start_spillway(extra_env=env, worker=True)
    data = server.data_dir
    cli_json(data, "admin", "create-project", "shop")
    token = cli_json(data, "admin", "create-key", "shop", "--scope", "write")["token"]

    def post(path: str, body: Any) -> Any:
        answer = server.client.post(path, headers=auth(token), json=body)
        assert answer.status_code in (200, 201, 202), answer.text
        return answer.json()

    folder = post(
        "/api/v1/destinations", {"name": "disk", "kind": "local", "config": {"path": "out"}}
    )
    files = post(EXPORTS, {"name": "files", "destination_id": folder["id"], "frequency": "daily"})
    stream_name = create_stream(moto, shards=1)
    kinesis = post(
        "/api/v1/destinations",
        {
            "name": "kinesis",
            "kind": "kinesis",
            "config": {"stream": stream_name, "region": REGION, "endpoint_url": moto.endpoint},
            "credentials": {
                "mode": "access_key",
                "access_key_id": moto.admin_key,
                "secret_access_key": moto.admin_secret,
            },
        },
    )
    stream = post(EXPORTS, {"name": "live", "destination_id": kinesis["id"], "frequency": "stream"})

    # Every export has its series from the start: counters at 0, no success yet, none failing.
    text = scrape(server)
    for export in (files, stream):
        ids = {"export": export["id"], "name": export["name"]}
        assert metric(text, "spillway_export_runs_total", **ids, status="succeeded") == 0
        assert metric(text, "spillway_export_runs_total", **ids, status="failed") == 0
        assert metric(text, "spillway_export_events_total", **ids) == 0
        assert metric(text, "spillway_export_last_success_timestamp_seconds", **ids) is None
    assert metric(text, "spillway_exports_failing") == 0

    post("/api/v1/events", make_events(40))
    run = post(f"{EXPORTS}/{files['id']}/run", {})
    one = wait_for(
        "the file run and the stream delivered",
        lambda: {
            e["id"]: e for e in server.client.get(EXPORTS, headers=auth(token)).json()["exports"]
        },
        lambda seen: (
            (seen[files["id"]]["last_run"] or {}).get("status") == "succeeded"
            and seen[stream["id"]]["delivery"]["records_sent"] == 40
        ),
    )
    assert len(read_stream(moto, stream_name)) == 40
    text = scrape(server)
    file_ids = {"export": files["id"], "name": "files"}
    stream_ids = {"export": stream["id"], "name": "live"}
    file_runs = server.client.get(f"{EXPORTS}/{files['id']}/runs", headers=auth(token)).json()
    succeeded = [r for r in file_runs["runs"] if r["status"] == "succeeded"]
    assert run["run_id"] in {r["id"] for r in succeeded}
    assert metric(text, "spillway_export_runs_total", **file_ids, status="succeeded") == len(
        succeeded
    )
    assert metric(text, "spillway_export_runs_total", **file_ids, status="failed") == 0
    assert metric(text, "spillway_export_events_total", **file_ids) == 40
    assert metric(text, "spillway_export_events_total", **stream_ids) == 40
    assert (metric(text, "spillway_export_runs_total", **stream_ids, status="succeeded") or 0) >= 1
    file_success = one[files["id"]]["last_success_at"]
    stream_success = one[stream["id"]]["last_success_at"]
    assert stream_success == one[stream["id"]]["delivery"]["last_sent_at"]
    assert metric(
        text, "spillway_export_last_success_timestamp_seconds", **file_ids
    ) == pytest.approx(file_success / 1000)
    assert metric(
        text, "spillway_export_last_success_timestamp_seconds", **stream_ids
    ) == pytest.approx(stream_success / 1000)
    assert metric(text, "spillway_exports_failing") == 0
    # The successful run is in the log, with what it delivered and how long it took.
    line = wait_for(
        "the run's INFO line",
        lambda: [x for x in server.log().splitlines() if run["run_id"] in x and "INFO" in x],
        bool,
        timeout=10,
    )[0]
    assert files["id"] in line
    assert re.search(r"events=40 bytes=\d+ files=1 duration=\d+\.\d+s", line), line

    # The stream's target is deleted: the stream turns failing, and /metrics counts it.
    kinesis_client: Any = moto.client("kinesis")
    kinesis_client.delete_stream(StreamName=stream_name)
    post("/api/v1/events", make_events(3))
    wait_for(
        "the stream turned failing",
        lambda: server.client.get(f"{EXPORTS}/{stream['id']}", headers=auth(token)).json(),
        lambda e: e["status"] == "failing",
    )
    text = scrape(server)
    assert metric(text, "spillway_exports_failing") == 1
    assert (metric(text, "spillway_export_runs_total", **stream_ids, status="failed") or 0) >= 1

    # After a restart the gauges come from the database: still one failing, the last
    # successes unchanged; the counters start again from 0 (rate() handles that).
    server.stop()
    restarted = start_spillway(data, extra_env=env)  # API only: nothing runs meanwhile
    text = scrape(restarted)
    assert metric(text, "spillway_exports_failing") == 1
    assert metric(
        text, "spillway_export_last_success_timestamp_seconds", **file_ids
    ) == pytest.approx(file_success / 1000)
    assert metric(
        text, "spillway_export_last_success_timestamp_seconds", **stream_ids
    ) == pytest.approx(stream_success / 1000)
    assert metric(text, "spillway_export_runs_total", **file_ids, status="succeeded") == 0

    # A deleted export leaves /metrics.
    gone = restarted.client.delete(f"{EXPORTS}/{files['id']}", headers=auth(token))
    assert gone.status_code == 200, gone.text
    text = scrape(restarted)
    assert metric(text, "spillway_export_runs_total", **file_ids, status="succeeded") is None
    assert metric(text, "spillway_export_last_success_timestamp_seconds", **file_ids) is None
