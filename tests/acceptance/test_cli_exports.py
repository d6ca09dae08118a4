"""``spillway exports …`` and ``spillway admin list-projects|list-keys`` as an operator runs
them: the real console script on a data dir, every command, its ``--json``, and its errors
(exit status and a message that names the database it looked in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.acceptance.conftest import cli_json, create_key, create_project, db_path, run_cli


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def local(tmp_path: Path) -> dict[str, str]:
    """The operator turns local folders on (SPILLWAY_LOCAL_ROOT) for the CLI's processes."""
    root = tmp_path / "local-root"
    root.mkdir()
    return {"SPILLWAY_LOCAL_ROOT": str(root)}


def names_the_database(message: str, data_dir: Path) -> bool:
    """The message says which database (and data dir) the command looked in."""
    return f"sqlite:///{db_path(data_dir).resolve()}" in message and (
        f"SPILLWAY_DATA_DIR={data_dir.resolve()}" in message
    )


def fails(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail; returns its stderr (nothing on stdout)."""
    result = run_cli(data_dir, *args, env=env)
    assert result.returncode != 0, (args, result.stdout)
    assert result.stdout.strip() == "", result.stdout
    assert result.stderr.startswith("error: "), result.stderr
    return result.stderr


def ok(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must succeed; returns its stdout."""
    result = run_cli(data_dir, *args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_admin_lists_projects_and_keys_never_a_secret(data_dir: Path) -> None:
    empty = ok(data_dir, "admin", "list-projects")
    assert "no projects" in empty and names_the_database(empty, data_dir), empty
    assert cli_json(data_dir, "admin", "list-projects") == {"projects": []}

    shop = create_project(data_dir, "shop")
    other = create_project(data_dir, "other")
    listed = cli_json(data_dir, "admin", "list-projects")["projects"]
    assert [(p["project_id"], p["name"]) for p in listed] == [
        (shop["project_id"], "shop"),
        (other["project_id"], "other"),
    ]
    assert listed[0]["external_id"] == shop["external_id"]
    assert isinstance(listed[0]["created_at"], int)
    text = ok(data_dir, "admin", "list-projects")
    assert shop["project_id"] in text and "shop" in text and "other" in text

    ingest = create_key(data_dir, "shop", "ingest")
    write = cli_json(data_dir, "admin", "create-key", "shop", "--scope", "write", "--name", "ci")
    revoked = ok(data_dir, "admin", "revoke-key", ingest["key_id"])
    assert ingest["key_id"] in revoked

    keys = cli_json(data_dir, "admin", "list-keys", "shop")
    assert keys["project_id"] == shop["project_id"]
    by_id = {k["key_id"]: k for k in keys["keys"]}
    assert set(by_id) == {ingest["key_id"], write["key_id"]}
    assert by_id[ingest["key_id"]]["scope"] == "ingest"
    assert isinstance(by_id[ingest["key_id"]]["revoked_at"], int)
    assert by_id[write["key_id"]] | {"created_at": 0} == {
        "key_id": write["key_id"],
        "scope": "write",
        "name": "ci",
        "created_at": 0,
        "revoked_at": None,
    }
    text = ok(data_dir, "admin", "list-keys", shop["project_id"])  # by id too
    assert ingest["key_id"] in text and "revoked" in text and write["key_id"] in text
    for secret in (ingest["secret"], write["secret"]):
        assert secret not in text
        assert secret not in json.dumps(keys)
    assert cli_json(data_dir, "admin", "list-keys", "other")["keys"] == []

    missing = fails(data_dir, "admin", "list-keys", "acme")
    assert "no project named or with id 'acme'" in missing
    assert names_the_database(missing, data_dir), missing


def test_every_command_names_the_database_it_looked_in(data_dir: Path, tmp_path: Path) -> None:
    create_project(data_dir, "shop")
    for args in (
        ("admin", "create-key", "acme", "--scope", "read"),
        ("admin", "list-keys", "acme"),
        ("destinations", "list", "--project", "acme"),
        ("exports", "list", "--project", "acme"),
        ("exports", "show", "--project", "acme", "events"),
        ("exports", "run", "--project", "acme", "events"),
        ("exports", "runs", "--project", "acme", "events"),
    ):
        message = fails(data_dir, *args)
        assert "'acme'" in message, (args, message)
        assert names_the_database(message, data_dir), (args, message)
    revoke = fails(data_dir, "admin", "revoke-key", "SPWNOSUCHKEY")
    assert "SPWNOSUCHKEY" in revoke and names_the_database(revoke, data_dir), revoke
    for action in ("validate", "delete"):  # the project is there, the destination is not
        message = fails(data_dir, "destinations", action, "--project", "shop", "nosuchid")
        assert "nosuchid" in message and names_the_database(message, data_dir), message

    # With SPILLWAY_DATABASE_URL, that is what the message names.
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    message = fails(
        data_dir, "exports", "list", "--project", "shop", env={"SPILLWAY_DATABASE_URL": url}
    )
    assert f"the database at {url} (SPILLWAY_DATABASE_URL)" in message, message


def test_exports_from_create_to_delete(data_dir: Path, local: dict[str, str]) -> None:
    project = create_project(data_dir, "shop")["project_id"]
    destination = cli_json(
        data_dir,
        "destinations",
        "create",
        "--project",
        "shop",
        "--name",
        "disk",
        "--kind",
        "local",
        "--config",
        '{"path": "out"}',
        env=local,
    )
    assert ok(data_dir, "demo", "--events", "120", "--project", "shop").strip()

    def cli(*args: str) -> Any:
        return cli_json(data_dir, "exports", *args, "--project", "shop", env=local)

    def err(*args: str) -> str:
        return fails(data_dir, "exports", *args, "--project", "shop", env=local)

    assert cli("list") == {"exports": []}
    assert "no exports" in ok(data_dir, "exports", "list", "--project", "shop")

    # create: the destination by name, checked as the API checks it.
    created = cli(
        "create",
        "--name",
        "events",
        "--destination",
        "disk",
        "--frequency",
        "daily",
        "--format",
        "csv",
        "--compression",
        "none",
        "--start",
        "retention",
        "--settings",
        '{"user_attributes": "none"}',
    )
    export_id = created["id"]
    assert created["destination_id"] == destination["id"]
    assert (created["frequency"], created["format"], created["compression"]) == (
        "daily",
        "csv",
        "none",
    )
    assert created["user_attributes"] == "none"
    assert created["path"] == "events/export_day=<DD-MM-YYYY>/event_exports_<epoch>.csv"
    assert created["status"] == "active" and created["last_run"] is None
    assert created["next_run_at"] % 86_400_000 == 0

    invalid = run_cli(
        data_dir,
        "exports",
        "create",
        "--project",
        "shop",
        "--name",
        "hourly",
        "--destination",
        "disk",
        "--frequency",
        "monthly",  # (hourly is a frequency now)
        env=local,
    )
    assert invalid.returncode == 2, invalid
    assert "frequency" in invalid.stderr and "every_15_minutes" in invalid.stderr
    stream_on_disk = err("create", "--name", "s", "--destination", "disk", "--frequency", "stream")
    assert "kinesis or firehose" in stream_on_disk
    taken = err("create", "--name", "events", "--destination", "disk", "--frequency", "daily")
    assert "already writes there" in taken
    nowhere = err("create", "--name", "x", "--destination", "bucket", "--frequency", "daily")
    assert "no destination 'bucket'" in nowhere and names_the_database(nowhere, data_dir)

    # list and show, by id and by name.
    (listed,) = cli("list")["exports"]
    assert listed["id"] == export_id
    text = ok(data_dir, "exports", "list", "--project", "shop")
    assert export_id in text and "daily" in text and "no run yet" in text
    assert cli("show", "events")["id"] == export_id
    assert cli("show", export_id)["name"] == "events"
    shown = ok(data_dir, "exports", "show", "--project", "shop", "events")
    assert "status:" in shown and "next run:" in shown
    unknown = err("show", "nosuch")
    assert "no export 'nosuch'" in unknown and "'shop'" in unknown
    assert names_the_database(unknown, data_dir), unknown

    # run, then the worker delivers it; runs and show say so.
    queued = cli("run", "events")
    assert set(queued) >= {"run_id"}
    worker = run_cli(data_dir, "worker", "--once", env=local)
    assert worker.returncode == 0, worker.stderr
    (run,) = cli("runs", "events")["runs"]
    assert run["id"] == queued["run_id"]
    assert run["status"] == "succeeded" and run["events"] == 120, run
    assert run["id"] in ok(data_dir, "exports", "runs", "--project", "shop", export_id)
    after = cli("show", "events")
    assert after["last_run"]["id"] == run["id"] and after["last_run"]["events"] == 120
    assert after["last_success_at"] == run["finished_at"]
    delivered = Path(local["SPILLWAY_LOCAL_ROOT"]) / project / "out" / run["files"][0]

    # ddl: the DuckDB view over the files, run as printed, counts every delivered event.
    view = run_cli(data_dir, "exports", "ddl", "--project", "shop", "events", env=local)
    assert view.returncode == 0, view.stderr
    assert view.stdout.startswith("CREATE OR REPLACE VIEW events AS"), view.stdout
    assert "no partition columns" in view.stderr  # the moengage layout's note, as a comment
    con = duckdb.connect()
    con.execute(view.stdout)
    assert con.execute("select count(*) from events").fetchone() == (120,)
    described = cli("ddl", "events", "--engine", "duckdb")
    assert described["statement"] == view.stdout.strip()
    assert "moengage" in err("ddl", "events", "--engine", "athena")
    assert "--engine" in err("ddl", "events", "--engine", "presto")
    assert len(delivered.read_text().splitlines()) == 121  # a CSV header and 120 rows

    # backfill: before the export's start there is nothing kept; the range is checked.
    backwards = run_cli(
        data_dir,
        "exports",
        "backfill",
        "--project",
        "shop",
        "events",
        "--start",
        "2000",
        "--end",
        "1000",
        env=local,
    )
    assert backwards.returncode == 2 and "end must be after start" in backwards.stderr
    old = err("backfill", "events", "--start", "1000", "--end", "2000")
    assert "retention" in old
    start = after["created_at"] // 1000 - 3600
    backfilled = cli("backfill", "events", "--start", str(start), "--end", str(start + 60))
    assert backfilled["prefix"] == f"events_backfill/{backfilled['run_id']}"

    # disable / enable: a disabled export does not run.
    assert cli("disable", "events")["status"] == "disabled"
    assert cli("show", "events")["next_run_at"] is None
    assert "disabled" in err("run", "events")
    assert cli("enable", export_id)["status"] == "active"

    # delete: gone from list and show; its run history stays readable by id.
    assert cli("delete", "events") == {"deleted": True, "id": export_id}
    assert cli("list") == {"exports": []}
    assert "'events'" in err("show", "events")
    assert "was deleted" in err("show", export_id)
    history = cli("runs", export_id)["runs"]
    assert run["id"] in {r["id"] for r in history}
    assert "'events'" in err("delete", "events")
