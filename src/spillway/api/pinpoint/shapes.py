"""Pinpoint's JSON shapes for what Spillway keeps: apps, dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from spillway.model import Project

# Pinpoint's ARNs name an account; Spillway has none: a fixed, obviously local one.
ACCOUNT = "000000000000"


def iso(ms: int | None) -> str | None:
    """Epoch ms as Pinpoint writes dates: ISO 8601 UTC with milliseconds and ``Z``."""
    if ms is None:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def application(project: Project, region: str) -> dict[str, Any]:
    """ApplicationResponse."""
    return {
        "Arn": f"arn:aws:mobiletargeting:{region}:{ACCOUNT}:apps/{project.app_id}",
        "Id": project.app_id,
        "Name": project.name,
        "tags": dict(project.tags),
        "CreationDate": iso(project.created_at),
    }
