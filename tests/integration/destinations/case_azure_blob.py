"""Azure Blob case: Azurite's blob service; a fresh container per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from spillway.destinations.azure_blob.config import AzureBlobConfig, AzureCredentials
from spillway.destinations.azure_blob.kind import build
from spillway.destinations.azure_blob.store import AzureBlobStore
from spillway.destinations.base import ObjectStore, Tenant
from tests.integration.destinations.cases import StoreCase
from tests.server_azurite import WRONG_KEY, Azurite, azurite_server
from tests.servers import ServerFailed

KIB = 1024


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite blob service for the session."""
    try:
        with azurite_server() as server:
            yield server
    except ServerFailed as exc:
        pytest.fail(f"Azurite did not start: {exc}")


@dataclass
class AzureWorld:
    """A fresh container on Azurite, and helpers to make credentials and stores for it."""

    azurite: Azurite
    container: str
    admin: ContainerClient
    stores: list[AzureBlobStore] = field(default_factory=list)

    def config(self, **overrides: Any) -> AzureBlobConfig:
        """Destination config for this container on Azurite."""
        values: dict[str, Any] = {
            "container": self.container,
            "folder": "exports",
            "account_url": self.azurite.account_url,
        }
        values.update(overrides)
        return AzureBlobConfig(**values)

    def account_key(self, key: str | None = None) -> AzureCredentials:
        """Account name + key credentials (Azurite's own key unless another is given)."""
        return AzureCredentials.model_validate(
            {
                "mode": "account_key",
                "account_name": self.azurite.account_name,
                "account_key": key or self.azurite.account_key,
            }
        )

    def connection_string(self, text: str | None = None) -> AzureCredentials:
        """Connection-string credentials (Azurite's own unless another is given)."""
        return AzureCredentials.model_validate(
            {
                "mode": "connection_string",
                "connection_string": text or self.azurite.connection_string(),
            }
        )

    def sas_token(
        self,
        permission: str,
        *,
        expiry: datetime | None = None,
        start: datetime | None = None,
        key: str | None = None,
        container: str | None = None,
    ) -> str:
        """A container SAS made with the Azure SDK's own generator."""
        return generate_container_sas(
            self.azurite.account_name,
            container or self.container,
            account_key=key or self.azurite.account_key,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=expiry or datetime.now(UTC) + timedelta(hours=1),
            start=start,
        )

    def sas(self, permission: str, **kwargs: Any) -> AzureCredentials:
        """SAS-token credentials with these permissions (e.g. "racwdl")."""
        return AzureCredentials.model_validate(
            {
                "mode": "sas_token",
                "account_name": self.azurite.account_name,
                "sas_token": self.sas_token(permission, **kwargs),
            }
        )

    def store(
        self, credentials: AzureCredentials, *, part_size: int = 64 * KIB, **overrides: Any
    ) -> AzureBlobStore:
        """A store with these credentials, closed when the test ends."""
        store = build(self.config(**overrides), credentials, Tenant("0" * 32, "p", "unused"))
        store.part_size = part_size
        self.stores.append(store)
        return store

    def raw_read(self, key: str) -> bytes | None:
        """Read with the SDK's own client and Azurite's key, not Spillway's code."""
        try:
            return self.admin.download_blob(key).readall()
        except ResourceNotFoundError:
            return None


@pytest.fixture
def azure_world(azurite: Azurite) -> Iterator[AzureWorld]:
    """A fresh, empty container per test."""
    container = "spw-" + uuid.uuid4().hex[:16]
    admin = ContainerClient(
        azurite.account_url,
        container,
        credential={"account_name": azurite.account_name, "account_key": azurite.account_key},
    )
    admin.create_container()
    world = AzureWorld(azurite, container, admin)
    yield world
    for store in world.stores:
        store.close()
    admin.delete_container()
    admin.close()


@pytest.fixture
def azure_blob_case(azure_world: AzureWorld) -> StoreCase:
    credentials = azure_world.account_key()

    def make(part_size: int) -> ObjectStore:
        return azure_world.store(credentials, part_size=part_size)

    def missing() -> ObjectStore:
        return azure_world.store(credentials, container="spw-missing-" + uuid.uuid4().hex[:8])

    return StoreCase(
        kind="azure_blob",
        make=make,
        make_bad_credentials=lambda: azure_world.store(azure_world.account_key(WRONG_KEY)),
        make_missing_bucket=missing,
        raw_read=azure_world.raw_read,
        credentials_check="credentials",
        bucket_check="bucket",
        min_part_size=64 * KIB,
    )
