"""Frequencies and their windows: every 15 minutes, hourly, daily, weekly, all in UTC."""

from __future__ import annotations

from enum import StrEnum

QUARTER = 15 * 60
HOUR = 3_600
DAY = 86_400
WEEK = 7 * DAY
# 1970-01-01 was a Thursday; Monday 1970-01-05 anchors the weekly grid.
_MONDAY = 4 * DAY


class Frequency(StrEnum):
    """How often an export writes files."""

    EVERY_15_MINUTES = "every_15_minutes"
    HOURLY = "hourly"  # windows end at every :00
    DAILY = "daily"
    WEEKLY = "weekly"

    @property
    def seconds(self) -> int:
        """Length of one window."""
        return {
            "every_15_minutes": QUARTER,
            "hourly": HOUR,
            "daily": DAY,
            "weekly": WEEK,
        }[self.value]


def floor(frequency: Frequency, epoch: int) -> int:
    """The latest window boundary at or before ``epoch``."""
    if frequency is Frequency.WEEKLY:
        return epoch - (epoch - _MONDAY) % WEEK
    return epoch - epoch % frequency.seconds


def next_end(frequency: Frequency, after: int) -> int:
    """The first window boundary strictly after ``after`` (epoch seconds).

    Used with the end of the last delivered window, so a frequency change simply continues on
    the new grid from where the cursor is: nothing lost, nothing twice.
    """
    return floor(frequency, after) + frequency.seconds


def due_ends(frequency: Frequency, last_end: int, now: int, limit: int = 1_000) -> list[int]:
    """Every window end in (last_end, now], oldest first (a catch-up after an outage)."""
    ends: list[int] = []
    end = next_end(frequency, last_end)
    while end <= now and len(ends) < limit:
        ends.append(end)
        end = next_end(frequency, end)
    return ends
