"""The ``cleanup`` feature of a destination: a failed attempt's leftovers (objects named like the
run's files that its manifest does not list) are removed when the run succeeds, and only then,
and only when the destination has cleanup on.

Attempts of one run rewrite the same keys, so leftovers are rare; they appear when a later
attempt writes fewer parts than an earlier one. Here retention removed part of a failing run's
events between its attempts (the export failed for longer than the retention period).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway.errors import TransientError
from spillway.services import destinations as destination_service
from spillway.store.events import prune_before
from tests.integration.exporting import T0, data_files, delivered_uuids, make_setup

# make_setup's local destination needs the operator's SPILLWAY_LOCAL_ROOT.
pytestmark = pytest.mark.usefixtures("local_root")


class FailOnce:
    """A scheduler hook: the first attempt fails after its files, before its manifest."""

    def __init__(self) -> None:
        self.failed = False

    def __call__(self, checkpoint: str) -> None:
        if checkpoint == "before_manifest" and not self.failed:
            self.failed = True
            raise TransientError("injected: the worker stopped before the manifest")


def manifest_files(root: Path) -> dict[str, str]:
    """key → sha256 of every file the manifests under ``root`` list."""
    listed: dict[str, str] = {}
    for path in root.rglob("*.manifest.json"):
        for item in orjson.loads(path.read_bytes())["files"]:
            listed[item["key"]] = item["sha256"]
    return listed


def on_disk(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in data_files(root)
    }


@pytest.mark.parametrize("cleanup", [True, False], ids=["cleanup-on", "cleanup-off"])
def test_leftovers_of_a_failed_attempt(engine: Engine, tmp_path: Path, cleanup: bool) -> None:
    s = make_setup(engine, tmp_path)
    s.destination, _ = destination_service.create(
        engine,
        s.box,
        s.actor,
        {
            "name": "cleaned",
            "kind": "local",
            "config": {"path": "cleaned", "folder": "spillway"},
            "credentials": {"mode": "none"},
            "features": {"cleanup": cleanup},
        },
    )
    root = s.root.parent / "cleaned"
    s.export(max_file_bytes=4_096)  # a few KiB per file: the run is split into parts
    s.ingest(60, at=T0 + 100)
    kept = s.ingest(20, at=T0 + 800)
    fail_once = FailOnce()
    scheduler = s.scheduler(hook=fail_once)

    s.clock.now = T0 + 901
    assert scheduler.tick() == {"runs": 0, "failed": 1}
    first_attempt = on_disk(root)
    assert len(first_attempt) >= 4, first_attempt  # parts written, no manifest
    assert manifest_files(root) == {}

    # Retention removes the older events of the failing run before its next attempt.
    assert prune_before(engine, (T0 + 500) * 1000, 1_000) == 60
    s.clock.now += 10  # past the retry delay (5 s, jittered), before the next window closes
    assert scheduler.tick() == {"runs": 1, "failed": 0}

    listed = manifest_files(root)
    assert 0 < len(listed) < len(first_attempt)
    files = on_disk(root)
    leftovers = set(files) - set(listed)
    # Whatever the manifest lists is there, byte for byte.
    assert {key: files[key] for key in listed} == listed
    if cleanup:
        assert leftovers == set(), "cleanup left a failed attempt's parts behind"
        assert sorted(delivered_uuids(root)) == sorted(kept)
    else:
        # Without cleanup the older parts stay (the manifest says which files are the run's).
        assert leftovers == set(first_attempt) - set(listed)
        assert leftovers
