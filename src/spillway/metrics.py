"""Prometheus metrics, exposed at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
