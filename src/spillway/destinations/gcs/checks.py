"""The ordered validation of a GCS destination: credentials → bucket → write/read/list/delete."""

from __future__ import annotations

from typing import Any, Protocol

import google.api_core.exceptions as api_errors
import google.auth.exceptions as auth_errors
import requests
from google.auth.transport.requests import Request

from spillway.destinations.base import (
    Check,
    DestinationError,
    Guarded,
    Needs,
    guarded_checks,
)
from spillway.destinations.gcs.client import RETRY, refusal
from spillway.destinations.gcs.config import (
    ANONYMOUS_NEEDS_ENDPOINT,
    Anonymous,
    GcsConfig,
    ServiceAccount,
    emulator,
)

# Asked of the bucket with testIamPermissions, which needs no permission itself.
_CREATE, _DELETE, _GET, _LIST = (
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
)


class GcsStore(Guarded, Protocol):
    """What the checks read of the store they validate (``store.GcsStore``)."""

    config: GcsConfig
    credentials: ServiceAccount | Anonymous

    @property
    def who(self) -> str: ...

    def google_credentials(self) -> Any: ...

    def bucket(self) -> Any: ...


def run_checks(store: GcsStore, needs: Needs) -> list[Check]:
    """Each step runs only when the one before it passed (or was skipped)."""
    return guarded_checks(store, needs, lambda: _credentials(store), lambda: _bucket(store, needs))


def _credentials(store: GcsStore) -> Check:
    if not isinstance(store.credentials, ServiceAccount):
        if emulator(store.config):
            return Check.skipped(
                "credentials",
                f"anonymous access to the emulator at {store.config.endpoint_url}: there is no "
                "key to check; the write check proves access",
            )
        return Check.failed("credentials", ANONYMOUS_NEEDS_ENDPOINT)
    try:
        credentials = store.google_credentials()
    except DestinationError as exc:
        return Check.failed("credentials", str(exc))
    token_uri = store.credentials.key_json.token_uri
    with requests.Session() as session:
        try:
            credentials.refresh(Request(session))
        except auth_errors.RefreshError as exc:
            return Check.failed(
                "credentials",
                f"Google refused an access token to {store.who}: {refusal(exc)}",
            )
        except (auth_errors.TransportError, requests.RequestException) as exc:
            return Check.failed(
                "credentials",
                f"cannot reach the token endpoint {token_uri} ({exc.__class__.__name__}): check "
                "the network, proxy and firewall of the Spillway server",
            )
        except Exception as exc:  # e.g. a 200 whose body is not a token (google-auth trips)
            return Check.failed(
                "credentials",
                f"the token endpoint {token_uri} answered with something that is not an access "
                f"token ({exc.__class__.__name__}): check the key's token_uri",
            )
    return Check.passed("credentials", f"Google issued an access token to {store.who}")


def _bucket(store: GcsStore, needs: Needs) -> Check:
    name = store.config.bucket
    try:
        held = set(
            store.bucket().test_iam_permissions([_CREATE, _DELETE, _GET, _LIST], retry=RETRY)
        )
    except api_errors.NotFound:
        return Check.failed(
            "bucket",
            f"bucket {name} does not exist: check the name (only the name, without gs:// or a "
            "folder) and that the bucket was created",
        )
    except DestinationError as exc:
        return Check.failed("bucket", str(exc))
    except Exception as exc:  # a Google error, or an answer the SDK could not read
        return Check.failed("bucket", f"could not look up bucket {name}: {store.explain(exc)}")

    # A grant limited to the folder by an IAM condition does not show on the whole bucket, so
    # a missing permission is a warning here; the object checks below decide.
    notes = []
    if _CREATE not in held:
        notes.append(
            f"{store.who} does not hold {_CREATE} on the whole bucket: unless its grant is "
            "limited to the folder by an IAM condition, the write check below will fail; grant "
            "it roles/storage.objectCreator on the bucket"
        )
    if _DELETE not in held:
        notes.append(
            f"without {_DELETE}, a retried run cannot replace a file it already wrote (Cloud "
            "Storage needs it to overwrite) and cleanup cannot remove leftovers: add it, or "
            "use roles/storage.objectUser"
        )
    if needs.read and _GET not in held:
        notes.append(f"read-back verification needs {_GET} (roles/storage.objectViewer)")
    if needs.list and _LIST not in held:
        notes.append(f"finding leftovers needs {_LIST} (roles/storage.objectViewer)")
    holds = ", ".join(sorted(held)) if held else "none of the object permissions"
    message = f"bucket {name} exists; on the whole bucket, {store.who} holds {holds}"
    return Check.passed("bucket", "; ".join([message, *notes]))
