"""A ``policy`` fixture: list origins for one test only (the outbound policy is restored)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spillway import netpolicy


class Policy:
    """The process's outbound policy for the test: ``allow`` lists origins until it ends."""

    def allow(self, *urls: str) -> None:
        """List these URLs' origins, as the operator would in SPILLWAY_ALLOWED_ENDPOINTS."""
        origins = {netpolicy.origin_of(url) for url in urls}
        netpolicy.configure(netpolicy.Policy(netpolicy.current().allowed | origins))

    def forbid(self, *urls: str) -> None:
        """Take these URLs' origins off the list (the operator removed them)."""
        origins = {netpolicy.origin_of(url) for url in urls}
        netpolicy.configure(netpolicy.Policy(netpolicy.current().allowed - origins))


@pytest.fixture
def policy() -> Iterator[Policy]:
    saved = netpolicy.current()
    try:
        yield Policy()
    finally:
        netpolicy.configure(saved)
