"""Pinpoint's JSON shapes for what Spillway keeps: apps, dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from spillway.model import Job, Project

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


# --- event streams and jobs ---------------------------------------------------------------------

# Spillway's job statuses as Pinpoint names them; a cancelled job (Pinpoint cannot cancel) is
# FAILED, with a failure saying so.
_JOB_STATUS = {"CANCELLED": "FAILED"}
CANCELLED_FAILURE = "The job was cancelled in Spillway before it completed."


def event_stream(
    app_id: str,
    stream_arn: str,
    role_arn: str,
    modified_ms: int | None,
    modified_by: str | None,
) -> dict[str, Any]:
    """EventStream."""
    shown: dict[str, Any] = {
        "ApplicationId": app_id,
        "DestinationStreamArn": stream_arn,
        "RoleArn": role_arn,
        "LastModifiedDate": iso(modified_ms),
    }
    if modified_by:
        shown["LastUpdatedBy"] = modified_by
    return shown


def job(app_id: str, found: Job, job_type: str, definition: dict[str, Any]) -> dict[str, Any]:
    """ExportJobResponse or ImportJobResponse (``job_type`` EXPORT or IMPORT)."""
    failures = list(found.failures)
    if found.status == "CANCELLED":
        failures.append(CANCELLED_FAILURE)
    shown: dict[str, Any] = {
        "ApplicationId": app_id,
        "CreationDate": iso(found.created_at),
        "Id": found.id,
        "Definition": definition,
        "Type": job_type,
        "JobStatus": _JOB_STATUS.get(found.status, found.status),
        "CompletedPieces": found.completed_pieces,
        "FailedPieces": found.failed_pieces,
        "Failures": failures,
        "TotalFailures": found.total_failures,
        "TotalPieces": found.total_pieces,
        "TotalProcessed": found.total_processed,
    }
    if found.completed_at is not None:
        shown["CompletionDate"] = iso(found.completed_at)
    return shown
