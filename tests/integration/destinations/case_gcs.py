"""GCS case: gcp-storage-emulator as a real server; a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import google.api_core.exceptions as api_errors
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from spillway.destinations.base import ObjectStore
from spillway.destinations.gcs.config import Anonymous, GcsConfig, ServiceAccount
from spillway.destinations.gcs.store import GcsStore
from tests import server_gcs
from tests.integration.destinations.cases import StoreCase
from tests.servers import ServerFailed

KIB = 1024
# Not a key: the PEM armour around bytes that are not DER, so loading it fails.
BROKEN_PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """One emulator for the session; its URL."""
    try:
        with server_gcs.gcs_emulator() as url:
            yield url
    except ServerFailed as exc:
        pytest.fail(f"gcp-storage-emulator did not start: {exc}")


def new_pem() -> str:
    """A fresh RSA private key in the PKCS#8 PEM form of a downloaded key file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def key_json(
    *, private_key: str | None = None, token_uri: str = "https://oauth2.googleapis.com/token"
) -> dict[str, Any]:
    """A service account key file's contents, shaped like the console's download."""
    return {
        "type": "service_account",
        "project_id": "spillway-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": private_key if private_key is not None else new_pem(),
        "client_email": "spillway-writer@spillway-test.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/x",
        "universe_domain": "googleapis.com",
    }


@dataclass
class GcsWorld:
    """A fresh bucket on the emulator, and stores on it (closed at teardown)."""

    endpoint: str
    bucket: str
    admin: Any
    stores: list[GcsStore] = field(default_factory=list)

    def config(self, **overrides: Any) -> GcsConfig:
        """Destination config for this bucket on the emulator."""
        values: dict[str, Any] = {
            "bucket": self.bucket,
            "folder": "exports",
            "endpoint_url": self.endpoint,
        }
        values.update(overrides)
        return GcsConfig(**values)

    def store(
        self, credentials: ServiceAccount | Anonymous | None = None, **overrides: Any
    ) -> GcsStore:
        """A store with these credentials (anonymous by default, as the emulator expects)."""
        store = GcsStore(self.config(**overrides), credentials or Anonymous())
        self.stores.append(store)
        return store

    def raw_read(self, key: str) -> bytes | None:
        """Read with google-cloud-storage's own client, not Spillway's code."""
        try:
            return bytes(self.admin.bucket(self.bucket).blob(key).download_as_bytes())
        except api_errors.NotFound:
            return None


@pytest.fixture
def gcs_world(gcs_emulator: str) -> Iterator[GcsWorld]:
    """A fresh bucket per test."""
    admin = storage.Client(
        project="spillway-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_emulator},
    )
    bucket = "spw-" + uuid.uuid4().hex[:16]
    admin.create_bucket(bucket)
    world = GcsWorld(gcs_emulator, bucket, admin)
    yield world
    for store in world.stores:
        store.close()
    admin.close()


@pytest.fixture
def gcs_case(gcs_world: GcsWorld) -> StoreCase:
    def make(part_size: int) -> ObjectStore:
        store = gcs_world.store()
        store.part_size = part_size
        return store

    def bad_credentials() -> ObjectStore:
        # The emulator accepts every request, so no key can be refused by it. A key file whose
        # private_key is PEM armour around garbage passes the Credentials model (it looks like
        # a key) but cannot sign a token request: the credentials check fails before any call
        # to the network, exactly as it would against Google with a damaged paste.
        broken = ServiceAccount.model_validate({"key_json": key_json(private_key=BROKEN_PEM)})
        return gcs_world.store(broken)

    def missing() -> ObjectStore:
        return gcs_world.store(bucket="spw-missing-" + uuid.uuid4().hex[:8])

    return StoreCase(
        kind="gcs",
        make=make,
        make_bad_credentials=bad_credentials,
        make_missing_bucket=missing,
        raw_read=gcs_world.raw_read,
        credentials_check="credentials",
        bucket_check="bucket",
        min_part_size=256 * KIB,
    )
