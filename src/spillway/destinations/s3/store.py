"""S3 objects: single PUT for small objects, multipart uploads with bounded memory otherwise.

Every write carries a CRC32 checksum (buckets with Object Lock refuse writes without one) and
the configured server-side encryption.
"""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
import botocore.exceptions
from botocore.parsers import ResponseParserError

from spillway.destinations.base import (
    Check,
    Needs,
    ObjectStore,
    ObjectWriter,
    PartBuffer,
    StoredObject,
)
from spillway.destinations.s3.checks import run_checks
from spillway.destinations.s3.client import auth_for, classify, s3_client
from spillway.destinations.s3.config import S3Config

ClientError = botocore.exceptions.ClientError
# The transport's errors and answers that are not S3's (ResponseParserError among them).
BotoError = (botocore.exceptions.BotoCoreError, ResponseParserError)


class S3Writer(ObjectWriter):
    """One object: buffered until a part is full, then a multipart upload."""

    def __init__(self, store: S3Store, key: str, content_type: str) -> None:
        super().__init__(key)
        self._store = store
        self._content_type = content_type
        self._buffer = PartBuffer(store.part_size)
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, chunk: bytes) -> None:
        for part in self._buffer.add(chunk):
            self._upload_part(part)

    def _upload_part(self, data: bytes) -> None:
        store = self._store
        try:
            if self._upload_id is None:
                started = store.client.create_multipart_upload(
                    Bucket=store.config.bucket,
                    Key=self.key,
                    ContentType=self._content_type,
                    ChecksumAlgorithm="CRC32",
                    **store.encryption_args(),
                )
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            response = store.client.upload_part(
                Bucket=store.config.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="CRC32",
            )
        except (ClientError, *BotoError) as exc:
            raise classify(exc, store.config) from exc
        self._parts.append(
            {
                "PartNumber": number,
                "ETag": response["ETag"],
                "ChecksumCRC32": response["ChecksumCRC32"],
            }
        )

    def _commit(self) -> StoredObject:
        store = self._store
        rest = self._buffer.rest()
        try:
            if self._upload_id is None:
                response = store.client.put_object(
                    Bucket=store.config.bucket,
                    Key=self.key,
                    Body=rest,
                    ContentType=self._content_type,
                    ChecksumAlgorithm="CRC32",
                    **store.encryption_args(),
                )
                parts = 1
            else:
                if rest:
                    self._upload_part(rest)
                response = store.client.complete_multipart_upload(
                    Bucket=store.config.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                parts = len(self._parts)
        except (ClientError, *BotoError) as exc:
            self._abort()
            raise classify(exc, store.config) from exc
        self._abort_stale_uploads()
        details = {
            "parts": parts,
            "etag": response.get("ETag"),
            "sse": response.get("ServerSideEncryption"),
            "kms_key_id": response.get("SSEKMSKeyId"),
        }
        stored = StoredObject(self.key, self.size, details)
        store.last_commit = stored
        return stored

    def _abort_stale_uploads(self) -> None:
        """Abort uploads to this key that a killed attempt left open (they cost storage).

        The key now holds the committed object, so any other open upload to it is a leftover:
        leases make sure no live worker writes the same key. Best effort: without the
        ``s3:ListBucketMultipartUploads`` / ``s3:AbortMultipartUpload`` permissions a
        lifecycle rule for incomplete uploads is left to do it.
        """
        store = self._store
        with contextlib.suppress(ClientError, *BotoError):
            listed = store.client.list_multipart_uploads(
                Bucket=store.config.bucket, Prefix=self.key
            )
            for upload in listed.get("Uploads", []):
                if upload["Key"] == self.key:
                    store.client.abort_multipart_upload(
                        Bucket=store.config.bucket, Key=self.key, UploadId=upload["UploadId"]
                    )

    def _abort(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            # On failure a lifecycle rule for incomplete uploads removes it; nothing is visible.
            with contextlib.suppress(ClientError, *BotoError):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.config.bucket, Key=self.key, UploadId=upload_id
                )


class S3Store(ObjectStore):
    """A bucket on S3 or an S3-compatible service."""

    kind = "s3"

    def __init__(
        self,
        config: S3Config,
        credentials: Any,
        external_id: str,
        *,
        refusal: str | None = None,
    ) -> None:
        super().__init__(config.folder)
        self.config = config
        self.credentials = credentials
        self.external_id = external_id
        self.auth = auth_for(config, credentials, external_id, refusal)
        self._client: Any = None
        self.last_commit: StoredObject | None = None

    @property
    def session(self) -> boto3.Session:
        """The boto3 session (roles are assumed on first use)."""
        return self.auth.session

    @property
    def client(self) -> Any:
        """The S3 client."""
        if self._client is None:
            self._client = s3_client(self.auth)
        return self._client

    def encryption_args(self) -> dict[str, str]:
        """The SSE parameters every write carries."""
        if self.config.sse == "AES256":
            return {"ServerSideEncryption": "AES256"}
        if self.config.sse == "aws:kms":
            assert self.config.kms_key_arn is not None
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.config.kms_key_arn}
        return {}

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        return S3Writer(self, key, content_type)

    def read_object(self, key: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.config.bucket, Key=key)["Body"]
            return bytes(body.read())
        except (ClientError, *BotoError) as exc:
            raise classify(exc, self.config) from exc

    def list_objects(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (ClientError, *BotoError) as exc:
            raise classify(exc, self.config) from exc
        return sorted(keys)

    def delete_object(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.config.bucket, Key=key)
        except (ClientError, *BotoError) as exc:
            raise classify(exc, self.config) from exc

    def validate(self, needs: Needs) -> list[Check]:
        return run_checks(self, needs)
