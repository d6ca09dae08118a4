"""Jobs in a real browser: start an export job on S3 (moto) and watch it to COMPLETED; the
import form; a read key cannot start or cancel one."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.acceptance.conftest import Credentials, Server, run_cli
from tests.integration.destinations.case_s3 import S3World
from tests.ui.conftest import api, shoot, sign_in
from tests.ui.test_exports import _destination

pytestmark = pytest.mark.slow

ENDPOINTS = 30


def _endpoints(server: Server, creds: Credentials) -> None:
    batch = [
        {"endpoint_id": f"ep-{i:04d}", "channel_type": "SMS", "address": f"+1555{i:07d}"}
        for i in range(ENDPOINTS)
    ]
    with api(server, creds.write_token) as client:
        answer = client.put("/api/v1/endpoints", json={"endpoints": batch})
    assert answer.status_code < 300, answer.text


def test_export_job_runs_to_completed(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World
) -> None:
    destination, _ = _destination(ui_server, ui_creds, s3_world, "job-lake")
    _endpoints(ui_server, ui_creds)
    sign_in(page, ui_server, ui_creds.write_token)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    page.get_by_role("link", name="Start import job").click()
    expect(page.get_by_label("Files to read (prefix)")).to_be_visible()
    shoot(page, "job-import-new")

    page.goto(f"{ui_server.base_url}/jobs/export/new")
    page.get_by_label("What to export").select_option("endpoints")
    page.get_by_label("Destination").select_option(destination["id"])
    page.get_by_label("Folder (optional)").fill("jobs")
    page.get_by_label("File format").select_option("csv")
    shoot(page, "job-export-new")
    page.get_by_role("button", name="Start job").click()
    expect(page.get_by_role("status")).to_contain_text("Job started")
    live = page.locator("#live")
    expect(live).to_contain_text("created")
    expect(live).to_contain_text(re.compile(r"0 of \? pieces done"))
    shoot(page, "job-waiting")

    # The server runs no worker: drive it; the page follows by itself (no reload).
    deadline = time.monotonic() + 120
    while True:
        done = run_cli(ui_server.data_dir, "worker", "--once", env=ui_server.extra_env)
        assert done.returncode == 0, done.stderr
        with api(ui_server, ui_creds.write_token) as client:
            jobs = client.get("/api/v1/jobs/export").json()["jobs"]
        if jobs[0]["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        assert time.monotonic() < deadline, jobs[0]
    assert jobs[0]["status"] == "COMPLETED", jobs[0]
    total = jobs[0]["total_pieces"]
    expect(live).to_contain_text("completed", timeout=15_000)
    expect(live).to_contain_text(f"{total} of {total} pieces done")
    expect(live).to_contain_text(f"{ENDPOINTS} records")
    expect(live.get_by_role("listitem").first).to_contain_text("jobs/")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    shoot(page, "job-completed")

    page.get_by_role("link", name="← Jobs").click()
    row = page.get_by_role("row", name=re.compile("Export of endpoints"))
    expect(row.first).to_contain_text(f"{total} of {total} pieces")
    shoot(page, "jobs")


def test_read_key_cannot_start_or_cancel_jobs(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World
) -> None:
    destination, _ = _destination(ui_server, ui_creds, s3_world, "job-read-" + s3_world.bucket[-6:])
    with api(ui_server, ui_creds.write_token) as client:
        before = {j["id"] for j in client.get("/api/v1/jobs/export").json()["jobs"]}
        imports = client.get("/api/v1/jobs/import").json()["jobs"]
        made = client.post("/api/v1/jobs/export", json={"destination_id": destination["id"]})
    assert made.status_code == 202, made.text
    job_id = made.json()["id"]

    sign_in(page, ui_server, ui_creds.read_token)
    page.goto(f"{ui_server.base_url}/jobs")
    expect(page.get_by_role("button", name="Start export job")).to_be_disabled()
    page.goto(f"{ui_server.base_url}/jobs/export/{job_id}")
    cancel = page.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_disabled()
    expect(cancel).to_have_attribute("title", re.compile("Sign in with a 'write'"))
    page.goto(f"{ui_server.base_url}/jobs/export/new")
    expect(page.get_by_role("button", name="Start job")).to_be_disabled()
    expect(page.get_by_label("Destination")).to_be_disabled()

    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert token
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    base = ui_server.base_url
    with httpx.Client(base_url=base, cookies=cookies, headers={"Origin": base}) as client:
        for path, form in (
            (f"/jobs/export/{job_id}/cancel", {}),
            ("/jobs/export/new", {"destination_id": destination["id"]}),
            ("/jobs/import/new", {"destination_id": destination["id"]}),
        ):
            answer = client.post(path, data={**form, "csrf": token})
            assert answer.status_code == 403, (path, answer.status_code)
    with api(ui_server, ui_creds.write_token) as client:
        jobs = {j["id"]: j for j in client.get("/api/v1/jobs/export").json()["jobs"]}
        assert client.get("/api/v1/jobs/import").json()["jobs"] == imports
    assert set(jobs) == before | {job_id}  # nothing started
    assert jobs[job_id]["status"] != "CANCELLED"  # nothing cancelled
