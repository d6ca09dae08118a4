"""Azure Blob destination settings and its three ways to authenticate, as pydantic models.

Nothing here imports the Azure SDK; it loads when a store is built.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from spillway import netpolicy
from spillway.destinations.fields import EndpointUrl, Folder, stored
from spillway.errors import Invalid
from spillway.secrets import mask

_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_SPECIAL_CONTAINERS = ("$root", "$web")
# Azurite's (and the old Storage Emulator's) one built-in account; Microsoft publishes its key.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_URL = "http://127.0.0.1:10000/devstoreaccount1"


class AzureBlobConfig(BaseModel):
    """Which container objects go to, and where the account's blob endpoint is."""

    model_config = ConfigDict(extra="forbid")
    container: str = Field(description="Container name, e.g. spillway-exports.")
    folder: Folder = ""
    account_url: EndpointUrl = Field(
        default=None,
        description=(
            "The account's blob endpoint. Leave empty for https://<account>.blob.core.windows.net "
            "(or the endpoint the connection string names); set it for other Azure clouds "
            "(https://<account>.blob.core.chinacloudapi.cn …). Custom domains and Azurite "
            "(http://127.0.0.1:10000/devstoreaccount1) work only when the operator lists their "
            "origin in SPILLWAY_ALLOWED_ENDPOINTS."
        ),
    )

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        if value is None:  # empty is "not set" (fields.EndpointUrl)
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("account_url must start with https:// (http:// only for Azurite)")
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError(
                "account_url must not carry a query string: put a SAS token in the credentials"
            )
        if ".blob.core." in parts.netloc and parts.path not in ("", "/"):
            raise ValueError(
                f"account_url is the account's endpoint without a container or path, e.g. "
                f"https://{parts.netloc}; the container goes in 'container'"
            )
        if stored(info):  # checked when its store is built (see refusal())
            return value
        # In the model, so `"force": true` cannot skip it.
        return check_blob_endpoint(value, "account_url")

    @model_validator(mode="after")
    def _check(self) -> AzureBlobConfig:
        if not (_CONTAINER.match(self.container) or self.container in _SPECIAL_CONTAINERS):
            raise ValueError(
                f"container {self.container!r} is not a valid container name (3-63 lower-case "
                "letters, digits and single hyphens, starting and ending with a letter or digit)"
            )
        return self


def _check_account_name(name: str) -> str:
    if not _ACCOUNT.match(name):
        raise ValueError(
            f"account_name {name!r} is not a storage account name (3-24 lower-case letters and "
            "digits, as in <account>.blob.core.windows.net)"
        )
    return name


def _check_account_key(key: str) -> None:
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise ValueError(
            "account_key is not a storage account key: copy key1 or key2 (a base64 string of 88 "
            "characters) from the storage account's Security + networking > Access keys page"
        )


def clean_sas(token: str) -> str:
    """The SAS token without a leading '?', or a ValueError saying what was pasted instead."""
    token = token.strip()
    if token.lower().startswith(("http://", "https://")):
        raise ValueError(
            "sas_token must be the token alone (the part after '?' of a SAS URL), not the URL"
        )
    token = token.removeprefix("?")
    fields = parse_qs(token)
    if "sig" not in fields or "sv" not in fields:
        raise ValueError(
            "sas_token does not look like a SAS token: it must contain sv=… and sig=… "
            "(generate one under the container's Shared access tokens)"
        )
    return token


def sas_fields(token: str) -> dict[str, str]:
    """The SAS token's query fields (first value of each)."""
    return {name: values[0] for name, values in parse_qs(token).items()}


def sas_time(value: str | None) -> datetime | None:
    """A SAS start or expiry time ('2030-01-31' or '2030-01-31T12:00:00Z'), in UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# The storage services a connection string may name besides the blob service (Spillway uses
# only the blob one, but refuses a string pointing any of them somewhere not allowed).
_OTHER_ENDPOINTS = {
    "queueendpoint": "queue",
    "tableendpoint": "table",
    "fileendpoint": "file",
    "dfsendpoint": "dfs",
}


def check_blob_endpoint(url: str, field: str, service: str = "blob") -> str:
    """An Azure Storage endpoint: https on Azure's own domains, or an origin the operator lists."""
    domains = tuple(
        domain.replace("blob.", f"{service}.", 1) for domain in netpolicy.AZURE_BLOB_DOMAINS
    )
    return netpolicy.current().check_endpoint(url, field=field, provider=domains)


@dataclass(frozen=True, slots=True)
class ConnectionParts:
    """What an Azure Storage connection string says (secrets stay SecretStr)."""

    account_name: str | None
    account_url: str
    account_key: SecretStr | None
    sas_token: SecretStr | None


def parse_connection_string(text: str, *, check: bool = True) -> ConnectionParts:
    """Read a connection string as the portal shows it, or raise a ValueError saying why not.

    ``check``: refuse endpoints the operator does not allow (netpolicy.Refused, a ValueError).
    """
    settings: dict[str, str] = {}
    for item in text.strip().split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(
                "connection_string must be name=value pairs separated by ';', as the storage "
                "account's Access keys page shows it"
            )
        settings[name.strip().lower()] = value.strip()
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        if check:  # Azurite's fixed address: only where the operator runs one and lists it
            netpolicy.current().check_endpoint(
                DEV_URL, field="UseDevelopmentStorage (Azurite's URL)"
            )
        return ConnectionParts(DEV_ACCOUNT, DEV_URL, SecretStr(DEV_KEY), None)
    account = settings.get("accountname") or None
    if account is not None:
        _check_account_name(account)
    url = settings.get("blobendpoint", "").rstrip("/")
    field = "the connection string's BlobEndpoint"
    if not url:
        if account is None:
            raise ValueError("connection_string has neither AccountName nor BlobEndpoint")
        protocol = settings.get("defaultendpointsprotocol") or "https"
        suffix = settings.get("endpointsuffix") or "core.windows.net"
        url = f"{protocol}://{account}.blob.{suffix}"
        field = "the blob endpoint the connection string names (protocol and EndpointSuffix)"
    elif not url.startswith(("http://", "https://")):
        raise ValueError("the connection string's BlobEndpoint must start with https://")
    key, sas = settings.get("accountkey"), settings.get("sharedaccesssignature")
    if key:
        if account is None:
            raise ValueError("connection_string has an AccountKey but no AccountName")
        _check_account_key(key)
        parts = ConnectionParts(account, url, SecretStr(key), None)
    elif sas:
        parts = ConnectionParts(account, url, None, SecretStr(clean_sas(sas)))
    else:
        raise ValueError(
            "connection_string has neither AccountKey nor SharedAccessSignature: copy the whole "
            "string from Access keys (or the SAS connection string from Shared access signature)"
        )
    if check:
        check_blob_endpoint(url, field)
        for name, service in _OTHER_ENDPOINTS.items():
            if settings.get(name):
                check_blob_endpoint(
                    settings[name], f"the connection string's {service.title()}Endpoint", service
                )
    return parts


class ConnectionString(BaseModel):
    """A connection string from the portal: account key or SAS, and the endpoint."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["connection_string"] = "connection_string"
    connection_string: SecretStr = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self, info: pydantic.ValidationInfo) -> ConnectionString:
        # A stored one's endpoints are checked when its store is built (see refusal()).
        parse_connection_string(self.connection_string.get_secret_value(), check=not stored(info))
        return self


class AccountKey(BaseModel):
    """The storage account's name and one of its two access keys."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["account_key"] = "account_key"
    account_name: str
    account_key: SecretStr = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AccountKey:
        _check_account_name(self.account_name)
        _check_account_key(self.account_key.get_secret_value())
        return self


class SasToken(BaseModel):
    """A shared access signature (container or account SAS); it carries its own expiry."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["sas_token"] = "sas_token"
    account_name: str | None = Field(
        default=None, description="Needed unless the config sets account_url."
    )
    sas_token: SecretStr = Field(min_length=1)

    @field_validator("sas_token")
    @classmethod
    def _clean(cls, value: SecretStr) -> SecretStr:
        return SecretStr(clean_sas(value.get_secret_value()))

    @model_validator(mode="after")
    def _check(self) -> SasToken:
        if self.account_name is not None:
            _check_account_name(self.account_name)
        return self


class AzureCredentials(
    pydantic.RootModel[
        Annotated[ConnectionString | AccountKey | SasToken, Field(discriminator="mode")]
    ]
):
    """One of the modes, chosen by ``mode``."""

    @model_validator(mode="before")
    @classmethod
    def _mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mode" not in data:
            raise ValueError("mode is required: connection_string, account_key or sas_token")
        return data


@dataclass(frozen=True, slots=True)
class Target:
    """Where a store connects and how it authenticates (secrets stay SecretStr)."""

    mode: str
    account_url: str
    account_name: str | None
    account_key: SecretStr | None = None
    sas_token: SecretStr | None = None

    @property
    def who(self) -> str:
        """What a person supplied, for messages: 'the account key' or 'the SAS token'."""
        what = "the account key" if self.account_key is not None else "the SAS token"
        return f"{what} of the connection string" if self.mode == "connection_string" else what


def resolve(config: AzureBlobConfig, credentials: AzureCredentials) -> Target:
    """The endpoint and secret a store uses; ``config.account_url`` wins when set."""
    value = credentials.root
    if isinstance(value, ConnectionString):
        parts = parse_connection_string(value.connection_string.get_secret_value(), check=False)
        return Target(
            value.mode,
            config.account_url or parts.account_url,
            parts.account_name,
            parts.account_key,
            parts.sas_token,
        )
    if isinstance(value, AccountKey):
        url = config.account_url or f"https://{value.account_name}.blob.core.windows.net"
        return Target(value.mode, url, value.account_name, account_key=value.account_key)
    if config.account_url:
        url = config.account_url
    elif value.account_name:
        url = f"https://{value.account_name}.blob.core.windows.net"
    else:
        raise Invalid(
            None,
            "a SAS token does not name its storage account: set credentials.account_name, or "
            "config.account_url",
        )
    return Target(value.mode, url, value.account_name, sas_token=value.sas_token)


Config = AzureBlobConfig
Credentials = AzureCredentials


def refusal(config: AzureBlobConfig, credentials: AzureCredentials) -> str | None:
    """Why the operator's settings no longer allow a stored destination (None when they do):
    its account_url, or an endpoint its connection string names."""
    try:
        if config.account_url:
            check_blob_endpoint(config.account_url, "account_url")
        value = credentials.root
        if isinstance(value, ConnectionString):
            parse_connection_string(value.connection_string.get_secret_value())
    except ValueError as exc:
        return f"this destination is no longer allowed on this server: {exc}"
    return None


def _sas_public(token: str) -> dict[str, Any]:
    fields = sas_fields(token)
    return {
        "sas_token": mask(token),
        "permissions": fields.get("sp"),
        "expires": fields.get("se"),
    }


def public_credentials(credentials: AzureCredentials) -> dict[str, Any]:
    """The masked view: the account and enough of the secret to recognise it, never all of it."""
    value = credentials.root
    if isinstance(value, AccountKey):
        return {
            "mode": value.mode,
            "account_name": value.account_name,
            "account_key": mask(value.account_key.get_secret_value()),
        }
    if isinstance(value, SasToken):
        return {
            "mode": value.mode,
            "account_name": value.account_name,
            **_sas_public(value.sas_token.get_secret_value()),
        }
    parts = parse_connection_string(value.connection_string.get_secret_value(), check=False)
    shown: dict[str, Any] = {
        "mode": value.mode,
        "account_name": parts.account_name,
        "account_url": parts.account_url,
    }
    if parts.account_key is not None:
        shown["account_key"] = mask(parts.account_key.get_secret_value())
    if parts.sas_token is not None:
        shown.update(_sas_public(parts.sas_token.get_secret_value()))
    return shown
