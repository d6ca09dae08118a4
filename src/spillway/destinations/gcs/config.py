"""GCS destination settings and its two ways to authenticate, as pydantic models.

The models load no Google library, so the API can check input without importing the SDK.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from spillway import netpolicy
from spillway.destinations import fields
from spillway.destinations.base import Tenant
from spillway.destinations.fields import EndpointUrl, Folder
from spillway.secrets import mask


def check_endpoint(url: str, info: pydantic.ValidationInfo | None = None) -> str:
    """endpoint_url: https on Google's storage domain, or an origin the operator lists."""
    return fields.check_endpoint(url, info, field="endpoint_url", provider=netpolicy.GCS_DOMAINS)


def check_token_uri(url: str) -> str:
    """A key's token_uri. The signed token request goes there: Google's token endpoint, or one
    the operator lists (a test token server), never an address a caller picks."""
    try:
        return netpolicy.current().check_endpoint(
            url.strip(), field="token_uri", provider=netpolicy.GOOGLE_TOKEN_DOMAINS
        )
    except netpolicy.Refused:
        raise ValueError(
            f"is not Google's token endpoint ({netpolicy.GOOGLE_TOKEN_URI}): paste the key file "
            "exactly as the Cloud console downloaded it. Another token endpoint works only when "
            f"the operator lists its origin in {netpolicy.SETTING}"
        ) from None


# Bucket names: 3-63 characters (up to 222 with dots, 63 per dot-separated part), lower-case
# letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_PROJECT = re.compile(r"^([a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")


class GcsConfig(BaseModel):
    """Where objects are written: a bucket, a folder in it, and the project billed."""

    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(description="Bucket name, e.g. acme-exports (without gs://).")
    project: str | None = Field(
        default=None,
        description="Project id used for requests; by default the service account key's.",
    )
    folder: Folder = ""
    endpoint_url: EndpointUrl = Field(
        default=None,
        description=(
            "Leave empty for Google Cloud. Otherwise https on storage.googleapis.com, or a "
            "storage emulator whose origin the operator lists in SPILLWAY_ALLOWED_ENDPOINTS."
        ),
    )

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        # Empty is "not set" (fields.EndpointUrl); a stored one is judged in refusal().
        return None if value is None else check_endpoint(value.strip(), info)

    @model_validator(mode="after")
    def _check(self) -> GcsConfig:
        if self.bucket.startswith("gs://"):
            raise ValueError(
                f"bucket is the name only: use {self.bucket[5:].split('/')[0]!r}, without gs:// "
                "(put a folder path in 'folder')"
            )
        parts = self.bucket.split(".")
        if (
            not _BUCKET.match(self.bucket)
            or ".." in self.bucket
            or (len(parts) == 1 and len(self.bucket) > 63)
            or any(len(part) > 63 for part in parts)
        ):
            raise ValueError(
                f"bucket {self.bucket!r} is not a valid Cloud Storage bucket name (3-63 "
                "lower-case letters, digits, '-', '_' and '.', starting and ending with a letter "
                "or digit)"
            )
        if self.project is not None and not _PROJECT.match(self.project):
            raise ValueError(
                f"project {self.project!r} is not a project id (6-30 lower-case letters, digits "
                "and '-', like acme-analytics; not the project's display name or number)"
            )
        return self


class ServiceAccountKey(BaseModel):
    """The JSON key of a service account, as the Cloud console downloads it.

    Fields Spillway does not use (``auth_uri``, ``client_x509_cert_url``, …) are dropped.
    """

    model_config = ConfigDict(extra="ignore")
    type: str
    project_id: str | None = None
    private_key_id: str | None = None
    private_key: SecretStr
    client_email: str
    client_id: str | None = None
    token_uri: str
    universe_domain: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value == "service_account":
            return value
        hint = {
            "authorized_user": " (a person's login from `gcloud auth application-default login`)",
            "external_account": " (workload identity federation, not supported yet)",
            "impersonated_service_account": " (impersonation, not supported yet)",
        }.get(value, "")
        raise ValueError(
            f"is {value!r}{hint}, not 'service_account': create a key for a service account "
            "(IAM & Admin → Service accounts → Keys → Add key → JSON) and paste that file"
        )

    @field_validator("client_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(
                "must be the service account's e-mail, like name@project.iam.gserviceaccount.com"
            )
        return value

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        # A key pasted through a tool that escaped it twice holds the two characters \n.
        if "\\n" in text and "\n" not in text:
            text = text.replace("\\n", "\n")
        if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
            # Never echo any of it back: it is the secret.
            raise ValueError(
                "is not a PEM private key (it must start with -----BEGIN PRIVATE KEY-----): "
                "paste the whole JSON key file unchanged"
            )
        return SecretStr(text)

    @field_validator("token_uri")
    @classmethod
    def _token_uri(cls, value: str, info: pydantic.ValidationInfo) -> str:
        if fields.stored(info):  # checked when its store is built (see refusal())
            return value
        return check_token_uri(value)

    @field_validator("universe_domain")
    @classmethod
    def _universe(cls, value: str | None) -> str | None:
        if value is not None and value != "googleapis.com":
            raise ValueError(
                f"is {value!r}: Spillway writes to Cloud Storage in the googleapis.com universe "
                "only; use a key of a service account there"
            )
        return value


class ServiceAccount(BaseModel):
    """A service account's JSON key: as the text of the downloaded file, or as an object."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["service_account"] = "service_account"
    key_json: ServiceAccountKey

    @field_validator("key_json", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                # The position helps find a truncated paste; the text itself is never shown.
                raise ValueError(
                    f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                    "paste the whole contents of the downloaded .json key file"
                ) from None
        if not isinstance(value, dict):
            raise ValueError("must be the service account's JSON key (an object)")
        return value


class Anonymous(BaseModel):
    """No credentials: only for a storage emulator at an allowed ``endpoint_url``."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["anonymous"] = "anonymous"


GcsAuth = ServiceAccount | Anonymous


class GcsCredentials(pydantic.RootModel[GcsAuth]):
    """What the API accepts: ``{"mode": "service_account", "key_json": …}`` or anonymous.

    The downloaded key file itself (``{"type": "service_account", …}``) is accepted as well.
    """

    root: Annotated[GcsAuth, Field(discriminator="mode")]

    @model_validator(mode="before")
    @classmethod
    def _mode(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "mode" not in data and data.get("type") == "service_account":
            return {"mode": "service_account", "key_json": data}
        if data.get("mode") not in ("service_account", "anonymous"):
            raise ValueError(
                "mode must be 'service_account' (with key_json: the service account's JSON "
                "key) or 'anonymous' (only with a storage emulator's endpoint_url)"
            )
        return data


Config = GcsConfig
Credentials = GcsCredentials


ANONYMOUS_NEEDS_ENDPOINT = (
    "anonymous access is only for a storage emulator: set config.endpoint_url to one the "
    f"operator lists in {netpolicy.SETTING}, or use a service account's JSON key for Google "
    "Cloud Storage"
)


def emulator(config: GcsConfig) -> bool:
    """An endpoint the operator listed (Google's own domain is no emulator)."""
    if config.endpoint_url is None:
        return False
    try:
        return netpolicy.current().listed(netpolicy.origin_of(config.endpoint_url))
    except netpolicy.Refused:
        return False


def admit(config: GcsConfig, credentials: GcsCredentials, tenant: Tenant | None) -> None:
    """What neither model judges alone (registry.parse calls it): anonymous access is for a
    storage emulator the operator lists, never for Google Cloud."""
    if isinstance(credentials.root, Anonymous) and not emulator(config):
        raise ValueError(ANONYMOUS_NEEDS_ENDPOINT)


def refusal(config: GcsConfig, credentials: GcsCredentials) -> str | None:
    """Why the operator's settings no longer allow a stored destination (None when they do)."""
    try:
        if config.endpoint_url is not None:
            check_endpoint(config.endpoint_url)
        if isinstance(credentials.root, ServiceAccount):
            try:
                check_token_uri(credentials.root.key_json.token_uri)
            except ValueError as exc:
                raise ValueError(f"the service account key's token_uri {exc}") from None
        admit(config, credentials, None)
    except ValueError as exc:
        return f"this destination is no longer allowed on this server: {exc}"
    return None


def public_credentials(credentials: GcsCredentials) -> dict[str, Any]:
    """The masked view: who the service account is, never its private key."""
    value = credentials.root
    if isinstance(value, ServiceAccount):
        key = value.key_json
        return {
            "mode": value.mode,
            "client_email": key.client_email,
            "project_id": key.project_id,
            "private_key_id": mask(key.private_key_id) if key.private_key_id else None,
        }
    return {"mode": value.mode}
