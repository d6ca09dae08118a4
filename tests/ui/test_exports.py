"""Exports in a real browser: create a 15-minute export on S3 (moto), run it, backfill, see a
revoked key fail the destination, delete the destination; a read key changes nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.acceptance.conftest import Credentials, Server, make_events, run_cli
from tests.integration.destinations.case_s3 import S3World
from tests.ui.conftest import api, shoot, sign_in

from spillway.destinations.s3.config import AccessKey

pytestmark = pytest.mark.slow

EVENTS = 12


def _destination(
    server: Server, creds: Credentials, world: S3World, name: str = "warehouse"
) -> tuple[dict[str, Any], AccessKey]:
    """An S3 destination on moto (made through the API: its UI is the first half's test);
    returns it and the IAM access key it uses."""
    user = world.full_user()
    with api(server, creds.write_token) as client:
        answer = client.post(
            "/api/v1/destinations",
            json={
                "name": name,
                "kind": "s3",
                "config": {
                    "bucket": world.bucket,
                    "folder": "exports",
                    "endpoint_url": world.moto.endpoint,
                    "sse": "none",
                },
                "credentials": {
                    "mode": "access_key",
                    "access_key_id": user.access_key_id,
                    "secret_access_key": user.secret_access_key.get_secret_value(),
                },
            },
        )
    assert answer.status_code == 201, answer.text
    return answer.json(), user


def _send_events(server: Server, creds: Credentials, count: int) -> None:
    with api(server, creds.write_token) as client:
        sent = client.post("/api/v1/events", json=make_events(count))
    assert sent.is_success, sent.text


def _work(server: Server) -> None:
    """One pass of ``spillway worker --once`` on the server's data dir (the server runs none)."""
    done = run_cli(server.data_dir, "worker", "--once", env=server.extra_env)
    assert done.returncode == 0, done.stderr


def _revoke(world: S3World, key_id: str) -> None:
    """Delete the IAM user's access key in moto, as an admin revoking it would."""
    iam: Any = world.moto.client("iam")
    for user in iam.list_users()["Users"]:
        keys = iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
        if any(k["AccessKeyId"] == key_id for k in keys):
            iam.delete_access_key(UserName=user["UserName"], AccessKeyId=key_id)
            return
    raise AssertionError(f"no IAM user holds {key_id}")


def test_create_run_fail_and_stop_an_export(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World
) -> None:
    destination, user = _destination(ui_server, ui_creds, s3_world)
    secret = user.secret_access_key.get_secret_value()
    seen: list[str] = []  # every page's HTML, searched for the secret at the end
    _send_events(ui_server, ui_creds, EVENTS)
    sign_in(page, ui_server, ui_creds.write_token)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Exports").click()
    page.get_by_role("link", name="Create export").click()
    expect(page.get_by_role("heading", name="Create export")).to_be_visible()
    # The names seen so far are offered.
    expect(page.get_by_label("Purchase")).to_be_visible()

    # The exact path follows what is typed.
    preview = page.locator("#path-preview")
    page.get_by_label("Export name").fill("events")
    expect(preview).to_have_text(
        re.compile(r"^exports_events/export_day=\d\d-\d\d-\d{4}/event_exports_\d+\.json\.gz$")
    )
    page.get_by_label("Compression").select_option("none")
    expect(preview).to_have_text(re.compile(r"^exports_events/.*\.json$"))
    page.get_by_label("Compression").select_option("gzip")
    expect(preview).to_have_text(re.compile(r"^exports_events/.*\.json\.gz$"))
    shown_path = preview.inner_text()
    shoot(page, "export-new")
    seen.append(page.content())

    # A failed form keeps what was typed and says what is wrong beside the field.
    page.get_by_label("Only the events I choose").check()
    page.get_by_role("button", name="Create export").click()
    expect(page.locator("#f-events-error")).to_contain_text("Tick at least one event name")
    expect(page.get_by_role("alert")).to_contain_text("fix what is marked below")
    expect(page.get_by_label("Export name")).to_have_value("events")
    expect(page.get_by_label("How often")).to_have_value("every_15_minutes")
    shoot(page, "export-new-error")

    page.get_by_label("All events").check()
    page.get_by_role("button", name="Create export").click()
    expect(page.get_by_role("status")).to_contain_text("Export created")
    expect(page.get_by_role("heading", name="Export “events”")).to_be_visible()
    # The page's next file is the path the form showed (same window, same function).
    expect(page.locator("dd", has_text="event_exports_").last).to_have_text(shown_path)

    # Run now (after new events: the export covers what arrives from its creation on); the
    # worker delivers; the run shows its event count and file path.
    _send_events(ui_server, ui_creds, EVENTS)
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_contain_text("Run queued")
    _work(ui_server)
    page.reload()
    runs = page.get_by_role("region", name="Run history")
    row = runs.get_by_role("row").nth(1)
    expect(row).to_contain_text("succeeded")
    expect(row.get_by_role("cell").nth(1)).to_have_text(str(EVENTS))  # events
    expect(row).to_contain_text(re.compile(r"exports_events/export_day=.*_manual_.*\.json\.gz"))
    expect(page.get_by_role("img", name=re.compile("Events per run"))).to_be_visible()

    # Backfill yesterday: queued and delivered into its own folder.
    page.get_by_role("button", name="Queue backfill").click()
    expect(page.get_by_role("status")).to_contain_text("Backfill queued")
    _work(ui_server)
    _send_events(ui_server, ui_creds, EVENTS)
    page.get_by_role("button", name="Run now").click()
    _work(ui_server)
    page.reload()
    expect(runs.get_by_role("row").nth(3)).to_be_visible()  # 3 runs (a window may add one)
    assert "backfill" in runs.inner_text()
    shoot(page, "export")
    shoot(page, "export-phone", phone=True)

    # Revoke the key in moto; the next run fails and the destination is marked failing.
    seen.append(page.content())
    _revoke(s3_world, user.access_key_id)
    _send_events(ui_server, ui_creds, 3)
    page.get_by_role("button", name="Run now").click()
    _work(ui_server)
    page.reload()
    banner = page.get_by_role("alert").filter(has_text="Destination “warehouse” is failing")
    expect(banner).to_contain_text("Reason:")
    expect(banner).to_contain_text(re.compile("credentials|InvalidAccessKeyId|access key", re.I))
    expect(runs.get_by_role("row").nth(1)).to_contain_text("failed")
    shoot(page, "export-failing")
    seen.append(page.content())
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data Sync").click()
    expect(
        page.get_by_role("alert").filter(has_text="Destination “warehouse” is failing")
    ).to_contain_text("Reason:")

    # Disable and enable again.
    page.goto(f"{ui_server.base_url}/exports")
    page.get_by_role("link", name="events", exact=True).click()
    page.get_by_role("button", name="Disable export").click()
    expect(page.get_by_role("status")).to_contain_text("Export disabled")
    expect(page.get_by_role("button", name="Run now")).to_be_disabled()
    page.get_by_role("button", name="Enable export").click()
    expect(page.get_by_role("status")).to_contain_text("Export enabled")

    # Delete the destination: the export is stopped, and says why.
    page.goto(f"{ui_server.base_url}/data-sync/destinations/{destination['id']}/delete")
    page.get_by_role("button", name=re.compile("Delete destination and stop 1 export")).click()
    expect(page.get_by_role("status")).to_contain_text("Destination deleted")
    page.get_by_role("link", name="events", exact=True).click()
    expect(page.locator(".head .pill")).to_have_text("disabled")
    stopped = page.get_by_role("note").filter(has_text="This export is stopped")
    expect(stopped).to_contain_text("'warehouse' was deleted")
    expect(stopped).to_contain_text("create a new export on another destination")
    expect(page.get_by_role("button", name="Enable export")).to_be_disabled()
    shoot(page, "export-stopped")

    # Delete the export itself, after a confirmation.
    page.get_by_role("link", name="Delete export…").click()
    shoot(page, "export-delete")
    page.get_by_role("button", name="Delete export").click()
    expect(page.get_by_role("status")).to_contain_text("Export deleted")
    shoot(page, "exports")
    seen.append(page.content())
    assert seen and not any(secret in html for html in seen), "a secret appeared in a page"


def test_read_key_cannot_change_exports(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World
) -> None:
    destination, _ = _destination(
        ui_server, ui_creds, s3_world, "read-only-" + s3_world.bucket[-6:]
    )
    with api(ui_server, ui_creds.write_token) as client:
        made = client.post(
            "/api/v1/exports",
            json={"name": "looked-at", "destination_id": destination["id"]},
        )
    assert made.status_code == 201, made.text
    export_id = made.json()["id"]

    sign_in(page, ui_server, ui_creds.read_token)
    page.goto(f"{ui_server.base_url}/exports")
    expect(page.get_by_role("button", name="Create export")).to_be_disabled()
    page.goto(f"{ui_server.base_url}/exports/{export_id}")
    for name in ("Run now", "Disable export", "Delete export…", "Queue backfill"):
        button = page.get_by_role("button", name=name)
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("title", re.compile("Sign in with a 'write'"))
    expect(page.get_by_label("First day")).to_be_disabled()
    shoot(page, "export-read-key")
    page.goto(f"{ui_server.base_url}/exports/new")
    expect(page.get_by_role("button", name="Create export")).to_be_disabled()
    expect(page.get_by_label("Export name")).to_be_disabled()

    # The server refuses the posts a write key's page makes, with this session's own token.
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert token
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    base = ui_server.base_url
    posts = (
        (f"/exports/{export_id}/run", {}),
        (f"/exports/{export_id}/status", {"status": "disabled"}),
        (f"/exports/{export_id}/backfill", {"start": "2026-01-01", "end": "2026-01-02"}),
        (f"/exports/{export_id}/delete", {}),
        ("/exports/new", {"name": "sneaky", "destination_id": destination["id"]}),
    )
    with httpx.Client(base_url=base, cookies=cookies, headers={"Origin": base}) as client:
        for path, form in posts:
            answer = client.post(path, data={**form, "csrf": token})
            assert answer.status_code == 403, (path, answer.status_code)
            assert "Sign in with a 'write'" in answer.text or "scope" in answer.text
    with api(ui_server, ui_creds.write_token) as client:
        after = client.get(f"/api/v1/exports/{export_id}").json()
        names = [e["name"] for e in client.get("/api/v1/exports").json()["exports"]]
    assert after["status"] == "active" and "sneaky" not in names
    with api(ui_server, ui_creds.write_token) as client:
        assert client.get(f"/api/v1/exports/{export_id}/runs").json()["runs"] == []
