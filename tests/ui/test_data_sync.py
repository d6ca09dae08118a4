"""Settings > Data Sync in a real browser: sign in, connect S3 on moto, rotate, fail, delete."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.acceptance.conftest import Credentials, Server
from tests.integration.destinations.case_s3 import S3World
from tests.ui.conftest import api, shoot, sign_in

pytestmark = pytest.mark.slow


def _fill_s3(page: Page, world: S3World, key_id: str, secret: str) -> None:
    page.get_by_label("Destination name").fill("warehouse")
    page.get_by_label("Bucket name").fill(world.bucket)
    page.get_by_label("Folder path").fill("exports")
    page.get_by_label("Bucket region").fill("us-east-1")
    page.get_by_label("Encryption at rest").select_option("none")
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Custom endpoint").fill(world.moto.endpoint)
    page.get_by_label("Access key ID").fill(key_id)
    page.get_by_label("Secret access key").fill(secret)


class Pages:
    """The HTML of every page a test looked at, to search for secrets afterwards."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.html: list[str] = []

    def look(self, name: str | None = None, *, phone: bool = False) -> None:
        """Keep the page's HTML (and save a screenshot when named)."""
        self.html.append(self.page.content())
        if name:
            shoot(self.page, name, phone=phone)

    def holds(self, secret: str) -> bool:
        return any(secret in html for html in self.html)


def test_connect_rotate_fail_and_delete_s3(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World
) -> None:
    seen = Pages(page)
    user = s3_world.full_user()
    secret = user.secret_access_key.get_secret_value()

    sign_in(page, ui_server, ui_creds.write_token)
    expect(page.get_by_role("heading", name="Data Sync")).to_be_visible()
    seen.look("data-sync-empty")

    page.get_by_role("link", name="Connect to destination").click()
    expect(page.get_by_role("link", name=re.compile("Google Cloud Storage"))).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Folder on this server"))).to_have_count(0)
    seen.look("connect-tiles")

    page.get_by_role("link", name=re.compile("Amazon S3")).click()
    # A wrong secret: the credentials check fails, and says so beside the secret's field.
    _fill_s3(page, s3_world, user.access_key_id, "x" * 40)
    page.get_by_role("button", name="Validate").click()
    checks = page.get_by_role("list", name="Validation checks")
    expect(checks.locator("li.check-failed").first).to_contain_text("credentials")
    expect(page.get_by_role("button", name="Create destination")).to_be_disabled()
    expect(page.locator("#f-credentials-secret-access-key-error")).to_contain_text("credentials")
    # Nothing typed is lost, except the secret, which is never echoed.
    expect(page.get_by_label("Bucket name")).to_have_value(s3_world.bucket)
    expect(page.get_by_label("Secret access key")).to_have_value("")
    seen.look("connect-s3-failed")

    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("heading", name="Validation passed")).to_be_visible()
    expect(page.get_by_role("button", name="Create destination")).to_be_enabled()
    seen.look("connect-s3-passed")
    page.get_by_role("button", name="Create destination").click()
    expect(page.get_by_role("status")).to_contain_text("Destination created")
    expect(page.get_by_role("heading", name="warehouse")).to_be_visible()

    # An export, created through the native API for this half.
    with api(ui_server, ui_creds.write_token) as client:
        destination: dict[str, Any] = client.get("/api/v1/destinations").json()["destinations"][0]
        created = client.post(
            "/api/v1/exports",
            json={
                "name": "events",
                "destination_id": destination["id"],
                "frequency": "every_15_minutes",
            },
        )
        assert created.status_code == 201, created.text
    page.reload()
    expect(page.get_by_role("row", name=re.compile("events"))).to_contain_text("active")
    seen.look("data-sync")
    seen.look("data-sync-phone", phone=True)

    # Rotate to another user's key.
    page.get_by_role("link", name=re.compile("Manage destination")).first.click()
    seen.look("manage-destination")
    newer = s3_world.full_user()
    newer_secret = newer.secret_access_key.get_secret_value()
    rotate = page.locator("form[action$='/credentials']")
    rotate.get_by_label("Access key ID").fill(newer.access_key_id)
    rotate.get_by_label("Secret access key").fill(newer_secret)
    rotate.get_by_role("button", name="Rotate credentials").click()
    expect(page.get_by_role("status")).to_contain_text("New credentials validated and saved")
    expect(page.get_by_text("(version 2)")).to_be_visible()
    seen.look()

    # Revoke that key in AWS: validating again marks the destination failing, with the reason.
    iam: Any = s3_world.moto.client("iam")
    users = iam.list_users()["Users"]
    owner = next(
        u["UserName"]
        for u in users
        if any(
            k["AccessKeyId"] == newer.access_key_id
            for k in iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]
        )
    )
    iam.delete_access_key(UserName=owner, AccessKeyId=newer.access_key_id)
    page.get_by_role("button", name="Validate again").click()
    page.get_by_role("link", name="← Data Sync").click()
    banner = page.get_by_role("alert").filter(has_text="Destination “warehouse” is failing")
    expect(banner).to_contain_text("credentials")
    expect(banner).to_contain_text("What to do:")
    seen.look("data-sync-failing")

    # Delete: the confirmation names the export it stops; afterwards it is disabled.
    page.get_by_role("link", name="Manage destination “warehouse”").click()
    page.get_by_role("link", name="Delete destination…").click()
    expect(page.locator(".stops")).to_contain_text("events")
    seen.look("delete-destination")
    page.get_by_role("button", name=re.compile("Delete destination and stop 1 export")).click()
    expect(page.get_by_role("status")).to_contain_text("Destination deleted")
    expect(page.get_by_role("row", name=re.compile("events"))).to_contain_text("disabled")
    seen.look()

    assert seen.html, "no page was recorded"
    for value in (secret, newer_secret, "x" * 40, ui_creds.write_token.split(".", 1)[1]):
        assert not seen.holds(value), "a secret appeared in a page's HTML"
