"""The stream delivery loop: every event, as it arrives, to Kinesis or Firehose.

At least once, in ingest order, nothing silently dropped:

- rows are read forward from the export's cursor and packed within the service's limits;
- a partial failure resends exactly the failed records, in order, with backoff;
- the cursor moves only past acknowledged (or dead-lettered) records, in the same transaction
  that renews the export's lease, so a crash resends at most the one unacknowledged batch —
  and the number of records that may have been delivered twice is counted (``redelivered``);
- a record the service can never take (too large) goes to the dead-letter table with the
  reason, and the stream goes on.

A new event wakes the loop (:meth:`StreamDelivery.nudge`, called after each ingest commit); a
batch closes when full or when its oldest event has waited ``linger_ms``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from spillway import metrics
from spillway.destinations.base import DestinationError, RecordStream, StreamRecord
from spillway.engine import retry
from spillway.engine.loop import DeliveryLoop
from spillway.engine.records import Selection
from spillway.engine.status import destination_gone, destination_works, internal_error
from spillway.engine.stream_records import RecordFormat, StreamRecordEncoder
from spillway.engine.targets import TargetCache, tenant_for
from spillway.errors import TerminalError, TransientError
from spillway.model import Export, StreamState
from spillway.store import catalog, leases, runs, streams
from spillway.store.db import now_ms, write
from spillway.store.projects import project_by_id
from spillway.store.streams import StoredEvent

log = logging.getLogger(__name__)
# Give up on one batch after this long of transient errors: the export goes back to the
# queue with a back-off instead of holding its lease forever.
BATCH_PATIENCE_S = 120.0


@dataclass
class Packed:
    """One call's worth of records, and what it does to the cursor once acknowledged."""

    records: list[StreamRecord]
    through: int  # the cursor after this batch (covers dead letters too)
    dead: list[tuple[StoredEvent, int, str]]  # (event, size, reason)


def pack(
    stream: RecordStream, encoder: StreamRecordEncoder, rows: list[StoredEvent], start: int = 0
) -> tuple[Packed, int]:
    """Fill one call from ``rows[start:]``; returns the batch and the index after it."""
    limits = stream.limits
    records: list[StreamRecord] = []
    dead: list[tuple[StoredEvent, int, str]] = []
    call_bytes = 0
    through = rows[start].seq - 1 if start < len(rows) else 0
    index = start
    while index < len(rows) and len(records) < limits.max_records:
        event = rows[index]
        data = encoder.encode(event)
        size = limits.record_size(data, event.uid)
        if size > limits.max_record_bytes:
            dead.append(
                (
                    event,
                    size,
                    f"record is {size:,} bytes; {stream.kind} takes at most "
                    f"{limits.max_record_bytes:,} bytes per record",
                )
            )
        else:
            if call_bytes + size > limits.max_call_bytes:
                break
            records.append(StreamRecord(data, event.uid))
            call_bytes += size
        through = event.seq
        index += 1
    return Packed(records, through, dead), index


@dataclass
class StreamDelivery(DeliveryLoop):
    """Delivers every stream export of the database, one export at a time per worker."""

    owner: str = field(default_factory=lambda: f"streamer-{secrets.token_hex(6)}")
    linger_ms: int = 200
    poll_seconds: float = 1.0
    # Short: a restarted node waits at most this long for the lease its crashed self held.
    # Every batch commit renews it, and so does each retry of a slow batch.
    lease_ttl_ms: int = 15_000
    fetch_rows: int = 2_000
    sleep: Callable[[float], None] = time.sleep
    _new_events: threading.Event = field(default_factory=threading.Event)
    _targets: TargetCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Stream clients kept across passes while the destination stays the same (building one
        # loads the SDK's service model: far more work than a batch).
        self._targets = TargetCache(self.engine, self.box)

    def nudge(self) -> None:
        """New events were committed: deliver them now (called from the ingest writer)."""
        self._new_events.set()

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until ``stop``; sleeps only while there is nothing to send."""
        while not stop.is_set():
            self._new_events.clear()
            try:
                sent = self.pass_once()
            except Exception:  # the loop must outlive any single failure
                log.exception("stream pass failed; retrying in %.1fs", self.poll_seconds)
                sent = 0
            if not sent:
                self._new_events.wait(self.poll_seconds)
        self.close()

    def pass_once(self, budget_seconds: float = 2.0) -> int:
        """One pass over the stream exports; returns the records acknowledged."""
        with self.engine.connect() as conn:
            exports = [e for e in runs.live_exports(conn) if e.is_stream]
        sent = 0
        now = now_ms()
        for export in self._order(exports):
            if export.next_attempt_at and export.next_attempt_at > now:
                continue
            try:
                sent += self.serve_export(export.id, time.monotonic() + budget_seconds)
            except Exception as exc:  # one stream's trouble is that stream's alone
                log.exception("export %s: the stream pass failed; the others go on", export.id)
                try:
                    self._failed(export, internal_error(exc), terminal=False, failing=True)
                except Exception:  # the database itself is failing: the log is all there is
                    log.exception("export %s: could not record its failure", export.id)
        metrics.keep_stream_lag({export.id for export in exports})
        return sent

    def serve_export(self, export_id: str, deadline: float) -> int:
        """Deliver what one export has waiting (until ``deadline``) under its lease."""
        with self._held(export_id) as held:
            if held is None:
                return 0
            return self._serve(export_id, deadline)

    def _serve(self, export_id: str, deadline: float) -> int:
        with self.engine.connect() as conn:
            export = catalog.export_by_id(conn, export_id)
            if export is None or export.status == "disabled":
                return 0
            destination = catalog.destination_by_id(conn, export.destination_id)
            project = project_by_id(conn, export.project_id)
        if destination is None:
            # Deleted (the export was disabled then, and enabled again behind the API's back).
            self._failed(export, destination_gone(self.engine, export), terminal=True)
            return 0
        if project is None:
            self._failed(export, f"project {export.project_id} no longer exists", True)
            return 0
        try:
            stream = self._targets.get(destination, tenant_for(project))
        except Exception as exc:  # credentials unreadable, refused settings, anything else
            reason = self._opening_failed(destination, export, exc)
            self._failed(export, reason, terminal=True)
            return 0
        if not isinstance(stream, RecordStream):
            self._failed(export, f"destination {destination.name!r} is not a stream", True)
            return 0
        encoder = StreamRecordEncoder(
            cast(RecordFormat, export.settings.record_format),
            project.name,
            project.app_id,
            Selection.of(export.settings),
        )
        # Where the cursor is, as the pass moves it: the lag it leaves is measured from there.
        position = _Position(export.cursor_seq)
        try:
            sent = self._drain(export, stream, encoder, deadline, position)
            self._observe_lag(export, position.cursor)
        except leases.LeaseLost:
            log.warning("export %s: lease lost, another worker continues", export_id)
            return 0
        except TerminalError as exc:
            self._targets.forget(destination.id)
            reason = self._refused(destination, export, exc)
            self._failed(export, reason, terminal=True, cursor=position.cursor)
            return 0
        except TransientError as exc:
            self._failed(export, str(exc), terminal=False, cursor=position.cursor)
            return 0
        if sent:
            destination_works(self.engine, destination, export)
        if export.status == "failing" or export.status_reason:
            self._set_state(export, "active", None)
        return sent

    def close(self) -> None:
        """Release every cached stream client."""
        self._targets.close()

    def _drain(
        self,
        export: Export,
        stream: RecordStream,
        encoder: StreamRecordEncoder,
        deadline: float,
        position: _Position,
    ) -> int:
        """Send what waits after the cursor until ``deadline``; ``position`` follows the cursor
        as each batch commits. Returns the records acknowledged."""
        export_id = export.id
        names = export.settings.event_names
        with self.engine.connect() as conn:
            state = streams.state(conn, export_id)
        cursor = position.cursor
        if state.inflight_to > cursor:
            # The last process stopped with a batch unacknowledged: it goes again, and some of
            # it may already be in the stream. Say how many at most, once.
            with self.engine.connect() as conn:
                again = streams.count_between(
                    conn, export.project_id, cursor, state.inflight_to, names
                )
            if again:
                log.warning(
                    "export %s: resending %d records of an unacknowledged batch "
                    "(duplicates possible)",
                    export_id,
                    again,
                )
                state = state.but(redelivered=state.redelivered + again)
                metrics.STREAM_REDELIVERED.labels(export_id).inc(again)
            state = state.but(inflight_to=cursor)
            self._commit(export_id, cursor, state, [])
        sent = 0
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                rows, scanned = streams.rows_after(
                    conn, export.project_id, cursor, self.fetch_rows, names
                )
            if not rows:
                if scanned > cursor:
                    # Only events this export does not take, up to the high-water mark: the
                    # cursor moves past them, so lag and the next scan start after them.
                    state = state.but(inflight_to=scanned)
                    self._commit(export_id, scanned, state, [])
                    cursor = position.cursor = scanned
                break
            limits = stream.limits
            waited = now_ms() - rows[0].received_at
            if len(rows) < limits.max_records and waited < self.linger_ms:
                self.sleep((self.linger_ms - waited) / 1000)  # let the batch fill a little
                continue
            batch, start = _pack_scanned(stream, encoder, rows, 0, scanned)
            state = state.but(inflight_to=batch.through)
            self._commit(export_id, cursor, state, [])
            while True:
                progress = _Progress()
                try:
                    retried = self._send(stream, batch.records, export_id, progress)
                except DestinationError:
                    if not progress.acknowledged:
                        # Refused whole (bad credentials, a missing stream): none of this batch
                        # reached the stream, so none of it can arrive twice.
                        state = state.but(inflight_to=cursor)
                        with contextlib.suppress(leases.LeaseLost):
                            self._commit(export_id, cursor, state, [])
                    raise
                cursor = batch.through
                upcoming = None
                if start < len(rows) and time.monotonic() < deadline:
                    upcoming, start = _pack_scanned(stream, encoder, rows, start, scanned)
                # One commit acknowledges this batch and marks the next one in flight.
                state = state.but(
                    records_sent=state.records_sent + len(batch.records),
                    records_retried=state.records_retried + retried,
                    dead_lettered=state.dead_lettered + len(batch.dead),
                    last_sent_at=now_ms(),
                    inflight_to=upcoming.through if upcoming else cursor,
                )
                self._commit(export_id, cursor, state, batch.dead)
                position.cursor = cursor
                self._count(export_id, batch)
                sent += len(batch.records)
                if upcoming is None:
                    break
                batch = upcoming
        return sent

    def _count(self, export_id: str, batch: Packed) -> None:
        metrics.STREAM_SENT.labels(export_id).inc(len(batch.records))
        metrics.count_run(export_id, "succeeded", len(batch.records))
        if batch.dead:
            metrics.STREAM_DEAD_LETTERED.labels(export_id).inc(len(batch.dead))
            for event, _, reason in batch.dead:
                log.warning(
                    "export %s: event %s dead-lettered: %s", export_id, event.event_uuid, reason
                )

    def _send(
        self,
        stream: RecordStream,
        records: list[StreamRecord],
        export_id: str,
        progress: _Progress | None = None,
    ) -> int:
        """Send until every record is acknowledged; returns how many were resent.

        ``progress`` counts the records acknowledged so far, for the caller to know, when a
        call then fails as a whole, whether any of the batch reached the stream.
        """
        progress = progress if progress is not None else _Progress()
        pending = records
        attempt = 0
        resent = 0
        started = time.monotonic()
        while pending:
            try:
                results = stream.put_records(pending)
            except TransientError as exc:
                if time.monotonic() - started > BATCH_PATIENCE_S:
                    raise
                log.info("export %s: %s; backing off", export_id, exc)
                attempt += 1
                self._renew(export_id)
                self.sleep(retry.STREAM_BATCH.backoff_ms(attempt) / 1000)
                continue
            failed = [r for r, error in zip(pending, results, strict=True) if error is not None]
            progress.acknowledged += len(pending) - len(failed)
            if not failed:
                return resent
            codes = sorted({error for error in results if error is not None})
            log.info(
                "export %s: %d of %d records not accepted (%s); resending those",
                export_id,
                len(failed),
                len(pending),
                ", ".join(codes),
            )
            metrics.STREAM_RETRIED.labels(export_id).inc(len(failed))
            resent += len(failed)
            pending = failed
            attempt += 1
            if time.monotonic() - started > BATCH_PATIENCE_S:
                raise TransientError(
                    f"{len(failed)} records still refused after {attempt} attempts ({codes[0]})"
                )
            self._renew(export_id)
            self.sleep(retry.STREAM_BATCH.backoff_ms(attempt) / 1000)
        return resent

    def _renew(self, export_id: str) -> None:
        """Keep the lease while a batch is retried."""
        self._lease(export_id).renew()

    def _commit(
        self,
        export_id: str,
        cursor: int,
        state: StreamState,
        dead: list[tuple[StoredEvent, int, str]],
    ) -> None:
        """Move the cursor and counters, renewing the lease; LeaseLost if it was taken."""
        with write(self.engine) as conn:
            self._lease(export_id).renew(conn)
            for event, size, reason in dead:
                streams.add_dead_letter(conn, export_id, event, size, reason)
            streams.save_state(conn, state)
            catalog.update_export(conn, export_id, {"cursor_seq": cursor})

    def _observe_lag(self, export: Export, cursor: int) -> None:
        """Lag gauges from the cursor this pass left."""
        with self.engine.connect() as conn:
            lag = streams.lag(
                conn, export.project_id, cursor, now_ms(), export.settings.event_names
            )
        metrics.set_stream_lag(export.id, lag["events"], lag["seconds"])

    def _failed(
        self,
        export: Export,
        error: str,
        terminal: bool,
        *,
        failing: bool = False,
        cursor: int | None = None,
    ) -> None:
        """A pass over the export failed: the reason, a back-off, and (terminal, or
        ``failing``: an error nobody foresaw) the export turns ``failing``. ``cursor``: where
        the pass left it, when it moved it."""
        metrics.count_run(export.id, "failed")
        delay = retry.STREAM.delay_ms(1, terminal=terminal)
        with write(self.engine) as conn:
            catalog.update_export(
                conn,
                export.id,
                {"next_attempt_at": now_ms() + delay, "status_reason": error},
            )
        log.warning(
            "export %s: %s error, retrying in %ds: %s",
            export.id,
            "terminal" if terminal else "transient",
            delay // 1000,
            error,
        )
        self._observe_lag(export, export.cursor_seq if cursor is None else cursor)
        if (terminal or failing) and export.status != "failing":
            self._set_state(export, "failing", error)


@dataclass
class _Progress:
    """Records of one batch acknowledged so far (over its partial resends)."""

    acknowledged: int = 0


@dataclass
class _Position:
    """A stream export's cursor as a pass moves it."""

    cursor: int


def _pack_scanned(
    stream: RecordStream,
    encoder: StreamRecordEncoder,
    rows: list[StoredEvent],
    start: int,
    scanned: int,
) -> tuple[Packed, int]:
    """:func:`pack`; the batch that takes the last row carries the cursor to ``scanned``, past
    the events of other names the scan went over."""
    batch, index = pack(stream, encoder, rows, start)
    if index >= len(rows):
        batch.through = max(batch.through, scanned)
    return batch, index


class StreamThread:
    """Runs a :class:`StreamDelivery` beside the API (``serve``) or the worker."""

    def __init__(self, delivery: StreamDelivery) -> None:
        self.delivery = delivery
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=delivery.run_forever, args=(self._stop,), name="spillway-streams", daemon=True
        )

    def start(self) -> None:
        """Start delivering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stop.set()
        self.delivery.nudge()
        self._thread.join(timeout=30)
