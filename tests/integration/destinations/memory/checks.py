"""The memory store's ordered checks: credentials → bucket → the object steps every store shares."""

from __future__ import annotations

from spillway.destinations.base import Check, Needs, Objects, bucket_checks


def _credentials(authorized: bool) -> Check:
    if authorized:
        return Check.passed("credentials", "the token was accepted")
    return Check.failed("credentials", "the token was refused: paste the right one")


def _bucket(exists: bool) -> Check:
    if exists:
        return Check.passed("bucket", "the bucket exists")
    return Check.failed("bucket", "the bucket does not exist: create it first")


def validate(store: Objects, needs: Needs, *, authorized: bool, exists: bool) -> list[Check]:
    """Each step after a failed one is skipped, saying why."""
    return bucket_checks(
        store,
        needs,
        refusal=None,
        credentials=lambda: _credentials(authorized),
        bucket=lambda: _bucket(exists),
        explain=str,
    )
