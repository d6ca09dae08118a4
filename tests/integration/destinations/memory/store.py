"""The memory store: objects in a process-wide dict of buckets, written part by part.

The dict and its token are the "service" (``client``); this is the data path over it.
"""

from __future__ import annotations

from typing import ClassVar

from spillway.destinations.base import (
    DEFAULT_PART_SIZE,
    Check,
    Needs,
    ObjectStore,
    ObjectWriter,
    PartBuffer,
    StoredObject,
)
from tests.integration.destinations.memory import checks
from tests.integration.destinations.memory.client import BUCKETS, TOKEN, bucket_objects


class MemoryWriter(ObjectWriter):
    """Keeps full parts aside; the object appears only on commit."""

    def __init__(self, store: MemoryStore, key: str) -> None:
        super().__init__(key)
        self._store = store
        self._buffer = PartBuffer(store.part_size)
        self._parts: list[bytes] = []

    def _write(self, chunk: bytes) -> None:
        self._parts.extend(self._buffer.add(chunk))

    def _commit(self) -> StoredObject:
        rest = self._buffer.rest()
        parts = self._parts + ([rest] if rest or not self._parts else [])
        data = b"".join(parts)
        self._store.objects()[self.key] = data
        return StoredObject(self.key, len(data), {"parts": len(parts)})

    def _abort(self) -> None:
        self._parts.clear()


class MemoryStore(ObjectStore):
    """A bucket of :data:`BUCKETS`, reachable with :data:`TOKEN` only."""

    kind: ClassVar[str] = "memory"

    def __init__(
        self, bucket: str, folder: str, token: str, *, part_size: int = DEFAULT_PART_SIZE
    ) -> None:
        super().__init__(folder, part_size=part_size)
        self.bucket = bucket
        self._token = token

    def objects(self) -> dict[str, bytes]:
        """The bucket's objects, or the error the service would give."""
        return bucket_objects(self.bucket, self._token)

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        self.objects()
        return MemoryWriter(self, key)

    def read_object(self, key: str) -> bytes:
        return self.objects()[key]

    def list_objects(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects() if key.startswith(prefix))

    def delete_object(self, key: str) -> None:
        self.objects().pop(key, None)

    def validate(self, needs: Needs) -> list[Check]:
        return checks.validate(
            self, needs, authorized=self._token == TOKEN, exists=self.bucket in BUCKETS
        )
