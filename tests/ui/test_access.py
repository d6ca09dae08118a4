"""Who may do what in the UI: read keys look only, ingest and operator keys cannot sign in,
and a form posted from another site or without the session's token is refused."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.acceptance.conftest import Credentials, Server, create_key
from tests.integration.destinations.case_s3 import S3World
from tests.servers import free_port
from tests.ui.conftest import api, operator_key, shoot, sign_in

pytestmark = pytest.mark.slow


def _destination(server: Server, creds: Credentials, world: S3World) -> dict[str, Any]:
    user = world.full_user()
    with api(server, creds.write_token) as client:
        answer = client.post(
            "/api/v1/destinations",
            json={
                "name": "lake-" + world.bucket[-6:],
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
    created: dict[str, Any] = answer.json()
    return created


def _csrf(page: Page) -> str:
    value = page.locator("input[name=csrf]").first.get_attribute("value")
    assert value
    return value


def test_read_key_sees_everything_and_changes_nothing(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World
) -> None:
    destination = _destination(ui_server, ui_creds, s3_world)
    sign_in(page, ui_server, ui_creds.read_token)
    expect(page.get_by_role("heading", name=destination["name"])).to_be_visible()
    expect(page.get_by_role("note")).to_contain_text("'read' scope")
    expect(page.get_by_role("button", name="Connect to destination")).to_be_disabled()
    shoot(page, "data-sync-read-key")

    page.goto(f"{ui_server.base_url}/data-sync/destinations/{destination['id']}")
    for name in ("Validate again", "Update destination", "Rotate credentials"):
        button = page.get_by_role("button", name=name)
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("title", re.compile("Sign in with a 'write'"))
    expect(page.get_by_role("button", name="Delete destination…")).to_be_disabled()
    expect(page.get_by_label("Bucket name")).to_be_disabled()
    shoot(page, "manage-read-key")

    # The server refuses too: the same posts a write key's page makes, with this session's
    # valid token, are answered 403 and change nothing.
    token = _csrf(page)
    base = f"{ui_server.base_url}/data-sync/destinations/{destination['id']}"
    for path, form in (
        ("/delete", {}),
        ("/update", {"config.bucket": "elsewhere"}),
        ("/credentials", {"credentials.mode": "access_key"}),
        ("/validate", {}),
    ):
        answer = page.request.post(base + path, form={"csrf": token, **form})
        assert answer.status == 403, (path, answer.status)
        assert "can see everything here but not change it" in answer.text()
    answer = page.request.post(
        f"{ui_server.base_url}/data-sync/connect/s3",
        form={"csrf": token, "name": "x", "action": "create"},
    )
    assert answer.status == 403
    with api(ui_server, ui_creds.write_token) as client:
        still = client.get(f"/api/v1/destinations/{destination['id']}")
    assert still.status_code == 200
    assert still.json()["config"]["bucket"] == s3_world.bucket


def test_ingest_and_operator_keys_cannot_sign_in(page: Page, ui_server: Server) -> None:
    project = ui_server.credentials(read_key=False)
    ingest = create_key(ui_server.data_dir, project.project_id, "ingest", ui_server.extra_env)
    sign_in(page, ui_server, ingest["token"])
    expect(page.get_by_role("alert")).to_contain_text("ingest key")
    expect(page).to_have_url(re.compile("/signin$"))
    shoot(page, "signin-ingest-refused")

    operator = operator_key(ui_server)
    sign_in(page, ui_server, f"{operator['key_id']}.{operator['secret']}")
    expect(page.get_by_role("alert")).to_contain_text("operator key")

    sign_in(page, ui_server, "not-a-key")
    expect(page.get_by_role("alert")).to_contain_text("KEYID.SECRET")


@pytest.fixture
def other_site() -> Iterator[str]:
    """An origin of its own (another port) serving one page, set by the test."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get("page", b"")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    other = f"http://localhost:{port}"
    Handler.pages = pages  # type: ignore[attr-defined]
    _sites[other] = pages
    yield other
    httpd.shutdown()
    httpd.server_close()


_sites: dict[str, dict[str, bytes]] = {}


def test_cross_site_form_post_is_refused(
    page: Page, ui_server: Server, ui_creds: Credentials, s3_world: S3World, other_site: str
) -> None:
    destination = _destination(ui_server, ui_creds, s3_world)
    target = f"{ui_server.base_url}/data-sync/destinations/{destination['id']}/delete"
    sign_in(page, ui_server, ui_creds.write_token)
    token = _csrf(page)

    # A page on another site posts the delete form (even with a stolen token): refused.
    _sites[other_site]["page"] = (
        f'<form id="f" method="post" action="{target}">'
        f'<input name="csrf" value="{token}"></form>'
        "<script>document.getElementById('f').submit()</script>"
    ).encode()
    page.goto(other_site)
    # The SameSite cookie stays home, so the post arrives without a session: sign-in page.
    page.wait_for_url(re.compile(re.escape(ui_server.base_url) + "/signin"))

    # The same post with this server's cookie but a foreign Origin, or without the token: 403.
    forged = page.request.post(target, form={"csrf": token}, headers={"Origin": other_site})
    assert forged.status == 403
    assert "not sent from a page of this server" in forged.text()
    tokenless = page.request.post(target, form={"name": "x"})
    assert tokenless.status == 403

    with api(ui_server, ui_creds.write_token) as client:
        assert client.get(f"/api/v1/destinations/{destination['id']}").status_code == 200


def test_session_cookie_and_keyboard_sign_in(
    page: Page, ui_server: Server, ui_creds: Credentials
) -> None:
    page.goto(ui_server.base_url + "/")
    expect(page).to_have_url(re.compile("/signin$"))
    # Keyboard only: the key field has focus; Enter submits; Tab reaches the navigation.
    page.keyboard.type(ui_creds.write_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Data Sync")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["spillway_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    secret = ui_creds.write_token.split(".", 1)[1]
    assert secret not in session["value"]
    assert ui_creds.write["key_id"] not in session["value"]

    # Signing out drops the session: the pages ask to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/signin$"))
    page.goto(ui_server.base_url + "/data-sync")
    expect(page).to_have_url(re.compile("/signin"))
