"""The memory "service": a process-wide dict of buckets behind one token, and the errors it
answers with (what a vendor SDK and its error sorting are to a real kind)."""

from __future__ import annotations

from spillway.destinations.base import CredentialsRejected, DestinationError

# bucket → key → bytes; a test creates its bucket here first, as one would in a real service.
BUCKETS: dict[str, dict[str, bytes]] = {}
TOKEN = "let-me-in"


def bucket_objects(bucket: str, token: str) -> dict[str, bytes]:
    """The bucket's objects, or the error the service would give."""
    if token != TOKEN:
        raise CredentialsRejected("the memory store refused the token")
    if bucket not in BUCKETS:
        raise DestinationError(f"bucket {bucket} does not exist")
    return BUCKETS[bucket]
