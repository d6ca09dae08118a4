"""The Connect and Manage forms of each destination kind: their fields, help, and how a
submitted form becomes the ``config`` / ``credentials`` / ``features`` the services take.

A field is named ``<group>.<key>`` (``config.bucket``, ``credentials.secret_access_key``,
``features.read_back``); the group says where its value goes. Secret fields are never
rendered back into a page (see ``forms.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spillway.errors import Invalid


@dataclass(frozen=True, slots=True)
class Field:
    """One input of a destination form."""

    name: str  # "<group>.<key>"
    label: str
    help: str = ""
    widget: str = "text"  # text | password | select | textarea | checkbox
    options: tuple[tuple[str, str], ...] = ()  # (value, label) for selects
    default: str = ""
    required: bool = False
    secret: bool = False  # never rendered back; kept sealed between Validate and Create
    modes: tuple[str, ...] = ()  # shown only for these credential modes (empty: always)
    advanced: bool = False  # inside "Advanced settings"
    placeholder: str = ""

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def dom_id(self) -> str:
        return "f-" + self.name.replace(".", "-").replace("_", "-")


@dataclass(frozen=True, slots=True)
class KindForm:
    """What the Connect page shows for one kind."""

    kind: str
    title: str
    blurb: str
    fields: tuple[Field, ...]
    modes: tuple[tuple[str, str], ...] = ()  # credential modes (value, label); empty: none
    policy: bool = False  # show the least-privilege IAM policy (S3)
    external_id: bool = False  # show the project's External ID (AWS roles)
    updatable: tuple[str, ...] = ()  # config keys the Manage page may change
    extra: dict[str, str] = field(default_factory=dict)

    def visible(self, *, group: str | None = None) -> list[Field]:
        """The fields of a group, in order."""
        return [f for f in self.fields if group is None or f.group == group]


_REGION_HELP = (
    "In the AWS console, open S3 > Buckets: the region is in the bucket's row (e.g. "
    "“Europe (Ireland) eu-west-1”: type eu-west-1)."
)
_FOLDER_HELP = (
    "Optional. A folder inside the bucket, without a leading or trailing slash (e.g. "
    "exports or team/exports). Files go to <folder>_<export name>/…"
)
_ENDPOINT_HELP = (
    "Leave empty for the provider. Any other endpoint must be one the operator allowed "
    "(SPILLWAY_ALLOWED_ENDPOINTS)."
)
_AWS_MODES = (
    ("access_key", "Access key (IAM user)"),
    ("credentials_csv", "Upload the access key CSV"),
    ("role", "IAM role (assumed with your External ID)"),
)
_AWS_CREDENTIALS = (
    Field(
        "credentials.access_key_id",
        "Access key ID",
        "IAM > Users > your user > Security credentials > Access keys. Starts with AKIA.",
        modes=("access_key",),
        placeholder="AKIA…",
    ),
    Field(
        "credentials.secret_access_key",
        "Secret access key",
        "Shown once by AWS when the key is created (or in the downloaded .csv file).",
        widget="password",
        secret=True,
        modes=("access_key",),
    ),
    Field(
        "credentials.csv",
        "Access key CSV",
        "Choose the .csv file AWS offered when the key was created (or paste its text). "
        "Its first row is “Access key ID,Secret access key”.",
        widget="textarea",
        secret=True,
        modes=("credentials_csv",),
    ),
    Field(
        "credentials.role_arn",
        "Role ARN",
        "IAM > Roles > your role: the ARN at the top. Its trust policy must require the "
        "External ID shown below.",
        modes=("role",),
        placeholder="arn:aws:iam::111122223333:role/SpillwayExport",
    ),
)
_FEATURES = (
    Field(
        "features.read_back",
        "Read files back after writing them",
        "Needs s3:GetObject. Off: Spillway only writes.",
        widget="checkbox",
    ),
    Field(
        "features.cleanup",
        "Clean up test files and abandoned uploads",
        "Needs s3:ListBucket and s3:DeleteObject.",
        widget="checkbox",
    ),
)

FORMS: dict[str, KindForm] = {
    "s3": KindForm(
        "s3",
        "Amazon S3",
        "Files in an S3 bucket: JSON lines, CSV or Parquet, every 15 minutes, daily or weekly.",
        (
            Field(
                "config.bucket",
                "Bucket name",
                "S3 > Buckets: the name in the list (or the part after arn:aws:s3::: in the "
                "bucket's Properties tab). Without s3://.",
                required=True,
                placeholder="acme-exports",
            ),
            Field("config.folder", "Folder path", _FOLDER_HELP, placeholder="exports"),
            Field(
                "config.region",
                "Bucket region",
                _REGION_HELP,
                default="us-east-1",
                required=True,
            ),
            Field(
                "config.sse",
                "Encryption at rest",
                "How S3 encrypts each file. AES256 (S3-managed keys) suits most buckets.",
                widget="select",
                options=(
                    ("AES256", "S3-managed keys (AES256)"),
                    ("aws:kms", "AWS KMS key"),
                    ("none", "Bucket default"),
                ),
                default="AES256",
            ),
            Field(
                "config.kms_key_arn",
                "KMS key ARN",
                "Only with AWS KMS: KMS > Customer managed keys > your key: its ARN.",
                advanced=True,
                placeholder="arn:aws:kms:us-east-1:111122223333:key/…",
            ),
            Field("config.endpoint_url", "Custom endpoint", _ENDPOINT_HELP, advanced=True),
            *_AWS_CREDENTIALS,
            *_FEATURES,
        ),
        modes=_AWS_MODES,
        policy=True,
        external_id=True,
        updatable=("bucket", "folder", "region"),
    ),
    "gcs": KindForm(
        "gcs",
        "Google Cloud Storage",
        "Files in a GCS bucket, written with a service account's key.",
        (
            Field(
                "config.bucket",
                "Bucket name",
                "Cloud Storage > Buckets: the name, without gs://.",
                required=True,
            ),
            Field("config.folder", "Folder path", _FOLDER_HELP),
            Field(
                "config.project",
                "Project ID",
                "Optional: by default the service account key's project.",
                advanced=True,
            ),
            Field("config.endpoint_url", "Custom endpoint", _ENDPOINT_HELP, advanced=True),
            Field(
                "credentials.key_json",
                "Service account key (JSON)",
                "IAM > Service accounts > your account > Keys > Add key > JSON: paste the whole "
                "downloaded file. The account needs Storage Object Creator on the bucket.",
                widget="textarea",
                secret=True,
                required=True,
            ),
        ),
        updatable=("bucket", "folder"),
    ),
    "azure_blob": KindForm(
        "azure_blob",
        "Azure Blob Storage",
        "Files in a blob container of a storage account.",
        (
            Field(
                "config.container",
                "Container name",
                "Storage account > Data storage > Containers: the name.",
                required=True,
            ),
            Field("config.folder", "Folder path", _FOLDER_HELP),
            Field(
                "config.account_url",
                "Account URL",
                "Leave empty for https://<account>.blob.core.windows.net.",
                advanced=True,
            ),
            Field(
                "credentials.connection_string",
                "Connection string",
                "Storage account > Security + networking > Access keys > Connection string.",
                widget="password",
                secret=True,
                modes=("connection_string",),
            ),
            Field(
                "credentials.account_name",
                "Storage account name",
                "The account's name, as in <name>.blob.core.windows.net.",
                modes=("account_key", "sas_token"),
            ),
            Field(
                "credentials.account_key",
                "Account key",
                "Storage account > Access keys > key1 or key2.",
                widget="password",
                secret=True,
                modes=("account_key",),
            ),
            Field(
                "credentials.sas_token",
                "SAS token",
                "A container SAS with Write and Create permissions.",
                widget="password",
                secret=True,
                modes=("sas_token",),
            ),
        ),
        modes=(
            ("connection_string", "Connection string"),
            ("account_key", "Account name and key"),
            ("sas_token", "SAS token"),
        ),
        updatable=("container", "folder"),
    ),
    "kinesis": KindForm(
        "kinesis",
        "Amazon Kinesis Data Streams",
        "Each event as a record on a Kinesis data stream, as it arrives.",
        (
            Field(
                "config.stream",
                "Stream name or ARN",
                "Kinesis > Data streams: the stream's name (or its ARN).",
                required=True,
            ),
            Field(
                "config.region",
                "Region",
                "The stream's region, e.g. us-east-1.",
                "text",
                (),
                "us-east-1",
            ),
            Field("config.endpoint_url", "Custom endpoint", _ENDPOINT_HELP, advanced=True),
            *_AWS_CREDENTIALS,
        ),
        modes=_AWS_MODES,
        external_id=True,
        updatable=("stream", "region"),
    ),
    "firehose": KindForm(
        "firehose",
        "Amazon Data Firehose",
        "Each event as a record on a Firehose delivery stream, as it arrives.",
        (
            Field(
                "config.delivery_stream",
                "Delivery stream name or ARN",
                "Amazon Data Firehose > Firehose streams: the name.",
                required=True,
            ),
            Field(
                "config.region",
                "Region",
                "The stream's region, e.g. us-east-1.",
                "text",
                (),
                "us-east-1",
            ),
            Field("config.endpoint_url", "Custom endpoint", _ENDPOINT_HELP, advanced=True),
            *_AWS_CREDENTIALS,
        ),
        modes=_AWS_MODES,
        external_id=True,
        updatable=("delivery_stream", "region"),
    ),
    "local": KindForm(
        "local",
        "Folder on this server",
        "Files in a folder of the server's disk, inside this project's own folder.",
        (
            Field(
                "config.path",
                "Folder",
                "A folder inside this project's folder on the server (e.g. exports); empty for "
                "that folder itself. Relative, without '..'.",
            ),
        ),
        updatable=("path", "folder"),
    ),
}

_MODE_LABELS = {
    "access_key": "Access key",
    "role": "IAM role",
    "service_identity": "Spillway's own AWS identity",
    "service_account": "Service account key",
    "anonymous": "No credentials (emulator)",
    "connection_string": "Connection string",
    "account_key": "Account key",
    "sas_token": "SAS token",
    "none": "None needed",
}


def mode_label(credentials: Mapping[str, Any]) -> str:
    """How a stored destination signs in, in words (from its masked credentials)."""
    mode = str(credentials.get("mode", ""))
    return _MODE_LABELS.get(mode, mode or "—")


ORDER = ("s3", "gcs", "azure_blob", "kinesis", "firehose", "local")


def offered(local_allowed: bool) -> list[KindForm]:
    """The tiles of the Connect page: a local folder only when the operator opened one."""
    return [FORMS[k] for k in ORDER if k != "local" or local_allowed]


def mode_of(form: KindForm, values: Mapping[str, str]) -> str:
    """The credential mode chosen (the first one by default)."""
    chosen = values.get("credentials.mode", "")
    known = [m for m, _ in form.modes]
    return chosen if chosen in known else (known[0] if known else "none")


def to_body(
    form: KindForm, values: Mapping[str, str], *, with_credentials: bool = True
) -> dict[str, Any]:
    """The service body for submitted values: empty optional fields left out, so the kind's
    defaults apply. Raises :class:`Invalid` naming the field for text that cannot be read."""
    config: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    features: dict[str, bool] = {}
    mode = mode_of(form, values)
    for f in form.fields:
        raw = values.get(f.name, "")
        if f.group == "features":
            features[f.key] = raw in ("on", "true", "1")
            continue
        if f.modes and mode not in f.modes:
            continue
        value = raw if f.secret else raw.strip()
        if value == "":
            continue
        if f.group == "config":
            config[f.key] = value
        else:
            credentials[f.key] = value
    if form.kind == "gcs" and "key_json" in credentials:
        try:
            credentials["key_json"] = json.loads(credentials["key_json"])
        except json.JSONDecodeError as exc:
            raise Invalid(
                "credentials.key_json",
                f"is not valid JSON ({exc.msg} at line {exc.lineno}): paste the whole file",
            ) from None
        credentials["mode"] = "service_account"
    elif form.kind == "local":
        credentials = {"mode": "none"}
    elif form.modes:
        credentials["mode"] = mode
    body: dict[str, Any] = {"kind": form.kind, "config": config, "features": features}
    if with_credentials:
        body["credentials"] = credentials
    return body


def s3_policy(bucket: str, folder: str, features: Mapping[str, bool], kms_key_arn: str = "") -> str:
    """The least-privilege IAM policy for an S3 destination with these features."""
    bucket = bucket or "YOUR-BUCKET"
    objects = f"arn:aws:s3:::{bucket}/{folder + '_' if folder else ''}*"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    if features.get("read_back"):
        actions.append("s3:GetObject")
    if features.get("cleanup"):
        actions.append("s3:DeleteObject")
    statements: list[dict[str, Any]] = [
        {"Sid": "SpillwayWriteFiles", "Effect": "Allow", "Action": actions, "Resource": objects}
    ]
    if features.get("cleanup"):
        statements.append(
            {
                "Sid": "SpillwayListForCleanup",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": f"arn:aws:s3:::{bucket}",
            }
        )
    if kms_key_arn:
        statements.append(
            {
                "Sid": "SpillwayEncrypt",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": kms_key_arn,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)
