"""Config fields every kind shares: the folder, a custom endpoint, and the ``stored`` context.

Pydantic only (no vendor SDK), so the API checks input without loading one.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from spillway import netpolicy

# Validation context of a destination read back from the database (registry.parse(stored=True)):
# what the operator allows (endpoints, local folders) is judged when its store is built instead,
# so a destination the operator no longer allows fails its runs with a terminal error rather than
# failing to load.
STORED = "stored"
# Validation context of credentials whose destination has a custom endpoint (an S3-compatible
# service: MinIO, Cloudflare R2, Wasabi, Ceph): the provider's own key formats do not apply.
CUSTOM_ENDPOINT = "custom_endpoint"


def stored(info: ValidationInfo | None) -> bool:
    """Whether the model is being read back from the database (see :data:`STORED`)."""
    return info is not None and bool((info.context or {}).get(STORED))


def custom_endpoint(info: ValidationInfo | None) -> bool:
    """Whether the credentials are for a custom endpoint (see :data:`CUSTOM_ENDPOINT`)."""
    return info is not None and bool((info.context or {}).get(CUSTOM_ENDPOINT))


def check_folder(value: str) -> str:
    """A folder path: no leading or trailing slash (files go to ``<folder>_<export>/…``)."""
    if value != value.strip("/"):
        raise ValueError("folder must not start or end with '/'")
    return value


Folder = Annotated[
    str,
    AfterValidator(check_folder),
    Field(description="Folder path, no leading or trailing slash."),
]


def empty_is_none(value: Any) -> Any:
    """An empty string means "not set" (the provider's own endpoint)."""
    return None if isinstance(value, str) and not value.strip() else value


# An empty endpoint means the provider's own, as if it were left out.
EndpointUrl = Annotated[str | None, BeforeValidator(empty_is_none)]


def check_endpoint(
    url: str, info: ValidationInfo | None, *, field: str, provider: tuple[str, ...]
) -> str:
    """A custom endpoint the operator allows: https on one of ``provider``'s domains, or an
    origin listed in SPILLWAY_ALLOWED_ENDPOINTS (else netpolicy.Refused, a ValueError). Checked
    in the model, so ``force`` cannot skip it; a stored one is judged when its store is built."""
    if stored(info):
        return url
    return netpolicy.current().check_endpoint(url, field=field, provider=provider)
