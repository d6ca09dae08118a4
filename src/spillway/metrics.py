"""Prometheus metrics, exposed at ``/metrics``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

EVENTS_ACCEPTED = Counter("spillway_events_accepted", "Events stored by ingest")
EVENTS_REJECTED = Counter("spillway_events_rejected", "Events refused by ingest as invalid")
EVENTS_DUPLICATE = Counter("spillway_events_duplicate", "Events skipped as already stored")
EVENTS_PRUNED = Counter("spillway_events_pruned", "Events removed by retention")
REQUEST_LATENCY = Histogram(
    "spillway_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Stream exports, per export id.
STREAM_SENT = Counter(
    "spillway_stream_records_sent", "Records acknowledged by the stream", ["export"]
)
STREAM_RETRIED = Counter(
    "spillway_stream_records_retried", "Records resent after a partial failure", ["export"]
)
STREAM_DEAD_LETTERED = Counter(
    "spillway_stream_records_dead_lettered", "Records the stream can never accept", ["export"]
)
STREAM_REDELIVERED = Counter(
    "spillway_stream_records_redelivered",
    "Records resent after a restart that may already have been delivered",
    ["export"],
)
STREAM_LAG_EVENTS = Gauge("spillway_stream_lag_events", "Events not yet delivered", ["export"])
STREAM_LAG_SECONDS = Gauge(
    "spillway_stream_lag_seconds", "Age of the oldest event not yet delivered", ["export"]
)
_lagged: set[str] = set()  # exports with lag series, so they can be taken away again
_lag_lock = threading.Lock()


def set_stream_lag(export_id: str, events: int, seconds: int) -> None:
    """Set a stream export's lag gauges."""
    with _lag_lock:
        STREAM_LAG_EVENTS.labels(export_id).set(events)
        STREAM_LAG_SECONDS.labels(export_id).set(seconds)
        _lagged.add(export_id)


def keep_stream_lag(live: set[str]) -> None:
    """Take away the lag series of every export not in ``live`` (disabled or deleted since):
    a lag nobody works off would stay frozen, and alert, forever."""
    with _lag_lock:
        for export_id in _lagged - live:
            STREAM_LAG_EVENTS.remove(export_id)
            STREAM_LAG_SECONDS.remove(export_id)
        _lagged.intersection_update(live)


EXPORT_GAP_EVENTS = Counter(
    "spillway_export_gap_events",
    "Events removed by retention before an export delivered them",
    ["export"],
)


# --- Exports at a glance, file exports and streams alike -----------------------------------
#
# Counters (``spillway_export_runs_total``, ``spillway_export_events_total``) count what the
# worker in this process did since it started, as Prometheus counters do (rate() and
# increase() take restarts in their stride). The gauges are read from the database at each
# scrape, so they are right after a restart, and whichever process serves /metrics. Series
# exist for every export that is not deleted (counters from 0), and go when it is deleted.

_lock = threading.Lock()
_runs: dict[tuple[str, str], int] = {}  # (export id, "succeeded" | "failed") -> runs
_events: dict[str, int] = {}  # export id -> events delivered


def count_run(export_id: str, status: str, events: int = 0) -> None:
    """One run ended (a file export's run attempt, a stream's batch or failed pass)."""
    with _lock:
        _runs[(export_id, status)] = _runs.get((export_id, status), 0) + 1
        if events:
            _events[export_id] = _events.get(export_id, 0) + events


class ExportCollector(Collector):
    """The per-export families of ``/metrics``; built for one scrape, on one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        from spillway.store.export_status import health

        with self.engine.connect() as conn:
            exports = health(conn)
        with _lock:
            runs, events = dict(_runs), dict(_events)
        labels = ["export", "name"]
        run_counts = CounterMetricFamily(
            "spillway_export_runs",
            "Runs ended, by outcome: a file export's run attempts; a stream's batches "
            "(succeeded: acknowledged) and failed delivery passes",
            labels=[*labels, "status"],
        )
        delivered = CounterMetricFamily(
            "spillway_export_events",
            "Events delivered (records written or acknowledged)",
            labels=labels,
        )
        last_success = GaugeMetricFamily(
            "spillway_export_last_success_timestamp_seconds",
            "When the export last delivered successfully (a run succeeded, a stream batch was "
            "acknowledged), Unix time",
            labels=labels,
        )
        failing = GaugeMetricFamily(
            "spillway_exports_failing", "Exports (file or stream) currently failing"
        )
        for export in exports:
            names = [export.export_id, export.name]
            for status in ("succeeded", "failed"):
                run_counts.add_metric([*names, status], runs.get((export.export_id, status), 0))
            delivered.add_metric(names, events.get(export.export_id, 0))
            if export.last_success_at is not None:
                last_success.add_metric(names, export.last_success_at / 1000)
        failing.add_metric([], sum(1 for export in exports if export.status == "failing"))
        yield from (run_counts, delivered, last_success, failing)


def exposition(engine: Engine) -> bytes:
    """The whole ``/metrics`` text: the process's metrics, then the exports' families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExportCollector(engine))
    return generate_latest(REGISTRY) + generate_latest(registry)
