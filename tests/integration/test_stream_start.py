"""A stream created with a past ``start`` sends the retained history first, then what follows,
each event once (issue 9, item 3); the default start sends only what comes after creation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from spillway.store.db import create_engine, migrate
from tests.integration.streaming import create_stream, event_uuid, make_stream_setup, read_stream
from tests.server_moto import Moto


def test_a_stream_with_start_retention_sends_the_history_once(tmp_path: Path, moto: Moto) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    try:
        setup = make_stream_setup(engine, moto)
        history = setup.ingest(300, users=40)
        everything, fresh = create_stream(moto, shards=1), create_stream(moto, shards=1)
        setup.export(setup.destination("kinesis", {"stream": everything}), start="retention")
        setup.export(setup.destination("kinesis", {"stream": fresh}))
        later = setup.ingest(200, users=40)
        delivery = setup.delivery()
        setup.drain(delivery)
        more = setup.ingest(50, users=40)
        setup.drain(delivery)
        sent = [event_uuid(data) for _, data in read_stream(moto, everything)]
        assert Counter(sent) == Counter(history + later + more)
        sent = [event_uuid(data) for _, data in read_stream(moto, fresh)]
        assert Counter(sent) == Counter(later + more)
    finally:
        engine.dispose()
