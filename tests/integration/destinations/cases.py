"""The contract between the conformance suite and each kind's case fixture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spillway.destinations.base import ObjectStore


@dataclass
class StoreCase:
    """How to get stores of one kind against its real test server."""

    kind: str
    # A store on a fresh, existing, empty bucket; ``part_size`` small enough for a test.
    make: Callable[[int], ObjectStore]
    # Same bucket, credentials the server rejects.
    make_bad_credentials: Callable[[], ObjectStore]
    # Good credentials, a bucket that does not exist.
    make_missing_bucket: Callable[[], ObjectStore]
    # Read an object through the vendor SDK (not Spillway's code); None when absent.
    raw_read: Callable[[str], bytes | None]
    # Name of the check that must fail for bad credentials / a missing bucket.
    credentials_check: str
    bucket_check: str
    # Smallest part size the service accepts (S3: 5 MiB); the suite writes > 2 parts of it.
    min_part_size: int
    # Words the bad-credentials failure must say, where its check has the same name as the
    # missing-bucket one (local: both are "directory"), so the two cases cannot be confused.
    credentials_words: tuple[str, ...] = ()
