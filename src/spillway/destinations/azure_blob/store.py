"""Azure block blobs: one Put Blob for a small object, staged blocks and a block list otherwise.

Every block and single upload carries a transactional MD5 (Azure refuses bytes that arrive
damaged), and every blob records the MD5 of its whole content for readers to check. An aborted
writer never commits its block list: nothing becomes visible, and Azure discards the
uncommitted blocks within a week.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings

from spillway.destinations.azure_blob.checks import run_checks
from spillway.destinations.azure_blob.client import (
    AUTH_CODES,
    CLIENT_OPTIONS,
    GARBLED_ERRORS,
    MAX_BLOCKS,
    SDK_ERRORS,
    SIG_PARAM,
    TRANSIENT_CODES,
    TRANSIENT_STATUS,
    classify,
    error_code,
    needed_permission,
    network_reason,
    status_code,
    status_text,
)
from spillway.destinations.azure_blob.config import AzureBlobConfig, Target
from spillway.destinations.base import (
    DEFAULT_PART_SIZE,
    VALIDATION_READ_TIMEOUT,
    Check,
    DestinationError,
    Needs,
    ObjectStore,
    ObjectWriter,
    PartBuffer,
    StoredObject,
    is_validating,
)
from spillway.errors import TransientError


class AzureBlobWriter(ObjectWriter):
    """One blob: buffered until a block is full, then staged; committed as a block list."""

    def __init__(self, store: AzureBlobStore, key: str, content_type: str) -> None:
        super().__init__(key)
        self._store = store
        self._blob = store.container.get_blob_client(key)
        self._content_type = content_type
        self._buffer = PartBuffer(store.part_size)
        # Block ids must have one length within a blob; a random prefix keeps this writer's
        # blocks apart from those an earlier, aborted writer left under the same name.
        self._prefix = secrets.token_hex(8)
        self._blocks: list[str] = []
        self._md5 = hashlib.md5(usedforsecurity=False)

    def _write(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        for part in self._buffer.add(chunk):
            self._stage(part)

    def _stage(self, data: bytes) -> None:
        if len(self._blocks) >= MAX_BLOCKS:
            raise DestinationError(
                f"{self.key} would need more than {MAX_BLOCKS} blocks of {self._store.part_size} "
                "bytes; Azure allows no more per blob"
            )
        block_id = f"{self._prefix}-{len(self._blocks):06d}"
        try:
            self._blob.stage_block(block_id, data, length=len(data), validate_content=True)
        except SDK_ERRORS as exc:
            raise self._store.classify(exc) from None
        self._blocks.append(block_id)

    def _commit(self) -> StoredObject:
        rest = self._buffer.rest()
        digest = self._md5.digest()
        settings = ContentSettings(content_type=self._content_type, content_md5=bytearray(digest))
        try:
            if not self._blocks:
                response = self._blob.upload_blob(
                    rest,
                    length=len(rest),
                    overwrite=True,
                    validate_content=True,
                    content_settings=settings,
                )
            else:
                if rest:
                    self._stage(rest)
                blocks = [BlobBlock(block_id) for block_id in self._blocks]
                response = self._blob.commit_block_list(blocks, content_settings=settings)
        except SDK_ERRORS as exc:
            raise self._store.classify(exc) from None
        details = {
            "parts": max(len(self._blocks), 1),
            "etag": response.get("etag"),
            "content_md5": base64.b64encode(digest).decode(),
        }
        return StoredObject(self.key, self.size, details)

    def _abort(self) -> None:
        # Staged blocks are invisible until a block list names them; none ever will.
        self._blocks = []
        self._buffer.rest()


class AzureBlobStore(ObjectStore):
    """A container in an Azure Storage account (or Azurite)."""

    kind = "azure_blob"

    def __init__(
        self,
        config: AzureBlobConfig,
        target: Target,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        refusal: str | None = None,
    ) -> None:
        super().__init__(config.folder, part_size=part_size)
        self.config = config
        self.target = target
        # Set when the operator's settings no longer allow this destination: every call fails
        # with it before any connection is made.
        self.refusal = refusal
        self.client_options = dict(CLIENT_OPTIONS)
        if is_validating():  # answer within seconds; runs keep the patient settings
            self.client_options.update(retry_total=0, read_timeout=VALIDATION_READ_TIMEOUT)
        self._container: ContainerClient | None = None

    @property
    def container(self) -> ContainerClient:
        """The SDK's client of the container (created on first use)."""
        if self.refusal is not None:
            raise DestinationError(self.refusal)
        if self._container is None:
            target = self.target
            credential: AzureNamedKeyCredential | AzureSasCredential
            if target.account_key is not None:
                credential = AzureNamedKeyCredential(
                    target.account_name or "", target.account_key.get_secret_value()
                )
            elif target.sas_token is not None:
                credential = AzureSasCredential(target.sas_token.get_secret_value())
            else:  # resolve() always sets one of the two
                raise DestinationError("no account key or SAS token to authenticate with")
            self._container = ContainerClient(
                target.account_url,
                self.config.container,
                credential=credential,
                **self.client_options,
            )
        return self._container

    @property
    def account(self) -> str:
        """The storage account, for messages."""
        return self.target.account_name or self.target.account_url

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        return AzureBlobWriter(self, key, content_type)

    def read_object(self, key: str) -> bytes:
        try:
            return self.container.download_blob(key).readall()
        except SDK_ERRORS as exc:
            raise self.classify(exc, key) from None

    def list_objects(self, prefix: str) -> list[str]:
        try:
            return sorted(self.container.list_blob_names(name_starts_with=prefix or None))
        except SDK_ERRORS as exc:
            raise self.classify(exc) from None

    def delete_object(self, key: str) -> None:
        try:
            self.container.delete_blob(key, delete_snapshots="include")
        except ResourceNotFoundError as exc:
            if error_code(exc) != "BlobNotFound":
                raise self.classify(exc, key) from None
        except SDK_ERRORS as exc:
            raise self.classify(exc, key) from None

    def validate(self, needs: Needs) -> list[Check]:
        return run_checks(self, needs)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def classify(self, exc: BaseException, key: str | None = None) -> Exception:
        """An SDK error as transient (retry later) or terminal (a person must act)."""
        return classify(exc, self.explain(exc, key))

    def explain(self, exc: BaseException, key: str | None = None) -> str:
        """A sentence a person can act on, for any error the SDK raises; never a secret."""
        return self._scrub(self._explain(exc, key))

    def _explain(self, exc: BaseException, key: str | None) -> str:
        if isinstance(exc, DestinationError | TransientError):
            return str(exc)  # already explained (by a writer)
        code, status = error_code(exc), status_code(exc)
        container, who = self.config.container, self.target.who
        if isinstance(exc, GARBLED_ERRORS) or 200 <= status < 300:
            return (
                f"{self.target.account_url} answered with something that is not an Azure Blob "
                "Storage answer: check account_url (or the endpoint the connection string "
                "names); leave it empty for Azure's own endpoint"
            )
        if isinstance(exc, ServiceRequestError):
            return (
                f"cannot reach {self.target.account_url} ({network_reason(exc)}): check the "
                "account name (or account_url) and that DNS, proxy and firewall let Spillway "
                "connect"
            )
        if isinstance(exc, ServiceResponseError):
            return (
                f"the connection to {self.target.account_url} broke before Azure answered "
                f"({network_reason(exc)}); Spillway retries"
            )
        if code == "ContainerNotFound":
            return (
                f"container {container} does not exist in storage account {self.account} "
                "(ContainerNotFound): create it, or fix the container name"
            )
        if code == "BlobNotFound":
            blob = f"blob {key}" if key else "the blob"
            return f"{blob} does not exist in container {container} (BlobNotFound)"
        if code == "KeyBasedAuthenticationNotPermitted":
            return (
                f"storage account {self.account} does not allow account-key authorization, which "
                f"{who} relies on (KeyBasedAuthenticationNotPermitted): enable 'Allow storage "
                "account key access' under Settings > Configuration"
            )
        if code in AUTH_CODES or isinstance(exc, ClientAuthenticationError):
            return self._auth_failure(exc, code or "AuthenticationFailed")
        if code == "AuthorizationPermissionMismatch":
            return (
                f"{who} does not allow this operation (AuthorizationPermissionMismatch): it "
                f"needs the {needed_permission(exc)} permission on container {container}"
            )
        if code == "AuthorizationSourceIPMismatch":
            return (
                f"{who} only allows some IP addresses, and not Spillway's "
                "(AuthorizationSourceIPMismatch): widen or remove its allowed IP range"
            )
        if code == "AuthorizationProtocolMismatch":
            return (
                f"{who} only allows HTTPS (AuthorizationProtocolMismatch): use an https:// "
                "account_url"
            )
        if code in ("AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch"):
            return (
                f"{who} is an account SAS that does not cover blob containers and objects "
                f"({code}): generate it for the Blob service with resource types Container and "
                "Object"
            )
        if code == "AccountIsDisabled":
            return f"storage account {self.account} is disabled (AccountIsDisabled)"
        # Azure's message is not repeated: from a server that is not Azure it is whatever
        # that server answered. The error code and status say what happened.
        if code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
            return (
                f"Azure could not serve the request ({status_text(code, status)}); Spillway retries"
            )
        if code or status:
            return f"Azure refused the request ({status_text(code, status)})"
        return f"the Azure call failed ({exc.__class__.__name__})"

    def _auth_failure(self, exc: BaseException, code: str) -> str:
        who = self.target.who
        text = str(getattr(exc, "message", "") or exc).lower()
        if self.target.sas_token is not None and (
            "expir" in text or "time frame" in text or "not valid" in text
        ):
            return (
                f"{who} has expired or is not valid yet ({code}): generate a new one and rotate "
                "this destination's credentials"
            )
        if self.target.sas_token is not None:
            hint = (
                f"check it was copied whole, is signed with a current account key, was made for "
                f"account {self.account} and container {self.config.container}, and has not been "
                "revoked"
            )
        else:
            hint = (
                f"check it is key1 or key2 of storage account {self.account}, copied whole, and "
                "not rotated since"
            )
        return (
            f"Azure rejected {who} ({code}): {hint}. If the storage account limits public "
            "network access, also allow Spillway's address under Networking"
        )

    def _scrub(self, text: str) -> str:
        text = SIG_PARAM.sub(r"\1REDACTED", text)
        for secret in (self.target.account_key, self.target.sas_token):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "REDACTED")
        return text
