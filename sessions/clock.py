"""Time as a dependency.

Visit limits, credential windows and review deadlines all depend on "now"; the
domain never calls ``datetime.now()`` itself so tests (and a restarted server)
can state exactly what time it is. All instants are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: for tests and the demo's replay."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_aware(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = ensure_aware(when)


def ensure_aware(when: datetime) -> datetime:
    """Reject naive datetimes early: a naive instant in a facility with its own
    time zone is a bug waiting to happen."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {when!r}")
    return when
