"""New events, told across processes: PostgreSQL ``NOTIFY`` / ``LISTEN`` on one channel.

The ingest writer nudges stream delivery in its own process; a ``spillway worker`` (or another
``spillway serve``) sharing the database hears of new events only through the database. Without
this, a stream in another process waits for its poll (``SPILLWAY_STREAM_POLL_SECONDS``).

- :func:`notify_new_events` sends one notification (inside the caller's transaction when given
  a connection: PostgreSQL delivers it at commit, never for a rolled-back insert).
- :class:`Notifier` is what the ingest writer's listeners call after each commit: it only sets
  a flag, and a thread of its own sends at most one notification per ``min_interval`` (the
  commit after a quiet spell at once, a stream of commits coalesced), so ingest never waits.
- :class:`EventListener` holds a dedicated connection on ``LISTEN`` and calls back on each
  notification; it reconnects with back-off when the database goes away, and calls back once
  on every (re)connection, since notifications sent while it was away are lost.

All of it is a no-op on SQLite (one process: the in-process nudge is enough).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

CHANNEL = "spillway_events"
# Work queued through the API (run now, a backfill, a job): a serve without a worker of its own
# tells the workers of other processes, which would otherwise wait for their next tick.
WORK_CHANNEL = "spillway_work"
# A connection that has said nothing for this long is probed, so a dead peer is noticed even
# when no notification comes (a silent network partition).
PROBE_SECONDS = 15.0


def is_postgres(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to PostgreSQL (the only dialect with NOTIFY)."""
    return engine.dialect.name == "postgresql"


def notify_new_events(target: Engine | Connection, channel: str = CHANNEL) -> None:
    """Tell every listener that events were committed (or, given a connection inside a
    transaction, will be at its commit); ``WORK_CHANNEL`` for queued work. Nothing on SQLite."""
    if not is_postgres(target):
        return
    statement = sa.text(f"NOTIFY {channel}")
    if isinstance(target, Connection):
        target.execute(statement)
        return
    with target.connect() as conn:
        conn.execute(statement)
        conn.commit()


class Notifier:
    """Coalescing sender: call it after each ingest commit; a background thread sends."""

    def __init__(
        self, engine: Engine, *, min_interval: float = 0.02, channel: str = CHANNEL
    ) -> None:
        self._engine = engine
        self._channel = channel
        self._min_interval = min_interval
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="spillway-notify", daemon=True)

    def __call__(self) -> None:
        """Events were committed (cheap: called from the ingest writer's thread)."""
        self._pending.set()

    def start(self) -> None:
        """Start the sending thread."""
        self._thread.start()

    def stop(self) -> None:
        """Send what is pending, then stop."""
        self._stop.set()
        self._pending.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self._pending.wait()
            if self._stop.is_set() and not self._pending.is_set():
                return
            self._pending.clear()
            self._send()
            if self._stop.is_set():
                return
            # Commits during this pause are coalesced into the next notification.
            self._stop.wait(self._min_interval)

    def _send(self) -> None:
        try:
            notify_new_events(self._engine, self._channel)
        except Exception as exc:  # the workers fall back to polling; ingest goes on
            if not self._failing:
                log.warning("could not notify the workers of new events: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("notifying the workers of new events again")
        self._failing = False


class EventListener:
    """A thread on ``LISTEN spillway_events`` that calls ``callback`` on each notification
    (and, when given, on ``LISTEN spillway_work`` calling ``on_work``)."""

    def __init__(
        self,
        engine: Engine,
        callback: Callable[[], None],
        *,
        on_work: Callable[[], None] | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
        wait_seconds: float = 1.0,
    ) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._callbacks = {CHANNEL: callback}
        if on_work is not None:
            self._callbacks[WORK_CHANNEL] = on_work
        self._backoff = backoff
        self._wait = wait_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spillway-listen", daemon=True)
        self.connected = threading.Event()  # set while LISTEN is in place (for tests, health)
        self.connections = 0  # how many times it (re)connected

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._wait + 5)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                self._listen()
                delay = self._backoff[0]
            except Exception as exc:  # the database went away: poll meanwhile, come back
                self.connected.clear()
                log.warning("listening for new events failed (%s); again in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
            for channel in self._callbacks:
                conn.execute(f"LISTEN {channel}")
            self.connections += 1
            self.connected.set()
            for channel in self._callbacks:  # what came while nobody listened is seen now
                self._call(channel)
            quiet_since = time.monotonic()
            while not self._stop.is_set():
                heard = False
                for notice in conn.notifies(timeout=self._wait):
                    heard = True
                    self._call(notice.channel)
                if heard:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > PROBE_SECONDS:
                    conn.execute("SELECT 1")  # raises when the server is gone
                    quiet_since = time.monotonic()
        self.connected.clear()

    def _call(self, channel: str) -> None:
        callback = self._callbacks.get(channel)
        if callback is None:
            return
        try:
            callback()
        except Exception:  # a callback's failure must not end the listening
            log.exception("the %s callback failed", channel)


def listener_for(
    engine: Engine, callback: Callable[[], None], on_work: Callable[[], None] | None = None
) -> EventListener | None:
    """A started listener on PostgreSQL; None on SQLite."""
    if not is_postgres(engine):
        return None
    listener = EventListener(engine, callback, on_work=on_work)
    listener.start()
    return listener


def notifier_for(engine: Engine, channel: str = CHANNEL) -> Notifier | None:
    """A started notifier on PostgreSQL; None on SQLite."""
    if not is_postgres(engine):
        return None
    notifier = Notifier(engine, channel=channel)
    notifier.start()
    return notifier
