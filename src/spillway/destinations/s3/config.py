"""S3 destination settings; the ways to authenticate are every AWS kind's."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from spillway.destinations.aws.config import (
    AccessKey,
    AssumeRole,
    CredentialsInput,
    ServiceIdentity,
    check_endpoint_url,
    check_region,
    parse_credentials_csv,
)
from spillway.destinations.fields import EndpointUrl, Folder

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KMS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+$")


class S3Config(BaseModel):
    """Where and how objects are written."""

    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(description="Bucket name, e.g. acme-exports.")
    folder: Folder = ""
    region: str = Field(
        default="us-east-1",
        description="The bucket's AWS region, e.g. eu-west-1; with endpoint_url, the "
        "service's own region name (Cloudflare R2: auto).",
    )
    endpoint_url: EndpointUrl = Field(
        default=None,
        description="Leave empty for AWS. An S3-compatible service must be an origin the "
        "operator lists in SPILLWAY_ALLOWED_ENDPOINTS (or https on an AWS domain).",
    )
    sse: Literal["none", "AES256", "aws:kms"] = Field(
        default="AES256", description="Server-side encryption of every object."
    )
    kms_key_arn: str | None = Field(default=None, description="Key for sse = aws:kms.")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> S3Config:
        check_region(self.region, self.endpoint_url)
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise ValueError(
                f"bucket {self.bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, "
                "digits, '.' and '-')"
            )
        if self.sse == "aws:kms":
            if not self.kms_key_arn:
                raise ValueError("sse aws:kms needs kms_key_arn (the key's ARN)")
            if not _KMS_ARN.match(self.kms_key_arn):
                raise ValueError(
                    "kms_key_arn must be a KMS key ARN like "
                    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-…"
                )
        elif self.kms_key_arn:
            raise ValueError("kms_key_arn is only used with sse aws:kms")
        check_endpoint_url(self.endpoint_url, info)
        return self


__all__ = [
    "AccessKey",
    "AssumeRole",
    "CredentialsInput",
    "S3Config",
    "ServiceIdentity",
    "parse_credentials_csv",
]
