"""The ordered validation of an Azure Blob destination: credentials → container → objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from spillway.destinations.azure_blob.client import SAS_LIMIT_CODES, SDK_ERRORS, error_code
from spillway.destinations.azure_blob.config import AzureBlobConfig, Target, sas_fields, sas_time
from spillway.destinations.base import Check, Guarded, Needs, guarded_checks


class AzureBlobStore(Guarded, Protocol):
    """What the checks read of the store they validate (``store.AzureBlobStore``)."""

    config: AzureBlobConfig
    target: Target

    @property
    def container(self) -> ContainerClient: ...

    @property
    def account(self) -> str: ...

    def explain(self, exc: BaseException, key: str | None = None) -> str: ...


def run_checks(store: AzureBlobStore, needs: Needs) -> list[Check]:
    """credentials → bucket (the container) → write/read/list/delete."""
    return guarded_checks(store, needs, lambda: _credentials(store), lambda: _bucket(store))


def sas_problem(token: str, now: datetime) -> str | None:
    """Why a SAS token cannot work right now, judged from its own fields (None when it may)."""
    fields = sas_fields(token)
    expiry, start = sas_time(fields.get("se")), sas_time(fields.get("st"))
    if expiry is not None and expiry <= now:
        return (
            f"the SAS token expired at {expiry:%Y-%m-%d %H:%M} UTC: generate a new one with a "
            "later expiry and rotate this destination's credentials"
        )
    if start is not None and start > now:
        return (
            f"the SAS token is not valid before {start:%Y-%m-%d %H:%M} UTC: wait, or generate "
            "one whose start time is in the past (or empty)"
        )
    return None


def _credentials(store: AzureBlobStore) -> Check:
    target = store.target
    expiry = ""
    if target.sas_token is not None:
        token = target.sas_token.get_secret_value()
        problem = sas_problem(token, datetime.now(UTC))
        if problem:
            return Check.failed("credentials", problem)
        if (se := sas_fields(token).get("se")) is not None:
            expiry = f"; it expires {se}"
    who = target.who
    try:
        info = store.container.get_account_information()
    except ResourceNotFoundError:
        # Azure authenticates before it looks for the resource: a 404 means it let us in.
        return Check.passed("credentials", f"Azure accepted {who} of {store.account}{expiry}")
    except HttpResponseError as exc:
        if target.sas_token is not None and error_code(exc) in SAS_LIMIT_CODES - {
            "AuthorizationSourceIPMismatch",
            "AuthorizationProtocolMismatch",
        }:
            return Check.passed(
                "credentials",
                f"Azure accepted the signature of {who} for {store.account}{expiry} (the SAS "
                "does not allow reading account information, which Spillway does not need)",
            )
        return Check.failed("credentials", store.explain(exc))
    except SDK_ERRORS as exc:
        return Check.failed("credentials", store.explain(exc))
    kind = info.get("account_kind") or "storage account"
    return Check.passed("credentials", f"Azure accepted {who} of {store.account} ({kind}){expiry}")


def _bucket(store: AzureBlobStore) -> Check:
    name = store.config.container
    try:
        store.container.get_container_properties()
    except ResourceNotFoundError as exc:
        return _missing(store, exc)
    except HttpResponseError as exc:
        if error_code(exc) in SAS_LIMIT_CODES:
            return _bucket_by_listing(store)
        return Check.failed("bucket", f"could not look at container {name}: {store.explain(exc)}")
    except SDK_ERRORS as exc:
        return Check.failed("bucket", f"could not reach container {name}: {store.explain(exc)}")
    return Check.passed("bucket", f"container {name} exists in storage account {store.account}")


def _bucket_by_listing(store: AzureBlobStore) -> Check:
    """A SAS rarely may read container properties; listing one blob proves the container too."""
    name = store.config.container
    try:
        for _ in store.container.list_blob_names(results_per_page=1):
            break
    except ResourceNotFoundError as exc:
        return _missing(store, exc)
    except HttpResponseError as exc:
        if error_code(exc) in SAS_LIMIT_CODES:
            return Check.skipped(
                "bucket",
                f"{store.target.who} may not list container {name} (no l permission); the "
                "write check below proves the container exists",
            )
        return Check.failed("bucket", f"could not list container {name}: {store.explain(exc)}")
    except SDK_ERRORS as exc:
        return Check.failed("bucket", f"could not reach container {name}: {store.explain(exc)}")
    return Check.passed("bucket", f"container {name} exists (listed it with {store.target.who})")


def _missing(store: AzureBlobStore, exc: ResourceNotFoundError) -> Check:
    name = store.config.container
    if error_code(exc) in ("ContainerNotFound", ""):
        return Check.failed(
            "bucket",
            f"container {name} does not exist in storage account {store.account}: create it "
            "(Storage account > Data storage > Containers > + Container) or fix the name",
        )
    return Check.failed("bucket", f"could not look at container {name}: {store.explain(exc)}")
