"""Prometheus metrics, exposed at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
EXPORT_GAP_EVENTS = Counter(
    "spillway_export_gap_events",
    "Events removed by retention before an export delivered them",
    ["export"],
)
