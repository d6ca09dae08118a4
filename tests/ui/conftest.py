"""Browser fixtures: a real ``spillway serve`` subprocess and Debian's Chromium driven by
Playwright (never a downloaded browser build)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.acceptance.conftest import Credentials, Server, ServerFactory, cli_json
from tests.server_moto import Moto

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def ui_server(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, started after moto so that its endpoint is allowed."""
    factory = ServerFactory(tmp_path_factory.mktemp("spillway-ui"))
    yield factory()
    factory.stop_all()


@pytest.fixture(scope="module")
def ui_creds(ui_server: Server) -> Credentials:
    """A project with a write key and a read key."""
    return ui_server.credentials()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at desktop size."""
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, server: Server, token: str) -> None:
    """Sign in through the form."""
    page.goto(server.base_url + "/signin")
    page.get_by_label("Integration key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def shoot(page: Page, name: str, *, phone: bool = False) -> None:
    """Save a full-page screenshot into docs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if phone:
        page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if phone:
        page.set_viewport_size(DESKTOP)


def api(server: Server, token: str) -> httpx.Client:
    """A native-API client with a bearer key."""
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
    )


def operator_key(server: Server) -> dict[str, Any]:
    """``spillway admin create-operator-key --json``."""
    return cli_json(server.data_dir, "admin", "create-operator-key", env=server.extra_env)
