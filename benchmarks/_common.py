"""Helpers shared by the benchmark scripts: import path, synthetic rows, memory, tables."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # for `tests.*` (the test servers); `spillway` is installed
    sys.path.insert(0, str(ROOT))

from spillway.demo import synthetic_events  # noqa: E402
from spillway.ingest import Limits, judge  # noqa: E402
from spillway.store.events import EventRow  # noqa: E402

# Limits that never reject a synthetic event: the benchmarks measure throughput, not checks.
LIMITS = Limits(10**9, 10**6, 10**6)
MIB = 1024 * 1024


def event_batches(count: int, size: int, *, seed: int) -> list[list[dict[str, object]]]:
    """``count`` demo events (``spillway demo``'s generator) in batches of ``size``."""
    events = list(synthetic_events(count, users=10_000, seed=seed))
    return [events[i : i + size] for i in range(0, count, size)]


def judged_rows(count: int, *, seed: int, received_ms: int) -> list[EventRow]:
    """``count`` demo events, judged as the ingest API does: rows ready to insert."""
    raw = list(synthetic_events(count, users=10_000, seed=seed, start_time=1_763_856_000))
    return judge(raw, received_ms, LIMITS).rows


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark (VmHWM), in MiB.

    Unlike ``ru_maxrss``, VmHWM belongs to the address space, so a child started with
    fork + exec does not inherit its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells as aligned text: first column left, the others right-aligned."""
    columns = max(len(row) for row in rows)
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(columns)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
