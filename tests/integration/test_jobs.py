"""Export and import jobs end to end, in-process, against moto with IAM enforced (issue 11).

What a job wrote is read back with the admin's own boto3 client, never with Spillway's code, and
compared with figures computed here from what the test sent.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway import filters
from spillway.api.models import EndpointIn
from spillway.engine.jobs import pieces as piece_io
from spillway.errors import Conflict
from spillway.ingest import judge
from spillway.model import Actor, Job
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import jobs as jobs_service
from spillway.services import profiles, segments
from spillway.services.projects import create_project
from spillway.store import endpoints as endpoint_store
from spillway.store.events import insert_events
from tests.integration.destinations.case_s3 import S3World, allow, as_operator, policy
from tests.integration.exporting import LIMITS
from tests.server_moto import Moto

BOX = SecretBox(b"k" * 48)
DAY_S = 86_400
D0 = 1_795_132_800  # 2026-11-20 00:00:00 UTC
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# --- the world: a project, an IAM user, a stored S3 destination --------------------------------


@dataclass
class World:
    engine: Engine
    s3: S3World
    actor: Actor
    app_id: str
    external_id: str
    destination_id: str
    user_name: str

    @property
    def admin(self) -> Any:
        """The admin's own S3 client."""
        return self.s3.moto.client("s3")

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.admin.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=prefix
        ):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def read(self, key: str) -> bytes:
        return bytes(self.admin.get_object(Bucket=self.s3.bucket, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.admin.put_object(Bucket=self.s3.bucket, Key=key, Body=data)


def iam_user(moto: Moto, bucket: str) -> tuple[str, dict[str, str]]:
    """A user allowed everything on the bucket; its name and credentials (so a test can revoke
    them)."""
    iam: Any = moto.client("iam")
    name = "jobs-" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=name)
    arn = f"arn:aws:s3:::{bucket}"
    iam.put_user_policy(
        UserName=name, PolicyName="p", PolicyDocument=policy(allow("s3:*", [arn, f"{arn}/*"]))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, {
        "mode": "access_key",
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
    }


def make_world(engine: Engine, s3_world: S3World, name: str = "acme") -> World:
    project = create_project(engine, f"{name}-{uuid.uuid4().hex[:6]}")
    actor = Actor("test", project.id)
    user_name, credentials = iam_user(s3_world.moto, s3_world.bucket)
    destination, checks = destination_service.create(
        engine,
        BOX,
        actor,
        {
            "name": "warehouse",
            "kind": "s3",
            "config": s3_world.config().model_dump(mode="json"),
            "credentials": credentials,
        },
    )
    assert all(c.status.value != "failed" for c in checks), checks
    return World(
        engine,
        s3_world,
        actor,
        project.app_id,
        project.external_id,
        destination.id,
        user_name,
    )


@pytest.fixture
def world(engine: Engine, s3_world: S3World) -> World:
    return make_world(engine, s3_world)


# --- endpoints and events sent by the test -------------------------------------------------------


def endpoint(i: int, users: int) -> dict[str, Any]:
    """Endpoint ``i`` as the test sends it (every field kind, varied so filters select)."""
    return {
        "user_id": f"user-{i % users:06d}",
        "channel_type": ("EMAIL", "SMS", "APNS", "GCM")[i % 4],
        "address": f"a{i}@example.com",
        "endpoint_status": "INACTIVE" if i % 11 == 0 else "ACTIVE",
        "opt_out": "ALL" if i % 13 == 0 else "NONE",
        "attributes": {"interests": (["music"], ["sports", "music"], ["news"])[i % 3]},
        "user_attributes": {"plan": ["pro" if (i % users) % 5 == 0 else "free"]},
        "demographic": {"platform": ("ios", "android")[i % 2], "locale": "en_US"},
        "location": {"country": ("US", "FR", "DE", "JP")[(i // 4) % 4], "city": "Lyon"},
        "metrics": {"score": float(i % 100)},
    }


def endpoint_id(i: int) -> str:
    return f"ep-{i:06d}"


def upsert(engine: Engine, project_id: int, items: dict[str, dict[str, Any]]) -> None:
    """Store endpoints through the endpoint API's service, 1,000 per call."""
    pairs = [(eid, EndpointIn.model_validate(body)) for eid, body in items.items()]
    for start in range(0, len(pairs), 1_000):
        profiles.upsert(engine, project_id, pairs[start : start + 1_000])


def seed(engine: Engine, project_id: int, count: int, users: int) -> dict[str, dict[str, Any]]:
    sent = {endpoint_id(i): endpoint(i, users) for i in range(count)}
    upsert(engine, project_id, sent)
    return sent


def send_events(engine: Engine, project_id: int, events: list[dict[str, Any]]) -> None:
    judged = judge(events, int(time.time() * 1000), LIMITS)
    insert_events(engine, project_id, int(time.time() * 1000), judged.rows)


# --- running a job and reading what it wrote ------------------------------------------------------


def run(engine: Engine, job: Job, passes: int = 5) -> Job:
    """Tick a job runner until the job ends (or ``passes`` run out)."""
    runner = jobs_service.runner(engine, BOX)
    for _ in range(passes):
        runner.tick()
        job, _pieces = jobs_service.get(engine, job.project_id, job.id, job.type)
        if job.ended:
            break
    return job


def export(world: World, what: str = "endpoints", **spec: Any) -> Job:
    target = spec.pop("target", None) or jobs_service.Target(world.destination_id)
    job = jobs_service.create_export(
        world.engine, world.actor, jobs_service.ExportJobSpec(what=what, target=target, **spec)
    )
    return job


def import_(world: World, prefix: str, **spec: Any) -> Job:
    job = jobs_service.create_import(
        world.engine,
        world.actor,
        jobs_service.ImportJobSpec(
            target=jobs_service.Target(world.destination_id), prefix=prefix, **spec
        ),
    )
    return job


def lines(data: bytes) -> list[dict[str, Any]]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [orjson.loads(line) for line in data.splitlines() if line]


def check_manifest(world: World, folder: str) -> list[dict[str, Any]]:
    """Every piece of the manifest as read from the bucket: its records and hash match the
    object; returns the records of all pieces in order."""
    manifest = orjson.loads(world.read(f"{folder}/manifest.json"))
    data_keys = [k for k in world.keys(folder + "/") if not k.endswith("manifest.json")]
    assert sorted(p["key"] for p in manifest["pieces"]) == data_keys
    records: list[dict[str, Any]] = []
    for piece in manifest["pieces"]:
        data = world.read(piece["key"])
        assert hashlib.sha256(data).hexdigest() == piece["sha256"], piece["key"]
        assert len(data) == piece["bytes"]
        found = lines(data)
        assert len(found) == piece["records"]
        records += found
    assert manifest["records"] == len(records)
    return records


def folder_of(job: Job, base: str = "exports") -> str:
    return f"{base}/{job.id}"


def expect_pinpoint(line: dict[str, Any], sent: dict[str, Any], app_id: str) -> None:
    """One exported line has Pinpoint's shape and the values the test sent."""
    assert line["ChannelType"] == sent["channel_type"]
    assert line["Address"] == sent["address"]
    assert line["EndpointStatus"] == sent["endpoint_status"]
    assert line["OptOut"] == sent["opt_out"]
    assert line["Attributes"] == sent["attributes"]
    assert line["User"] == {"UserId": sent["user_id"], "UserAttributes": sent["user_attributes"]}
    assert line["Demographic"] == {"Platform": sent["demographic"]["platform"], "Locale": "en_US"}
    assert line["Location"] == {"Country": sent["location"]["country"], "City": "Lyon"}
    assert line["Metrics"] == sent["metrics"]
    assert line["ApplicationId"] == app_id


# --- 1. endpoints: stored destination, s3_url + role, segment -------------------------------------


@sqlite_only
def test_fifty_thousand_endpoints_once_each_and_a_segment_exactly(world: World) -> None:
    sent = seed(world.engine, world.actor.project_id, 50_000, users=20_000)
    assert len({body["user_id"] for body in sent.values()}) == 20_000

    job = run(world.engine, export(world, max_records_per_piece=20_000))
    assert job.status == "COMPLETED", job.failures
    assert job.total_processed == 50_000
    assert job.total_pieces == job.completed_pieces == 3
    assert job.failed_pieces == 0 and job.total_failures == 0
    records = check_manifest(world, folder_of(job))
    ids = Counter(r["Id"] for r in records)
    assert set(ids) == set(sent) and set(ids.values()) == {1}  # every endpoint exactly once
    for record in records:
        expect_pinpoint(record, sent[record["Id"]], world.app_id)

    # A segment: the job holds exactly what this filter, computed here, selects.
    chosen = segments.create(
        world.engine,
        world.actor,
        "french music",
        filters.EndpointFilter.from_json(
            {
                "channel_type": ["EMAIL", "SMS"],
                "location": {"country": ["FR"]},
                "attributes": {"interests": ["music"]},
            }
        ),
    )
    expected = {
        eid
        for eid, body in sent.items()
        if body["channel_type"] in ("EMAIL", "SMS")
        and body["location"]["country"] == "FR"
        and "music" in body["attributes"]["interests"]
    }
    assert 0 < len(expected) < len(sent)
    job = run(world.engine, export(world, segment_id=chosen.id))
    assert job.status == "COMPLETED", job.failures
    assert job.total_processed == len(expected)
    records = check_manifest(world, folder_of(job))
    assert sorted(r["Id"] for r in records) == sorted(expected)


@pytest.fixture
def role_arn(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    """A role trusting the project's External ID, allowed on the bucket; Spillway's own
    identity (a moto user allowed to assume it) reaches STS and S3 through AWS_ENDPOINT_URL_*."""
    iam: Any = world.s3.moto.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": world.external_id}},
        }
    )
    name = "SpillwayJobs-" + uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    arn = f"arn:aws:s3:::{world.s3.bucket}"
    iam.put_role_policy(
        RoleName=name, PolicyName="s3", PolicyDocument=policy(allow("s3:*", [arn, f"{arn}/*"]))
    )
    service = world.s3.user(allow("sts:AssumeRole", role["Arn"]))
    as_operator(monkeypatch, world.s3.moto, service, "sts", "s3")
    return str(role["Arn"])


def test_s3_url_prefix_with_a_role(world: World, role_arn: str) -> None:
    sent = seed(world.engine, world.actor.project_id, 3_000, users=1_000)
    target = jobs_service.Target(s3_url=f"s3://{world.s3.bucket}/pinpoint/out", role_arn=role_arn)
    job = run(world.engine, export(world, target=target, max_records_per_piece=1_000))
    assert job.status == "COMPLETED", job.failures
    assert job.total_processed == 3_000 and job.completed_pieces == job.total_pieces == 3
    records = check_manifest(world, f"pinpoint/out/{job.id}")
    assert Counter(r["Id"] for r in records) == Counter(sent.keys())
    for record in records:
        expect_pinpoint(record, sent[record["Id"]], world.app_id)


# --- 2. users and event counts --------------------------------------------------------------------


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_users_and_event_counts_equal_what_was_sent(world: World) -> None:
    pid = world.actor.project_id
    users = [f"u-{n:02d}" for n in range(30)]
    # Each user's first endpoint, then (later, so it wins a clash) a second one for even users.
    first = {
        f"{u}-a": {"user_id": u, "user_attributes": {"plan": ["free"], "city": ["Paris"]}}
        for u in users
    }
    first["anonymous"] = {"channel_type": "EMAIL", "address": "x@example.com"}
    upsert(world.engine, pid, first)
    time.sleep(0.01)
    second = {f"{u}-b": {"user_id": u, "user_attributes": {"plan": ["pro"]}} for u in users[::2]}
    upsert(world.engine, pid, second)

    rng = random.Random(11)
    events: list[dict[str, Any]] = []
    for _ in range(600):
        day = rng.randrange(-1, 4)  # days -1 and 3 lie outside the counted range
        events.append(
            {
                "event_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "uid": rng.choice(
                    [*users[:-1], "ghost"]
                ),  # u-29 sends nothing; ghost has no endpoint
                "event_time": D0 + day * DAY_S + rng.randrange(DAY_S),
                "event_type": "USER_ACTION_EVENT",
                "event_name": rng.choice(["open", "buy", "view"]),
            }
        )
    send_events(world.engine, pid, events)

    job = run(world.engine, export(world, "users", max_records_per_piece=7))
    assert job.status == "COMPLETED", job.failures
    rows = check_manifest(world, folder_of(job))
    assert job.total_processed == len(rows) == 30
    expected = []
    for u in users:
        mine = [e["event_time"] for e in events if e["uid"] == u]
        expected.append(
            {
                "user_id": u,
                "endpoints": [f"{u}-a", f"{u}-b"] if u in users[::2] else [f"{u}-a"],
                "user_attributes": {
                    "plan": ["pro"] if u in users[::2] else ["free"],
                    "city": ["Paris"],
                },
                "first_event_at": iso(min(mine)) if mine else None,
                "last_event_at": iso(max(mine)) if mine else None,
                "event_count": len(mine),
            }
        )
    assert rows == expected

    start, end = D0, D0 + 3 * DAY_S
    job = run(
        world.engine,
        export(
            world,
            "event_counts",
            format="csv",
            compression="none",
            start_ms=start * 1000,
            end_ms=end * 1000,
        ),
    )
    assert job.status == "COMPLETED", job.failures
    [key] = [k for k in world.keys(folder_of(job) + "/") if k.endswith(".csv")]
    counted = [
        (r["day"], r["event_name"], int(r["events"]), int(r["users"]))
        for r in csv.DictReader(io.StringIO(world.read(key).decode()))
    ]
    inside = [e for e in events if start <= e["event_time"] < end]
    figures: dict[tuple[str, str], list[str]] = {}
    for e in inside:
        day = dt.datetime.fromtimestamp(e["event_time"], tz=dt.UTC).strftime("%Y-%m-%d")
        figures.setdefault((day, e["event_name"]), []).append(e["uid"])
    assert counted == [
        (day, name, len(uids), len(set(uids))) for (day, name), uids in sorted(figures.items())
    ]
    assert {day for day, *_ in counted} == {"2026-11-20", "2026-11-21", "2026-11-22"}
    assert job.total_processed == len(counted)


# --- 3. imports -----------------------------------------------------------------------------------


def stored(engine: Engine, project_id: int) -> dict[str, dict[str, Any]]:
    """Every stored endpoint of the project, without what differs between projects and times."""
    found: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while True:
        with engine.connect() as conn:
            page = endpoint_store.list_endpoints(conn, project_id, limit=1_000, after=after)
        for record in page:
            found[record.endpoint_id] = {
                k: v
                for k, v in record.columns().items()
                if k not in ("project_id", "created_at", "updated_at")
            }
        if len(page) < 1_000:
            return found
        after = page[-1].endpoint_id


def test_an_export_imported_into_a_fresh_project_reproduces_every_endpoint(
    world: World, engine: Engine, s3_world: S3World
) -> None:
    seed(engine, world.actor.project_id, 2_000, users=700)
    exported = run(engine, export(world, max_records_per_piece=700))
    assert exported.status == "COMPLETED", exported.failures

    fresh = make_world(engine, s3_world, "fresh")
    job = run(engine, import_(fresh, exported.id))
    assert job.status == "COMPLETED", job.failures
    assert job.total_pieces == job.completed_pieces == 3  # the manifest is not data
    assert job.total_processed == 2_000 and job.total_failures == 0
    before = stored(engine, world.actor.project_id)
    after = stored(engine, fresh.actor.project_id)
    assert len(after) == 2_000
    assert after == before


def test_malformed_lines_are_reported_by_line_and_the_rest_imported(world: World) -> None:
    good = [
        orjson.dumps({"Id": f"m-{n}", "ChannelType": "EMAIL", "Address": f"m{n}@example.com"})
        for n in range(7)
    ]
    body = [
        good[0],
        good[1],
        b'{"Id": "broken", ',  # line 3: not JSON
        good[2],
        good[3],
        b"[1, 2]",  # line 6: not an object
        good[4],
        good[5],
        orjson.dumps({"Id": "pigeon", "ChannelType": "PIGEON"}),  # line 9: refused by the API
        good[6],
    ]
    world.put("exports/incoming/audience.json", b"\n".join(body) + b"\n")
    job = run(world.engine, import_(world, "incoming"))
    assert job.status == "COMPLETED", job.failures
    assert job.total_failures == 3 and job.total_processed == 7
    assert len(job.failures) == 3
    for failure, line in zip(job.failures, (3, 6, 9), strict=True):
        assert f"exports/incoming/audience.json line {line}:" in failure
    assert "channel_type" in job.failures[2]
    assert sorted(stored(world.engine, world.actor.project_id)) == [f"m-{n}" for n in range(7)]


def test_an_import_defines_a_segment_of_exactly_what_it_stored(
    world: World, engine: Engine, s3_world: S3World
) -> None:
    # Another endpoint already in the project, and one line the import refuses: neither may
    # be in the segment; a second import asking for the same name says why it made none.
    upsert(engine, world.actor.project_id, {"already-here": {"channel_type": "EMAIL"}})
    body = [orjson.dumps({"Id": f"s-{n}", "ChannelType": "SMS"}) for n in range(40)]
    body.append(orjson.dumps({"Id": "refused", "ChannelType": "PIGEON"}))
    world.put("exports/audience/part-1.json", b"\n".join(body[:25]) + b"\n")
    world.put("exports/audience/part-2.json", b"\n".join(body[25:]) + b"\n")
    job = run(engine, import_(world, "audience", define_segment="imported"))
    assert job.status == "COMPLETED", job.failures
    assert (job.total_processed, job.total_failures) == (40, 1)
    [made] = [s for s in segments.list_all(engine, world.actor.project_id) if s.name == "imported"]
    selected = segments.size(engine, world.actor.project_id, made.filter)
    assert selected == 40
    assert sorted(made.filter.endpoint_ids or ()) == sorted(f"s-{n}" for n in range(40))
    again = run(engine, import_(world, "audience", define_segment="imported"))
    assert again.status == "COMPLETED"
    assert any("segment 'imported' not defined" in f for f in again.failures), again.failures


def test_a_csv_with_pinpoint_column_names_is_imported(world: World) -> None:
    text = (
        "Id,ChannelType,Address,User.UserId,User.UserAttributes.plan,Attributes.interests,"
        "Location.Country,Location.Latitude,Demographic.Platform,Metrics.score\n"
        'c-1,EMAIL,c1@example.com,user-1,pro,"[""music"",""news""]",FR,48.85,ios,7\n'
        "c-2,SMS,+33600000000,user-2,free,sports,DE,,android,\n"
    )
    world.put("exports/csv/audience.csv", text.encode())
    job = run(world.engine, import_(world, "csv", format="csv"))
    assert job.status == "COMPLETED", job.failures
    assert job.total_processed == 2 and job.total_failures == 0
    found = stored(world.engine, world.actor.project_id)
    one, two = found["c-1"], found["c-2"]
    assert (one["channel_type"], one["address"], one["user_id"]) == (
        "EMAIL",
        "c1@example.com",
        "user-1",
    )
    assert one["user_attributes"] == {"plan": ["pro"]}
    assert one["attributes"] == {"interests": ["music", "news"]}
    assert one["location"] == {"country": "FR", "latitude": 48.85}
    assert one["demographic"] == {"platform": "ios"}
    assert one["metrics"] == {"score": 7.0}
    assert (two["channel_type"], two["user_id"], two["attributes"]) == (
        "SMS",
        "user-2",
        {"interests": ["sports"]},
    )


# --- 4. credentials that fail mid-job, snapshot, cancel -------------------------------------------


def after_piece(
    monkeypatch: pytest.MonkeyPatch, when: int, action: Callable[[], None]
) -> list[str]:
    """Run ``action`` right after the ``when``-th piece is written; the keys written."""
    original = piece_io.write_piece
    written: list[str] = []

    def write_piece(target: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        result = original(target, key, *args, **kwargs)
        written.append(key)
        if len(written) == when:
            action()
        return result

    monkeypatch.setattr(piece_io, "write_piece", write_piece)
    return written


def revoke_key(world: World) -> None:
    iam: Any = world.s3.moto.client("iam")
    for key in iam.list_access_keys(UserName=world.user_name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=world.user_name, AccessKeyId=key["AccessKeyId"])


def revoke_policy(world: World) -> None:
    iam: Any = world.s3.moto.client("iam")
    iam.delete_user_policy(UserName=world.user_name, PolicyName="p")


@pytest.mark.parametrize(
    ("revoke", "says"),
    [
        (revoke_key, ("access key", "check it was copied whole, that the key is active")),
        (revoke_policy, ("access denied", "the iam policy or bucket policy does not allow")),
    ],
    ids=["key deleted", "policy deleted"],
)
def test_credentials_failing_mid_job_fail_the_job_saying_what_to_fix(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    revoke: Callable[[World], None],
    says: tuple[str, ...],
) -> None:
    seed(world.engine, world.actor.project_id, 500, users=100)
    written = after_piece(monkeypatch, 2, lambda: revoke(world))
    job = run(world.engine, export(world, max_records_per_piece=100))
    assert job.status == "FAILED"  # never COMPLETED with pieces missing
    assert job.total_pieces == 5 and job.completed_pieces == 2 and len(written) == 2
    assert job.total_processed == 200
    reason = " ".join(job.failures).lower()
    assert all(words in reason for words in says), job.failures  # what failed and what to fix
    assert world.keys(folder_of(job) + "/") == sorted(written)  # no manifest of a partial job
    _, shown = jobs_service.get(world.engine, world.actor.project_id, job.id, "export")
    assert [p.key for p in shown if p.status == "done"] == written


def test_endpoints_changed_after_planning_appear_once_as_they_were(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = world.actor.project_id
    sent = seed(world.engine, pid, 12, users=4)

    def change() -> None:
        upsert(
            world.engine,
            pid,
            {
                endpoint_id(11): {"attributes": {"interests": ["changed"]}, "address": "new@x"},
                endpoint_id(5): {"opt_out": "ALL"},
                "ep-999999": endpoint(999_999, 4),  # sorts last: would land in the last piece
            },
        )

    after_piece(monkeypatch, 1, change)
    job = run(world.engine, export(world, max_records_per_piece=4))
    assert job.status == "COMPLETED", job.failures
    assert job.total_pieces == 3 and job.total_processed == 12
    records = check_manifest(world, folder_of(job))
    assert Counter(r["Id"] for r in records) == Counter(sent.keys())
    for record in records:
        expect_pinpoint(record, sent[record["Id"]], world.app_id)
    now = stored(world.engine, pid)  # the changes did happen
    assert now[endpoint_id(11)]["address"] == "new@x" and "ep-999999" in now


@pytest.mark.parametrize("when", ["planned", "one piece done"])
def test_a_cancelled_job_stops_and_stays_cancelled(
    world: World, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    seed(world.engine, world.actor.project_id, 12, users=4)
    job = export(world, max_records_per_piece=2)

    def cancel() -> None:
        jobs_service.cancel(world.engine, world.actor, job.id, "export")

    written = after_piece(monkeypatch, 1, cancel) if when == "one piece done" else []
    if when == "planned":
        cancel()
    for _ in range(3):  # later passes leave it alone
        ended = run(world.engine, job, passes=1)
        assert ended.status == "CANCELLED"
    assert ended.completed_pieces == len(written) and ended.total_processed == 2 * len(written)
    assert world.keys(folder_of(job) + "/") == written  # stopped: no more pieces, no manifest
    with pytest.raises(Conflict):
        cancel()


def test_a_project_cannot_queue_jobs_without_end(world: World) -> None:
    """One thread serves every project's jobs: a project has at most a few unfinished."""
    from spillway.errors import RateLimited

    queued = [export(world) for _ in range(jobs_service.MAX_UNFINISHED)]
    with pytest.raises(RateLimited, match="have not finished"):
        export(world)
    jobs_service.cancel(world.engine, world.actor, queued[0].id, "export")
    export(world)  # room again once one has ended
