"""Helpers for export tests: a project with a local destination, a fake clock, reading files."""

from __future__ import annotations

import gzip
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.demo import synthetic_events
from spillway.engine.scheduler import Scheduler
from spillway.ingest import Limits, judge
from spillway.model import Actor, Destination, Export
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.settings import Settings
from spillway.store.events import insert_events

LIMITS = Limits(10**9, 10**6, 10**6)
T0 = 1_795_392_000  # 2026-11-23 00:00:00 UTC, a Monday


class Clock:
    """An injectable clock (epoch seconds) that tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    engine: Engine
    box: SecretBox
    root: Path
    project_id: int
    actor: Actor
    destination: Destination
    clock: Clock
    seed: int = 0

    def export(self, name: str = "events", **settings: Any) -> Export:
        body = api_models.ExportIn(name=name, destination_id=self.destination.id, **settings)
        return export_service.create(self.engine, self.actor, body, now=int(self.clock.now * 1000))

    def ingest(
        self, count: int, at: float | None = None, *, event_time: int | None = None
    ) -> list[str]:
        """Store ``count`` events received at ``at`` (default: the clock); their uuids.

        Their ``event_time`` starts at ``event_time`` (default: the demo's, in 2025).
        """
        self.seed += 1
        received = int((self.clock.now if at is None else at) * 1000)
        times = {} if event_time is None else {"start_time": event_time}
        raw = list(synthetic_events(count, seed=self.seed * 7919, users=50, **times))
        judged = judge(raw, received, LIMITS)
        insert_events(self.engine, self.project_id, received, judged.rows)
        return [str(uuid.UUID(bytes=row[1])) for row in judged.rows]  # rows hold the 16 bytes

    def scheduler(self, **kwargs: Any) -> Scheduler:
        return Scheduler(self.engine, self.box, clock=self.clock, **kwargs)


def make_setup(engine: Engine, tmp_path: Path, folder: str = "spillway") -> Setup:
    """A project with a local destination in folder ``bucket`` of its own subfolder of the
    operator's SPILLWAY_LOCAL_ROOT (the test requests the ``local_root`` fixture)."""
    local = Settings().local_root
    assert local is not None, "use the local_root fixture: local folders need SPILLWAY_LOCAL_ROOT"
    box = SecretBox(b"k" * 48)
    project = create_project(engine, "acme")
    actor = Actor("test", project.id)
    root = local / project.app_id / "bucket"
    row, _ = destination_service.create(
        engine,
        box,
        actor,
        {
            "name": "local",
            "kind": "local",
            "config": {"path": "bucket", "folder": folder},
            "credentials": {"mode": "none"},
        },
    )
    assert root.is_dir()  # validation made it
    return Setup(engine, box, root, project.id, actor, row, Clock(T0 + 60))


def data_files(root: Path) -> list[Path]:
    """Every delivered data file (not manifests, not validation objects), sorted."""
    return sorted(
        p
        for p in root.rglob("event_exports_*")
        if p.is_file() and not p.name.endswith(".manifest.json")
    )


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a gzip file."""
    return [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def delivered_uuids(root: Path) -> list[str]:
    """event_uuid of every record in every delivered jsonl.gz file (with repeats)."""
    return [r["event"]["event_uuid"] for p in data_files(root) for r in records(p)]
