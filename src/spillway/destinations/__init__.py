"""Destinations: one package per kind, found through :data:`KINDS`.

Each kind's package exposes ``Config`` and ``Credentials`` pydantic models, ``build(config,
credentials, tenant)`` returning its store, and ``public_credentials(credentials)``
returning what the API may show (masked). Vendor SDKs load only when a kind is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, cast

from pydantic import BaseModel, ValidationError

from spillway.destinations.base import Destination, Tenant
from spillway.errors import InputError

# kind → module path; adding a destination touches its folder and this line.
KINDS: dict[str, str] = {
    "local": "spillway.destinations.local.kind",
    "s3": "spillway.destinations.s3.kind",
    "gcs": "spillway.destinations.gcs.kind",
    "azure_blob": "spillway.destinations.azure_blob.kind",
    "kinesis": "spillway.destinations.kinesis.kind",
    "firehose": "spillway.destinations.firehose.kind",
}


class KindModule(Protocol):
    """What each kind's ``kind`` module provides."""

    Config: type[BaseModel]
    Credentials: type[BaseModel]

    def build(self, config: Any, credentials: Any, tenant: Tenant) -> Destination: ...

    def public_credentials(self, credentials: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Parsed:
    """A destination's validated config and credentials."""

    kind: str
    config: BaseModel
    credentials: BaseModel


def kind_module(kind: str) -> KindModule:
    """The module of a kind, or a 400 naming the known kinds."""
    path = KINDS.get(kind)
    if path is None:
        raise InputError(f"unknown destination kind {kind!r}; use one of: {', '.join(KINDS)}")
    module: ModuleType = importlib.import_module(path)
    return cast(KindModule, module)


def _describe(exc: ValidationError, what: str) -> str:
    parts = []
    for err in exc.errors()[:8]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{what}.{loc}: {err['msg']}" if loc else f"{what}: {err['msg']}")
    return "; ".join(parts)


def parse(kind: str, config: dict[str, Any], credentials: dict[str, Any]) -> Parsed:
    """Validate raw JSON into a kind's models, or raise a 400 saying which field is wrong."""
    module = kind_module(kind)
    try:
        parsed_config = module.Config.model_validate(config)
    except ValidationError as exc:
        raise InputError(_describe(exc, "config"), status_code=422) from None
    try:
        parsed_credentials = module.Credentials.model_validate(credentials)
    except ValidationError as exc:
        raise InputError(_describe(exc, "credentials"), status_code=422) from None
    except ValueError as exc:  # e.g. a credentials CSV that isn't the console's format
        raise InputError(str(exc), status_code=422) from None
    return Parsed(kind, parsed_config, parsed_credentials)


def build(parsed: Parsed, tenant: Tenant) -> Destination:
    """A live store for a parsed destination of ``tenant``."""
    return kind_module(parsed.kind).build(parsed.config, parsed.credentials, tenant)


def public_credentials(parsed: Parsed) -> dict[str, Any]:
    """The masked view of the credentials."""
    return kind_module(parsed.kind).public_credentials(parsed.credentials)
