"""Helpers for stream tests: a project streaming to a moto Kinesis stream or Firehose."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.demo import synthetic_events
from spillway.engine.streamer import StreamDelivery
from spillway.ingest import Limits, judge
from spillway.model import Actor, Destination, Export
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.store.events import insert_events
from tests.server_moto import REGION, Moto

LIMITS = Limits(10**9, 10**6, 4 * 1024 * 1024)


def create_stream(moto: Moto, shards: int = 4) -> str:
    """A new ACTIVE Kinesis stream on moto; returns its name."""
    name = "spw-" + uuid.uuid4().hex[:10]
    kinesis: Any = moto.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


def read_stream(moto: Moto, name: str) -> list[tuple[str, bytes]]:
    """Every record of every shard as (partition key, data), each shard in its order."""
    kinesis: Any = moto.client("kinesis")
    out: list[tuple[str, bytes]] = []
    shards = kinesis.list_shards(StreamName=name)["Shards"]
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend((r["PartitionKey"], bytes(r["Data"])) for r in answer["Records"])
            if not answer["Records"]:  # moto answers everything at once: empty means done
                break
            iterator = answer.get("NextShardIterator")
    return out


def event_uuid(record: bytes) -> str:
    """The event uuid inside a record of either format."""
    body = orjson.loads(record)
    if "event" in body:
        return str(body["event"]["event_uuid"])
    return str(body["attributes"]["event_uuid"])


@dataclass
class StreamSetup:
    engine: Engine
    box: SecretBox
    moto: Moto
    project_id: int
    actor: Actor
    sent: list[tuple[str, str]] = field(default_factory=list)  # (uid, uuid) in ingest order
    seed: int = 0

    def destination(self, kind: str, config: dict[str, Any], *, force: bool = False) -> Destination:
        body = {
            "name": f"{kind}-{uuid.uuid4().hex[:6]}",
            "kind": kind,
            "config": {"region": REGION, "endpoint_url": self.moto.endpoint, **config},
            "credentials": {
                "mode": "access_key",
                "access_key_id": self.moto.admin_key,
                "secret_access_key": self.moto.admin_secret,
            },
        }
        if force:
            body["force"] = True
        row, _ = destination_service.create(self.engine, self.box, self.actor, body)
        return row

    def export(self, destination: Destination, **settings: Any) -> Export:
        body = api_models.ExportIn(
            name="stream-" + uuid.uuid4().hex[:6],
            destination_id=destination.id,
            frequency="stream",
            **settings,
        )
        return export_service.create(self.engine, self.actor, body)

    def ingest(self, count: int, users: int = 1_000, **overrides: Any) -> list[str]:
        """Store ``count`` synthetic events now; returns their uuids in ingest order."""
        self.seed += 1
        raw = list(synthetic_events(count, seed=self.seed * 7919, users=users))
        for event in raw:
            event.update(overrides)
        return self.ingest_raw(raw)

    def ingest_raw(self, raw: list[dict[str, Any]], received_ms: int | None = None) -> list[str]:
        """Store ``raw`` as received at ``received_ms`` (default: now); their uuids."""
        received = int(time.time() * 1000) if received_ms is None else received_ms
        judged = judge(raw, received, LIMITS)
        assert not judged.rejected, judged.rejected
        insert_events(self.engine, self.project_id, received, judged.rows)
        ids = [str(uuid.UUID(bytes=row[1])) for row in judged.rows]  # rows hold the 16 bytes
        self.sent += [(row[4], key) for row, key in zip(judged.rows, ids, strict=True)]
        return ids

    def delivery(self, **kwargs: Any) -> StreamDelivery:
        kwargs.setdefault("linger_ms", 0)
        return StreamDelivery(self.engine, self.box, **kwargs)

    def drain(self, delivery: StreamDelivery, rounds: int = 200) -> int:
        """Pass until a pass sends nothing; returns the records sent."""
        total = 0
        for _ in range(rounds):
            sent = delivery.pass_once()
            total += sent
            if not sent:
                return total
        raise AssertionError("the stream did not catch up")

    def expected_by_user(self) -> dict[str, list[str]]:
        by_user: dict[str, list[str]] = defaultdict(list)
        for uid, event in self.sent:
            by_user[uid].append(event)
        return by_user


def make_stream_setup(engine: Engine, moto: Moto) -> StreamSetup:
    box = SecretBox(b"k" * 48)
    project = create_project(engine, "acme-" + uuid.uuid4().hex[:6])
    return StreamSetup(engine, box, moto, project.id, Actor("test", project.id))
