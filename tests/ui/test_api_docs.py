"""``/docs`` and ``/redoc`` work with no internet: Chromium, with every host but the server
blocked, renders Swagger UI, authorizes with a key and calls ``GET /api/v1/exports``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect
from tests.acceptance.conftest import Credentials, Server, ServerFactory
from tests.ui.conftest import SCREENSHOTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the docs need no destination, so no moto either."""
    factory = ServerFactory(tmp_path_factory.mktemp("spillway-docs"))
    yield factory()
    factory.stop_all()


@pytest.fixture(scope="module")
def docs_creds(docs_server: Server) -> Credentials:
    return docs_server.credentials()


def offline(page: Page, server: Server) -> list[str]:
    """Abort every request to another host than the server; the list fills with their URLs."""
    home = urlsplit(server.base_url).netloc
    elsewhere: list[str] = []

    def handle(route: Route) -> None:
        if urlsplit(route.request.url).netloc == home:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return elsewhere


def test_openapi_has_the_bearer_key_on_every_api_route(docs_server: Server) -> None:
    schema = httpx.get(docs_server.base_url + "/openapi.json", timeout=30).json()
    assert schema["components"]["securitySchemes"]["bearerKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "<key_id>.<secret>",
        "description": schema["components"]["securitySchemes"]["bearerKey"]["description"],
    }
    paths = schema["paths"]
    assert all(path == "/healthz" or path.startswith("/api/v1/") for path in paths)
    for path, operations in paths.items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path.startswith("/api/v1/"):
                assert operation["security"] == [{"bearerKey": []}], where
                assert "401" in operation["responses"], where
            error_refs = {
                answer["content"]["application/json"]["schema"].get("$ref")
                for status, answer in operation["responses"].items()
                if status.startswith("4")
            }
            assert error_refs <= {"#/components/schemas/Error"}, where
    events = paths["/api/v1/events"]["post"]
    assert "application/json" in events["requestBody"]["content"]
    assert "application/x-ndjson" in events["requestBody"]["content"]


def test_swagger_ui_authorizes_and_calls_exports_offline(
    page: Page, docs_server: Server, docs_creds: Credentials
) -> None:
    elsewhere = offline(page, docs_server)
    assert docs_creds.read is not None
    page.goto(docs_server.base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Spillway", timeout=30_000)

    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(docs_creds.read["token"])
    dialog.locator("button.modal-btn.authorize").click()
    expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
    dialog.locator("button.btn-done").click()

    operation = page.locator("#operations-exports-list_all_api_v1_exports_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200", timeout=30_000)
    expect(operation.locator(".live-responses-table")).to_contain_text('"exports"')

    operation.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
    assert elsewhere == []


def test_redoc_renders_offline(page: Page, docs_server: Server) -> None:
    elsewhere = offline(page, docs_server)
    page.goto(docs_server.base_url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("Spillway", timeout=30_000)
    expect(page.get_by_text("bearerKey").first).to_be_attached()
    assert elsewhere == []
