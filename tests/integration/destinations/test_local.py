"""Local folders: only under the operator's SPILLWAY_LOCAL_ROOT, each project in its subfolder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.api import models as api_models
from spillway.api.errors import answer_for
from spillway.demo import synthetic_events
from spillway.destinations.base import CheckStatus, DestinationError, Needs, Tenant, all_passed
from spillway.destinations.local.store import LocalStore
from spillway.engine.scheduler import Scheduler
from spillway.errors import InputError
from spillway.ingest import judge
from spillway.model import Actor
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.store import catalog
from spillway.store.db import create_engine, migrate
from spillway.store.events import insert_events
from tests.integration.exporting import LIMITS, T0, Clock

NONE = {"mode": "none"}


def tenant() -> Tenant:
    return Tenant(uuid.uuid4().hex, "acme", "unused")


def parse(config: dict[str, Any], project: Tenant | None, *, stored: bool = False) -> Any:
    return registry.parse("local", config, NONE, project, stored=stored)


def store_of(config: dict[str, Any], project: Tenant, *, stored: bool = False) -> LocalStore:
    store = registry.build(parse(config, None if stored else project, stored=stored), project)
    assert isinstance(store, LocalStore)
    return store


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_local_folders_are_off_unless_the_operator_sets_the_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPILLWAY_LOCAL_ROOT", raising=False)
    with pytest.raises(InputError) as caught:
        parse({"path": "exports"}, tenant())
    assert answer_for(caught.value).status == 422
    assert (
        "local folders are turned off on this server; the operator enables them with "
        "SPILLWAY_LOCAL_ROOT"
    ) in str(caught.value)


def test_each_project_writes_inside_its_own_subfolder(local_root: Path) -> None:
    project = tenant()
    store = store_of({"path": "exports/daily", "folder": "spillway"}, project)
    checks = store.validate(Needs(read=True, list=True, delete=True))
    assert all_passed(checks), [c.as_dict() for c in checks]
    assert f"<SPILLWAY_LOCAL_ROOT>/{project.app_id}/exports/daily" in checks[0].message
    assert str(local_root) not in str([c.as_dict() for c in checks])  # the server's layout
    store.put_object("spillway_events/a.json", b"{}")
    written = local_root / project.app_id / "exports" / "daily" / "spillway_events" / "a.json"
    assert written.read_bytes() == b"{}"
    # An empty path is the project's folder itself.
    store_of({}, project).put_object("b.json", b"x")
    assert (local_root / project.app_id / "b.json").read_bytes() == b"x"


def _outside_cases(local_root: Path, project: Tenant, other: Tenant) -> list[tuple[str, str]]:
    """(path, words of the refusal): every way out of the project's folder."""
    outside = local_root.parent / f"outside-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    mine = local_root / project.app_id
    mine.mkdir(exist_ok=True)
    (local_root / other.app_id).mkdir(exist_ok=True)
    (mine / "escape").symlink_to(outside)  # a symlink pointing out of the root
    (mine / "neighbour").symlink_to(local_root / other.app_id)  # into another project
    (mine / "deep").mkdir()
    (mine / "deep" / "up").symlink_to("../..")  # relative, climbing to the root
    return [
        (str(outside), "absolute"),
        (str(mine / "exports"), "absolute"),  # even inside its own folder: relative only
        ("/etc", "absolute"),
        ("..", "'..'"),
        (f"../{other.app_id}", "'..'"),
        ("exports/../../x", "'..'"),
        ("escape", "resolves outside this project's folder"),
        ("escape/sub", "resolves outside this project's folder"),
        ("neighbour", "resolves outside this project's folder"),
        ("deep/up", "resolves outside this project's folder"),
        (f"deep/up/{other.app_id}", "resolves outside this project's folder"),
    ]


def test_a_path_leading_outside_the_project_folder_is_refused(local_root: Path) -> None:
    project, other = tenant(), tenant()
    for path, words in _outside_cases(local_root, project, other):
        with pytest.raises(InputError) as caught:
            parse({"path": path}, project)
        assert answer_for(caught.value).status == 422, path
        assert "config.path" in str(caught.value), path
        assert words in str(caught.value), (path, str(caught.value))
    for folder in ("../up", "/abs"):
        with pytest.raises(InputError):
            parse({"path": "ok", "folder": folder}, project)
    assert list((local_root / other.app_id).iterdir()) == []


def test_force_does_not_skip_the_rule(local_root: Path, sqlite: Engine) -> None:
    box = SecretBox(b"k" * 48)
    row = create_project(sqlite, "acme")
    other = create_project(sqlite, "beta")
    actor = Actor("test", row.id)
    project = Tenant(row.app_id, row.name, row.external_id)
    cases = _outside_cases(local_root, project, Tenant(other.app_id, other.name, ""))
    for number, (path, _) in enumerate(cases):
        body = {
            "name": f"d{number}",
            "kind": "local",
            "config": {"path": path},
            "credentials": NONE,
            "force": True,
        }
        with pytest.raises(InputError) as caught:
            destination_service.create(sqlite, box, actor, body)
        assert answer_for(caught.value).status == 422, path
    with sqlite.connect() as conn:
        assert catalog.list_destinations(conn, row.id) == []
    assert list((local_root / other.app_id).iterdir()) == []


def test_a_symlink_swapped_in_after_configuration_stops_the_writes(local_root: Path) -> None:
    project, other = tenant(), tenant()
    theirs = local_root / other.app_id
    theirs.mkdir()
    store = store_of({"path": "exports"}, project)
    store.put_object("events/a.json", b"mine")
    mine = local_root / project.app_id / "exports"
    (mine / "events" / "a.json").unlink()
    (mine / "events").rmdir()
    (mine / "events").symlink_to(theirs)  # someone with shell access links elsewhere
    with pytest.raises(DestinationError, match="leads outside this destination's folder"):
        store.put_object("events/b.json", b"into the neighbour")
    with pytest.raises(DestinationError):
        store.list_objects("events/")
    assert list(theirs.iterdir()) == []
    # And a store built now refuses from the start.
    (mine.parent / "exports2").symlink_to(theirs)
    with pytest.raises(InputError, match="resolves outside"):
        parse({"path": "exports2"}, project)
    built = store_of({"path": "exports2"}, project, stored=True)
    assert built.validate(Needs())[0].status is CheckStatus.FAILED
    with pytest.raises(DestinationError, match="resolves outside"):
        built.put_object("a.json", b"x")
    assert list(theirs.iterdir()) == []


def test_object_keys_never_leave_the_folder(local_root: Path) -> None:
    project = tenant()
    store = store_of({"path": "exports"}, project)
    secret = local_root.parent / f"secret-{uuid.uuid4().hex[:6]}"
    secret.write_bytes(b"operator's")
    (local_root / project.app_id / "exports").mkdir(parents=True, exist_ok=True)
    (local_root / project.app_id / "exports" / "link.json").symlink_to(secret)
    for key in ("../x.json", "../../x.json", "/etc/x.json", "a/../../x.json"):
        with pytest.raises(DestinationError):
            store.put_object(key, b"x")
    with pytest.raises(DestinationError):
        store.read_object("link.json")
    with pytest.raises(DestinationError):
        store.delete_object("link.json")
    assert secret.read_bytes() == b"operator's"


def test_listing_stays_under_the_prefix(local_root: Path) -> None:
    project = tenant()
    store = store_of({"path": "exports"}, project)
    for key in (
        "spillway_events/export_day=01-01-2026/a.json",
        "spillway_events/b.json",
        "spillway_eventsX/c.json",
        "spillway_other/d.json",
        "top.json",
    ):
        store.put_object(key, b"x")
    outside = local_root.parent / f"elsewhere-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    (outside / "foreign.json").write_bytes(b"x")
    folder = local_root / project.app_id / "exports" / "spillway_events"
    (folder / "linked").symlink_to(outside)  # never followed
    (folder / "linked.json").symlink_to(outside / "foreign.json")  # never listed
    (folder / ".spillway-tmp.part").write_bytes(b"half")  # a write in progress
    assert store.list_objects("spillway_events/") == [
        "spillway_events/b.json",
        "spillway_events/export_day=01-01-2026/a.json",
    ]
    assert store.list_objects("spillway_events/export_day=") == [
        "spillway_events/export_day=01-01-2026/a.json"
    ]
    assert store.list_objects("spillway_nothing/") == []
    assert store.list_objects("spillway_e") == [
        "spillway_events/b.json",
        "spillway_events/export_day=01-01-2026/a.json",
        "spillway_eventsX/c.json",
    ]


def test_destinations_stored_with_absolute_paths_keep_working_inside_their_folder(
    local_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tenant()
    legacy = local_root / project.app_id / "legacy"
    legacy.mkdir(parents=True)
    store = store_of({"path": str(legacy)}, project, stored=True)
    assert all_passed(store.validate(Needs()))
    store.put_object("spillway_events/a.json", b"{}")
    assert (legacy / "spillway_events" / "a.json").read_bytes() == b"{}"

    # One stored anywhere else, or on a server without the setting, fails with what to do.
    elsewhere = local_root.parent / f"old-{uuid.uuid4().hex[:6]}"
    elsewhere.mkdir()
    refused = store_of({"path": str(elsewhere)}, project, stored=True)
    check = refused.validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "move its files into <SPILLWAY_LOCAL_ROOT>/" in check.message
    with pytest.raises(DestinationError):
        refused.put_object("a.json", b"x")
    assert list(elsewhere.iterdir()) == []
    monkeypatch.delenv("SPILLWAY_LOCAL_ROOT")
    off = store_of({"path": str(legacy)}, project, stored=True)
    with pytest.raises(DestinationError, match="turned off"):
        off.put_object("b.json", b"x")
    assert not (legacy / "b.json").exists()


def test_a_stored_outside_destination_fails_its_runs_and_the_others_go_on(
    local_root: Path, sqlite: Engine
) -> None:
    box = SecretBox(b"k" * 48)
    rows = [create_project(sqlite, name) for name in ("old", "new")]
    outside = local_root.parent / f"pre-upgrade-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    ids = []
    for row in rows:
        actor = Actor("test", row.id)
        destination, _ = destination_service.create(
            sqlite,
            box,
            actor,
            {"name": "files", "kind": "local", "config": {"path": "x"}, "credentials": NONE},
        )
        if row is rows[0]:  # as stored before the upgrade: an absolute path elsewhere
            with sqlite.connect().execution_options(write=True) as conn, conn.begin():
                catalog.update_destination(conn, destination.id, {"config": {"path": str(outside)}})
        body = api_models.ExportIn(name="events", destination_id=destination.id)
        ids.append(export_service.create(sqlite, actor, body, now=T0 * 1000).id)
        judged = judge(list(synthetic_events(5, seed=row.id)), T0 * 1000 + 1000, LIMITS)
        insert_events(sqlite, row.id, T0 * 1000 + 1000, judged.rows)
    scheduler = Scheduler(sqlite, box, clock=Clock(T0 + 3600))
    assert scheduler.tick() == {"runs": 1, "failed": 1}
    old = export_service.get(sqlite, rows[0].id, ids[0])
    assert old.status == "failing"
    assert "resolves outside this project's folder" in old.status_reason
    assert list(outside.iterdir()) == []
    assert export_service.get(sqlite, rows[1].id, ids[1]).status == "active"
    assert list((local_root / rows[1].app_id / "x").rglob("event_exports_*"))
