"""GCS objects: one request for a small object, a resumable upload sent chunk by chunk otherwise.

A resumable upload becomes an object only when its last chunk arrives, so an aborted or crashed
write never leaves a visible object, and memory stays at about one chunk per open object.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from typing import Any

import google.api_core.exceptions as api_errors
import google.auth.exceptions as auth_errors
import google_crc32c
import requests
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption
from google.oauth2 import service_account

from spillway import netpolicy
from spillway.destinations import base
from spillway.destinations.base import Check, DestinationError, ObjectStore, StoredObject
from spillway.destinations.gcs.checks import run_checks
from spillway.destinations.gcs.client import (
    CRC32C_TEXT,
    GARBLED_ERRORS,
    GOOGLE_ERRORS,
    SCOPES,
    TRANSIENT_ERRORS,
    as_api_error,
    call_retry,
    call_timeout,
    chunk_size,
    classify,
    detail,
    refusal,
)
from spillway.destinations.gcs.config import Anonymous, GcsConfig, ServiceAccount
from spillway.errors import TransientError
from spillway.secrets import mask


class GcsStore(ObjectStore):
    """A bucket on Google Cloud Storage (or on a storage emulator)."""

    kind = "gcs"

    def __init__(
        self,
        config: GcsConfig,
        credentials: ServiceAccount | Anonymous,
        *,
        refusal: str | None = None,
    ) -> None:
        super().__init__(config.folder)
        self.config = config
        self.credentials = credentials
        # Set when the operator's settings no longer allow this destination: every call fails
        # with it before any connection is made.
        self.refusal = refusal
        self._google_credentials: Any = None
        self._client: Any = None
        self._http: Any = None
        # Seconds between attempts at one part of a resumable upload; the engine retries runs.
        self.retry_waits: tuple[float, ...] = (1.0, 2.0, 4.0)

    # -- clients ------------------------------------------------------------------------------

    @property
    def who(self) -> str:
        """The identity in messages: the service account's e-mail."""
        if isinstance(self.credentials, ServiceAccount):
            return f"service account {self.credentials.key_json.client_email}"
        return "anonymous access"

    @property
    def endpoint(self) -> str:
        """Where requests go."""
        return self.config.endpoint_url or "https://storage.googleapis.com"

    def guard(self) -> None:
        """Raise the refusal, if the operator's settings do not allow this destination."""
        if self.refusal is not None:
            raise DestinationError(self.refusal)

    def google_credentials(self) -> Any:
        """google-auth credentials; an unusable private key raises DestinationError."""
        self.guard()
        if self._google_credentials is None:
            if isinstance(self.credentials, Anonymous):
                self._google_credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            else:
                key = self.credentials.key_json
                info = key.model_dump(exclude_none=True)
                info["private_key"] = key.private_key.get_secret_value()
                load = service_account.Credentials.from_service_account_info
                try:
                    self._google_credentials = load(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
                except (ValueError, TypeError, auth_errors.GoogleAuthError):
                    # ``from None``: the parser's own error may quote parts of the key.
                    raise DestinationError(self.unreadable_key()) from None
        return self._google_credentials

    def unreadable_key(self) -> str:
        """What to do when the key's private_key is not a usable RSA key."""
        assert isinstance(self.credentials, ServiceAccount)
        key = self.credentials.key_json
        key_id = f" (key id {mask(key.private_key_id)})" if key.private_key_id else ""
        return (
            f"the private_key of {self.who}{key_id} cannot be loaded: it is not a valid PEM RSA "
            "private key, so Spillway cannot sign in with it. The key was probably damaged when "
            "it was copied: download a new JSON key (IAM & Admin → Service accounts → Keys → "
            "Add key → JSON) and paste the whole file unchanged"
        )

    @property
    def client(self) -> Any:
        """The storage client (built on first use)."""
        self.guard()
        if self._client is None:
            project = self.config.project
            if project is None and isinstance(self.credentials, ServiceAccount):
                project = self.credentials.key_json.project_id
            options = (
                {"api_endpoint": self.config.endpoint_url} if self.config.endpoint_url else None
            )
            credentials = self.google_credentials()
            try:
                self._client = storage.Client(
                    project=project, credentials=credentials, client_options=options
                )
            except ValueError as exc:  # e.g. a key from another universe than googleapis.com
                raise DestinationError(f"cannot set up the Cloud Storage client: {exc}") from None
        return self._client

    @property
    def http(self) -> Any:
        """An authorised HTTP session for the requests of resumable uploads."""
        if self._http is None:
            self._http = AuthorizedSession(self.google_credentials())  # type: ignore[no-untyped-call]
        return self._http

    def bucket(self) -> Any:
        """The configured bucket (no request)."""
        return self.client.bucket(self.config.bucket)

    def close(self) -> None:
        client, self._client = self._client, None
        http, self._http = self._http, None
        if client is not None:
            client.close()
        if http is not None:
            http.close()

    # -- errors -------------------------------------------------------------------------------

    def explain(self, exc: BaseException) -> str:
        """A sentence a person can act on, for anything a Google call raises."""
        bucket = self.config.bucket
        exc = as_api_error(exc)
        if isinstance(exc, DestinationError):
            return str(exc)
        if isinstance(exc, api_errors.NotFound):
            return (
                f"not found ({detail(exc)}): check that bucket {bucket} exists (the name only, "
                "without gs://) and, for a read, that the object is still there"
            )
        if isinstance(exc, api_errors.Forbidden):
            return (
                f"{self.who} is not allowed to do this on bucket {bucket} ({detail(exc)}). "
                "Grant it roles/storage.objectCreator on the bucket, plus storage.objects.delete "
                "so a retried run can replace a file it already wrote (roles/storage.objectUser "
                "has both), and roles/storage.objectViewer for read-back or cleanup. A new grant "
                "can take a minute to apply"
            )
        if isinstance(exc, api_errors.Unauthorized):
            return (
                f"Google did not accept the credentials of {self.who} ({detail(exc)}): the key "
                "may have been deleted or disabled; create a new JSON key"
            )
        if isinstance(exc, api_errors.TooManyRequests):
            return f"Cloud Storage is throttling requests ({detail(exc)}); Spillway retries later"
        if isinstance(exc, api_errors.ServerError):
            return (
                f"Cloud Storage is temporarily unavailable ({detail(exc)}); Spillway retries later"
            )
        if isinstance(exc, api_errors.GoogleAPICallError):
            return f"Cloud Storage refused the request ({detail(exc)})"
        if isinstance(exc, auth_errors.RefreshError):
            return f"could not get an access token for {self.who}: {refusal(exc)}"
        if isinstance(exc, GARBLED_ERRORS):  # requests' JSONDecodeError, a garbled resource
            return (
                f"{self.endpoint} answered with something that is not a Cloud Storage answer "
                "(not the expected JSON): check endpoint_url, or leave it empty for Google Cloud"
            )
        if isinstance(exc, (auth_errors.TransportError, requests.RequestException)):
            return (
                f"cannot reach {self.endpoint} ({exc.__class__.__name__}): check the network, "
                "proxy and firewall of the Spillway server"
            )
        if isinstance(exc, DataCorruption):
            return (
                "the object Cloud Storage stored does not have the CRC32C checksum of the bytes "
                "Spillway sent; it is written again when the run is retried"
            )
        # Never str(exc): for some errors it holds the answer's body.
        return f"the Cloud Storage call failed ({exc.__class__.__name__})"

    def classify(self, exc: BaseException) -> Exception:
        """Transient (the engine retries later) or terminal (a person must act)."""
        return classify(exc, self.explain(exc))

    # -- objects ------------------------------------------------------------------------------

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> base.ObjectWriter:
        self.guard()
        return GcsWriter(self, key, content_type)

    def read_object(self, key: str) -> bytes:
        try:
            return bytes(
                self.bucket()
                .blob(key)
                .download_as_bytes(retry=call_retry(), timeout=call_timeout())
            )
        except GOOGLE_ERRORS as exc:
            raise self.classify(exc) from exc

    def list_objects(self, prefix: str) -> list[str]:
        try:
            blobs = self.client.list_blobs(
                self.config.bucket, prefix=prefix, retry=call_retry(), timeout=call_timeout()
            )
            return sorted(str(blob.name) for blob in blobs)
        except GOOGLE_ERRORS as exc:
            raise self.classify(exc) from exc

    def delete_object(self, key: str) -> None:
        try:
            self.bucket().blob(key).delete(retry=call_retry(), timeout=call_timeout())
        except api_errors.NotFound:
            return
        except GOOGLE_ERRORS as exc:
            raise self.classify(exc) from exc

    def validate(self, needs: base.Needs) -> list[Check]:
        return run_checks(self, needs)


class GcsWriter(base.ObjectWriter):
    """One object: a single upload when small, else a resumable upload sent part by part.

    The protocol is driven here rather than through the SDK's ``BlobWriter``, which finalises
    the upload when it is garbage-collected (an ``io`` object's ``close`` on deletion) and so
    could publish a truncated object, and whose ``terminate`` does not cancel the session.
    """

    def __init__(self, store: GcsStore, key: str, content_type: str) -> None:
        super().__init__(key)
        self._store = store
        self._content_type = content_type
        self._buffer = base.PartBuffer(chunk_size(store.part_size))
        self._session: str | None = None  # the upload session's URI, once a part is full
        self._offset = 0  # bytes Cloud Storage confirmed
        self._parts = 0
        self._crc32c: Any = google_crc32c.Checksum()  # type: ignore[no-untyped-call]

    def _write(self, chunk: bytes) -> None:
        for part in self._buffer.add(chunk):
            self._send(part, last=False)

    def _commit(self) -> StoredObject:
        rest = self._buffer.rest()
        try:
            if self._session is None:
                self._upload_whole(rest)
            else:
                self._check(self._send(rest, last=True))
        except BaseException:
            self._cancel()
            raise
        return StoredObject(self.key, self.size, {"parts": self._parts})

    def _abort(self) -> None:
        self._buffer.rest()
        self._cancel()

    def _upload_whole(self, data: bytes) -> None:
        try:
            self._store.bucket().blob(self.key).upload_from_string(
                data,
                content_type=self._content_type,
                checksum="crc32c",  # the SDK compares it with the stored object's
                retry=call_retry(),
                timeout=call_timeout(),
            )
        except GOOGLE_ERRORS as exc:
            raise self._store.classify(exc) from exc
        self._parts = 1

    def _start_session(self) -> str:
        if self._session is None:
            blob = self._store.bucket().blob(self.key)
            try:
                session = blob.create_resumable_upload_session(
                    content_type=self._content_type,
                    checksum=None,
                    retry=call_retry(),
                    timeout=call_timeout(),
                )
            except GOOGLE_ERRORS as exc:
                raise self._store.classify(exc) from exc
            # The session's URL comes from the server's answer; the authorised session sends
            # the access token there, so it must be as allowed as the endpoint itself.
            try:
                netpolicy.current().check_endpoint(
                    str(session), field="upload session URL", provider=netpolicy.GCS_DOMAINS
                )
            except netpolicy.Refused as exc:
                raise DestinationError(
                    f"{self._store.endpoint} handed out an upload session elsewhere: {exc}"
                ) from None
            self._session = str(session)
        return self._session

    def _send(self, data: bytes, *, last: bool) -> dict[str, Any]:
        """Send one part (a multiple of 256 KiB unless ``last``); after a transient failure, ask
        the session how much arrived and send the rest. Returns the object once ``last`` is in."""
        session = self._start_session()
        self._crc32c.update(data)
        if data:
            self._parts += 1
        start, end = self._offset, self._offset + len(data)
        headers = {}
        if last:
            # Cloud Storage refuses to finish an upload whose bytes do not have this CRC32C.
            headers["X-Goog-Hash"] = f"crc32c={self._crc32c_b64()}"
        waits = iter(self._store.retry_waits)
        while True:
            before = self._offset
            body = data[before - start :]
            if body:
                headers["Content-Range"] = f"bytes {before}-{end - 1}/{end if last else '*'}"
            else:
                headers["Content-Range"] = f"bytes */{end}"
            failure: BaseException
            try:
                done = self._exchange(session, body, headers)
            except TRANSIENT_ERRORS as exc:
                failure = exc
            except GOOGLE_ERRORS as exc:
                raise self._store.classify(exc) from exc
            else:
                if done is not None and last:
                    return done
                if done is not None or self._offset > end:
                    raise TransientError(
                        f"the upload session of {self.key} is out of step with Spillway (Cloud "
                        "Storage reports bytes not sent yet); the run starts the file again"
                    )
                if self._offset == end and not last:
                    return {}
                if self._offset > before:
                    continue  # some of the body arrived: send the rest straight away
                failure = TransientError("Cloud Storage accepted none of the bytes sent")
            wait = next(waits, None)
            if wait is None:
                raise self._store.classify(failure) from failure
            time.sleep(wait)
            try:
                done = self._exchange(session, b"", {"Content-Range": "bytes */*"})  # what arrived?
            except TRANSIENT_ERRORS:
                continue
            except GOOGLE_ERRORS as exc:  # e.g. 404: the session expired or was cancelled
                raise self._store.classify(exc) from exc
            if done is not None and last:
                return done

    def _exchange(
        self, session: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, Any] | None:
        """One request to the session: the stored object's resource once it is complete."""
        response = self._store.http.put(session, data=body, headers=headers, timeout=call_timeout())
        if response.status_code == 308:  # incomplete; Range says what Cloud Storage holds
            confirmed = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("Range", ""))
            self._offset = int(confirmed.group(1)) + 1 if confirmed else 0
            return None
        if response.status_code in (200, 201):
            resource = response.json()  # a ValueError when it is not JSON: explained as such
            if not isinstance(resource, dict):
                raise DestinationError(self._store.explain(ValueError()))
            return resource
        raise api_errors.from_http_response(response)  # type: ignore[no-untyped-call]

    def _crc32c_b64(self) -> str:
        return base64.b64encode(self._crc32c.digest()).decode()

    def _check(self, resource: dict[str, Any]) -> None:
        """The stored object must have the size and CRC32C of the bytes Spillway sent."""
        sent = self._crc32c_b64()
        size, crc32c = resource.get("size"), resource.get("crc32c")
        try:
            stored_size = None if size is None else int(size)
        except (TypeError, ValueError):
            stored_size = -1
        if (stored_size is not None and stored_size != self.size) or (crc32c and crc32c != sent):
            # The server's own values are shown only when they have the expected shape.
            shown_size = stored_size if stored_size is not None and stored_size >= 0 else "?"
            shown_crc = crc32c if isinstance(crc32c, str) and CRC32C_TEXT.match(crc32c) else "?"
            raise TransientError(
                f"Cloud Storage stored {self.key} with {shown_size} bytes and CRC32C "
                f"{shown_crc}, but Spillway sent {self.size} bytes with CRC32C {sent}; it is "
                "written again when the run is retried"
            )

    def _cancel(self) -> None:
        """End the upload session so it never becomes an object (best effort: an unfinished
        session is invisible anyway, and Cloud Storage drops it after a week)."""
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(*GOOGLE_ERRORS):
                self._store.http.delete(session, timeout=10)  # answered with 499 when cancelled
