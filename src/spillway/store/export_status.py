"""Named queries for how exports are doing: last run, last success, work waiting.

Each answers for many exports in one statement (``GET /exports`` shows every export of a
project, ``/metrics`` every export of the database), and each export's part of it is a few
lookups in the (export_id, status, finished_at) index of runs (migration 0008), however long
its run history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.store.schema import destinations, exports, runs, stream_state

# The run the worker is on, or will retry: an export's runs go strictly in order, so at most
# the first one waiting is in either state, and it is newer than every run that succeeded.
OPEN_STATES = ("running", "failed")
WAITING_STATES = ("queued", "running", "failed")
RUN_FIELDS = ("id", "kind", "status", "events", "error", "finished_at")


@dataclass(frozen=True, slots=True)
class LastRun:
    """What an export's answer shows of one of its runs (the columns RUN_FIELDS)."""

    id: str
    kind: str
    status: str
    events: int
    error: str | None
    finished_at: int | None  # epoch ms


@dataclass(frozen=True, slots=True)
class Progress:
    """One file export's runs at a glance."""

    # The run in progress or failed (retried at the export's next_attempt_at), else the last
    # one that succeeded; None before the first attempt.
    last_run: LastRun | None
    last_success_at: int | None  # epoch ms: finished_at of the last run that succeeded
    waiting_since: int | None  # epoch ms: created_at of the oldest run not yet delivered


def progress(conn: Connection, export_ids: Sequence[str]) -> dict[str, Progress]:
    """Last run, last success and waiting work of each of ``export_ids``, in one statement."""
    if not export_ids:
        return {}
    latest = runs.alias("latest")
    opened = runs.alias("opened")
    done = runs.alias("done")

    def newest(*where: sa.ColumnElement[bool], order: Sequence[Any]) -> sa.ScalarSelect[Any]:
        return (
            sa.select(latest.c.id)
            .where(latest.c.export_id == exports.c.id, *where)
            .order_by(*order)
            .limit(1)
            .correlate(exports)
            .scalar_subquery()
        )

    open_id = newest(
        latest.c.status.in_(OPEN_STATES),
        order=(latest.c.created_at.desc(), latest.c.window_end.desc(), latest.c.id.desc()),
    )
    done_id = newest(
        latest.c.status == "succeeded", order=(latest.c.finished_at.desc(), latest.c.id.desc())
    )
    waiting = (
        sa.select(sa.func.min(latest.c.created_at))
        .where(latest.c.export_id == exports.c.id, latest.c.status.in_(WAITING_STATES))
        .correlate(exports)
        .scalar_subquery()
    )
    query = (
        sa.select(
            exports.c.id.label("export_id"),
            waiting.label("waiting_since"),
            *[opened.c[name].label(f"open_{name}") for name in RUN_FIELDS],
            *[done.c[name].label(f"done_{name}") for name in RUN_FIELDS],
        )
        .select_from(
            exports.outerjoin(opened, opened.c.id == open_id).outerjoin(done, done.c.id == done_id)
        )
        .where(exports.c.id.in_(list(export_ids)))
    )
    found: dict[str, Progress] = {}
    for row in conn.execute(query).mappings():
        opened_run = _run(row, "open_")
        done_run = _run(row, "done_")
        found[row["export_id"]] = Progress(
            last_run=opened_run or done_run,
            last_success_at=None if done_run is None else done_run.finished_at,
            waiting_since=row["waiting_since"],
        )
    return found


def _run(row: Any, prefix: str) -> LastRun | None:
    if row[f"{prefix}id"] is None:
        return None
    return LastRun(*(row[f"{prefix}{name}"] for name in RUN_FIELDS))


def folders(conn: Connection, destination_ids: Sequence[str]) -> dict[str, str]:
    """The ``folder`` of each live destination among ``destination_ids`` (one statement)."""
    if not destination_ids:
        return {}
    rows = conn.execute(
        sa.select(destinations.c.id, destinations.c.config).where(
            destinations.c.id.in_(list(set(destination_ids))), destinations.c.deleted_at.is_(None)
        )
    )
    return {row.id: str((row.config or {}).get("folder", "")) for row in rows}


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/metrics`` shows of one live export."""

    export_id: str
    name: str
    frequency: str
    status: str
    last_success_at: int | None  # epoch ms


def health(conn: Connection) -> list[Health]:
    """Every live (not deleted) export of the database with its last success, one statement:
    a file export's last succeeded run, a stream's last acknowledged batch."""
    latest = runs.alias("latest")
    last_run = (
        sa.select(sa.func.max(latest.c.finished_at))
        .where(latest.c.export_id == exports.c.id, latest.c.status == "succeeded")
        .correlate(exports)
        .scalar_subquery()
    )
    query = (
        sa.select(
            exports.c.id,
            exports.c.name,
            exports.c.frequency,
            exports.c.status,
            last_run.label("last_run_at"),
            stream_state.c.last_sent_at,
        )
        .select_from(exports.outerjoin(stream_state, stream_state.c.export_id == exports.c.id))
        .where(exports.c.deleted_at.is_(None))
        .order_by(exports.c.created_at, exports.c.id)
    )
    return [
        Health(
            row.id,
            row.name,
            row.frequency,
            row.status,
            row.last_sent_at if row.frequency == "stream" else row.last_run_at,
        )
        for row in conn.execute(query)
    ]
