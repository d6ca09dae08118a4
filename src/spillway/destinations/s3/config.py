"""S3 destination settings and the four ways to authenticate (SPEC R6, R11)."""

from __future__ import annotations

import csv
import io
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_KMS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+$")


class S3Config(BaseModel):
    """Where and how objects are written."""

    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(description="Bucket name, e.g. acme-exports.")
    folder: str = Field(default="", description="Folder path, no leading or trailing slash.")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    endpoint_url: str | None = Field(
        default=None, description="For S3-compatible services; leave empty for AWS."
    )
    sse: Literal["none", "AES256", "aws:kms"] = Field(
        default="AES256", description="Server-side encryption of every object."
    )
    kms_key_arn: str | None = Field(default=None, description="Key for sse = aws:kms.")

    @model_validator(mode="after")
    def _check(self) -> S3Config:
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise ValueError(
                f"bucket {self.bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, "
                "digits, '.' and '-')"
            )
        if self.folder != self.folder.strip("/"):
            raise ValueError("folder must not start or end with '/'")
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
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise ValueError("endpoint_url must start with http:// or https://")
        return self


class AccessKey(BaseModel):
    """A long-lived access key of an IAM user (or temporary keys with a session token)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["access_key"] = "access_key"
    access_key_id: str = Field(pattern=r"^[A-Z0-9]{16,128}$")
    secret_access_key: SecretStr = Field(min_length=16)
    session_token: SecretStr | None = None
    # Set when the key came from the console's credentials CSV, for the record.
    source: Literal["typed", "credentials_csv"] = "typed"


class AssumeRole(BaseModel):
    """A role in the customer's account, assumed with the project's External ID."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["role"] = "role"
    role_arn: str

    @model_validator(mode="after")
    def _check(self) -> AssumeRole:
        if not _ROLE_ARN.match(self.role_arn):
            raise ValueError(
                "role_arn must look like arn:aws:iam::111122223333:role/SpillwayExport"
            )
        return self


class ServiceIdentity(BaseModel):
    """Spillway's own AWS identity (default credential chain), granted by a bucket policy."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["service_identity"] = "service_identity"


S3Credentials = Annotated[AccessKey | AssumeRole | ServiceIdentity, Field(discriminator="mode")]


class CredentialsInput(BaseModel):
    """What the API accepts: one of the modes, or the console's credentials CSV."""

    model_config = ConfigDict(extra="forbid")
    value: S3Credentials

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data:
            if data.get("mode") == "credentials_csv":
                data = parse_credentials_csv(data.get("csv"))
            return {"value": data}
        return data


# Header rows of the CSV files the AWS console offers for download: the access key page,
# and the "new user" page (which adds user name, password and console link).
_CSV_HEADERS = (
    ["Access key ID", "Secret access key"],
    ["User name", "Password", "Access key ID", "Secret access key", "Console login link"],
)


def parse_credentials_csv(text: Any) -> dict[str, Any]:
    """Read the access key from the AWS console's credentials CSV, or explain what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("credentials_csv needs 'csv': the text of the downloaded .csv file")
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(row)]
    if not rows:
        raise ValueError("the credentials CSV is empty")
    header = [cell.strip() for cell in rows[0]]
    if header not in _CSV_HEADERS:
        raise ValueError(
            "this is not the AWS console's credentials CSV: its first row must be "
            "'Access key ID,Secret access key' (or the new-user file's 'User name,Password,"
            f"Access key ID,Secret access key,Console login link'), not {','.join(header)!r}"
        )
    if len(rows) != 2 or len(rows[1]) != len(header):
        raise ValueError(
            "the credentials CSV must hold exactly one access key row under its header"
        )
    row = dict(zip(header, (cell.strip() for cell in rows[1]), strict=True))
    key_id, secret = row["Access key ID"], row["Secret access key"]
    if not re.fullmatch(r"[A-Z0-9]{16,128}", key_id) or len(secret) < 16:
        raise ValueError("the credentials CSV's access key row does not hold a valid key")
    return {
        "mode": "access_key",
        "access_key_id": key_id,
        "secret_access_key": secret,
        "source": "credentials_csv",
    }
