"""The operator's limits over HTTP, against a real ``spillway serve``: outbound connections only
where SPILLWAY_ALLOWED_ENDPOINTS allows (GCS endpoint and token_uri, Azure account URL and
connection string, webhooks), and local folders only inside the project's own subfolder of
SPILLWAY_LOCAL_ROOT, with or without ``"force": true``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import server_gcs
from tests.acceptance.conftest import Server, ServerFactory, auth, create_credentials
from tests.integration.destinations.case_azure_blob import AzureWorld
from tests.integration.destinations.case_gcs import GcsWorld, key_json
from tests.server_canned import MARKER, Canned, canned_server
from tests.servers import allow_endpoint, allowed_endpoints

DESTINATIONS = "/api/v1/destinations"


@pytest.fixture
def listener() -> Iterator[Canned]:
    """A loopback service nobody listed: Spillway must never connect to it."""
    with canned_server() as server:
        assert server.url not in allowed_endpoints().split(",")
        yield server


@pytest.fixture
def token_url() -> Iterator[str]:
    """A stand-in for Google's token endpoint, listed (as a test operator would)."""
    with server_gcs.token_endpoint() as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Canned]:
    """A webhook receiver on loopback, listed by the operator."""
    with canned_server(status=204, body="") as server:
        allow_endpoint(server.url)
        yield server


def post(server: Server, token: str, path: str, body: dict[str, Any]) -> Any:
    return server.client.post(path, json=body, headers=auth(token))


def test_unlisted_loopback_endpoints_are_refused_and_listed_ones_work(
    start_spillway: ServerFactory,
    listener: Canned,
    gcs_world: GcsWorld,
    azure_world: AzureWorld,
    token_url: str,
    receiver: Canned,
    tmp_path: Path,
) -> None:
    root = tmp_path / "local-root"
    root.mkdir()
    # Started after the emulators, Azurite and the receiver: SPILLWAY_ALLOWED_ENDPOINTS lists them.
    server = start_spillway(extra_env={"SPILLWAY_LOCAL_ROOT": str(root)})
    token = create_credentials(server.data_dir).write_token
    azurite = azure_world.azurite
    key = key_json(token_uri=f"{listener.url}/token")
    refused: list[tuple[str, dict[str, Any], str]] = [
        (
            "gcs endpoint_url",
            {
                "kind": "gcs",
                "config": {"bucket": gcs_world.bucket, "endpoint_url": listener.url},
                "credentials": {"mode": "anonymous"},
            },
            "config.endpoint_url",
        ),
        (
            "gcs token_uri",
            {
                "kind": "gcs",
                "config": {"bucket": gcs_world.bucket},
                "credentials": {"mode": "service_account", "key_json": key},
            },
            "token_uri",
        ),
        (
            "azure account_url",
            {
                "kind": "azure_blob",
                "config": {
                    "container": azure_world.container,
                    "account_url": f"{listener.url}/{azurite.account_name}",
                },
                "credentials": {
                    "mode": "account_key",
                    "account_name": azurite.account_name,
                    "account_key": azurite.account_key,
                },
            },
            "config.account_url",
        ),
        (
            "azure connection string",
            {
                "kind": "azure_blob",
                "config": {"container": azure_world.container},
                "credentials": {
                    "mode": "connection_string",
                    "connection_string": azurite.connection_string().replace(
                        azurite.account_url, f"{listener.url}/{azurite.account_name}"
                    ),
                },
            },
            "BlobEndpoint",
        ),
    ]
    for what, body, field in refused:
        checked = post(server, token, f"{DESTINATIONS}/validate", body)
        assert checked.status_code == 422, (what, checked.text)
        assert field in checked.text, (what, checked.text)
        assert "SPILLWAY_ALLOWED_ENDPOINTS" in checked.text, (what, checked.text)
        for force in (False, True):
            created = post(server, token, DESTINATIONS, {**body, "name": what, "force": force})
            assert created.status_code == 422, (what, force, created.text)
            assert MARKER not in created.text
    assert server.client.get(DESTINATIONS, headers=auth(token)).json()["destinations"] == []

    # Listed (the emulators and a test token server, as an operator would list them): works.
    listed = [
        {
            "name": "gcs-emulator",
            "kind": "gcs",
            "config": {"bucket": gcs_world.bucket, "endpoint_url": gcs_world.endpoint},
            "credentials": {"mode": "anonymous"},
        },
        {
            "name": "gcs-key",
            "kind": "gcs",
            "config": {"bucket": gcs_world.bucket, "endpoint_url": gcs_world.endpoint},
            "credentials": {
                "mode": "service_account",
                "key_json": key_json(token_uri=f"{token_url}/token"),
            },
        },
        {
            "name": "azurite",
            "kind": "azure_blob",
            "config": {"container": azure_world.container, "account_url": azurite.account_url},
            "credentials": {
                "mode": "connection_string",
                "connection_string": azurite.connection_string(),
            },
        },
    ]
    for body in listed:
        created = post(server, token, DESTINATIONS, body)
        assert created.status_code == 201, created.text
        assert all(c["status"] != "failed" for c in created.json()["checks"]), created.text

    # Webhooks: an unlisted loopback receiver is refused, a listed one is accepted.
    local = post(
        server,
        token,
        DESTINATIONS,
        {"name": "files", "kind": "local", "config": {"path": "x"}, "credentials": {}},
    )
    assert local.status_code == 201, local.text
    export = {"destination_id": local.json()["id"], "frequency": "daily"}
    port = listener.url.rsplit(":", 1)[1]
    for url in (f"{listener.url}/hook", f"https://127.0.0.1:{port}/", f"https://localhost:{port}/"):
        answer = post(
            server, token, "/api/v1/exports", {**export, "name": "e1", "webhook_url": url}
        )
        assert answer.status_code == 422, answer.text
        assert "webhook_url" in answer.text
    answer = post(
        server,
        token,
        "/api/v1/exports",
        {**export, "name": "e2", "webhook_url": f"{receiver.url}/hook"},
    )
    assert answer.status_code == 201, answer.text
    assert listener.connections == 0  # nothing ever reached the unlisted service


def test_local_destinations_stay_inside_the_projects_own_folder(
    start_spillway: ServerFactory, tmp_path: Path
) -> None:
    root = tmp_path / "local-root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    off = start_spillway()  # no SPILLWAY_LOCAL_ROOT: no local folders at all
    token = create_credentials(off.data_dir).write_token
    body = {"name": "f", "kind": "local", "config": {"path": "x"}, "credentials": {}}
    for force in (False, True):
        answer = post(off, token, DESTINATIONS, {**body, "force": force})
        assert answer.status_code == 422, answer.text
        assert (
            "local folders are turned off on this server; the operator enables them with "
            "SPILLWAY_LOCAL_ROOT"
        ) in answer.text
    off.stop()

    server = start_spillway(extra_env={"SPILLWAY_LOCAL_ROOT": str(root)})
    mine = create_credentials(server.data_dir)
    theirs = create_credentials(server.data_dir)
    (root / mine.project_id).mkdir()
    (root / theirs.project_id).mkdir()
    (root / mine.project_id / "escape").symlink_to(outside)
    (root / mine.project_id / "neighbour").symlink_to(root / theirs.project_id)
    for path in (
        str(outside),  # absolute
        str(root / mine.project_id / "x"),  # absolute, even inside its own folder
        "../" + theirs.project_id,  # ..
        "x/../../" + theirs.project_id,
        "escape",  # a symlink pointing out of the root
        "escape/deeper",
        "neighbour",  # a symlink into another project's folder
    ):
        for force in (False, True):
            answer = post(
                server,
                mine.write_token,
                DESTINATIONS,
                {**body, "name": str(uuid.uuid4()), "config": {"path": path}, "force": force},
            )
            assert answer.status_code == 422, (path, force, answer.text)
            assert "config.path" in answer.text, answer.text
            if not path.startswith("/"):  # the server's own layout is not shown
                assert str(root) not in answer.text, answer.text
    listing = server.client.get(DESTINATIONS, headers=auth(mine.write_token)).json()
    assert listing["destinations"] == []
    assert list(outside.iterdir()) == []
    assert list((root / theirs.project_id).iterdir()) == []

    # Inside its own folder it works, and the validation object lands there (then goes: it is
    # deleted whenever the store allows; its folder stays).
    answer = post(
        server, mine.write_token, DESTINATIONS, {**body, "config": {"path": "exports/daily"}}
    )
    assert answer.status_code == 201, answer.text
    assert list((root / mine.project_id / "exports" / "daily").rglob("spillway-validation"))
    # The same relative path of another project is that project's own folder.
    answer = post(
        server, theirs.write_token, DESTINATIONS, {**body, "config": {"path": "exports/daily"}}
    )
    assert answer.status_code == 201, answer.text
    assert list((root / theirs.project_id / "exports" / "daily").rglob("spillway-validation"))
    assert list(outside.iterdir()) == []
