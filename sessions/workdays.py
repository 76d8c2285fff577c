"""Working days for the review deadline (5 working days, statutory holidays
excluded, make-up working days 调休 counted).

The State Council announces each year's holidays late in the year before;
``chinese_calendar`` ships the years announced when it was released and raises
for later ones. An admin therefore enters next year's announced days as
overrides; for a year nobody has entered we fall back to "Monday to Friday"
and say so on the deadline, because a wrong-but-flagged deadline is better than
a crashed review queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar

REVIEW_WORKING_DAYS = 5


@dataclass(frozen=True)
class CalendarOverride:
    """One announced day: a holiday on a weekday, or a make-up working day on a weekend."""

    day: date
    is_workday: bool
    note: str = ""


@dataclass(frozen=True)
class Deadline:
    due: date
    #: Years whose holidays nobody knows yet: the due date counts weekends only there.
    unconfirmed_years: tuple[int, ...] = ()

    @property
    def is_estimate(self) -> bool:
        return bool(self.unconfirmed_years)

    def warning(self, lang: str = "zh") -> str | None:
        if not self.unconfirmed_years:
            return None
        years = "、".join(str(y) for y in self.unconfirmed_years)
        if lang == "zh":
            return f"{years}年的法定节假日尚未录入，截止日期仅按周末推算，请管理员录入节假日安排"
        years_en = ", ".join(str(y) for y in self.unconfirmed_years)
        return (
            f"The public holidays of {years_en} have not been entered; "
            "the deadline counts weekends only until an admin enters them"
        )


class WorkdayCalendar:
    def __init__(self, overrides: Iterable[CalendarOverride] = ()) -> None:
        self._overrides = {o.day: o.is_workday for o in overrides}
        self._entered_years = {d.year for d in self._overrides}

    def is_workday(self, day: date) -> tuple[bool, bool]:
        """``(is_workday, confirmed)``: confirmed is False when we only guessed from the weekday."""
        if day in self._overrides:
            return self._overrides[day], True
        try:
            return bool(chinese_calendar.is_workday(day)), True
        except NotImplementedError:
            return day.weekday() < 5, day.year in self._entered_years

    def add_working_days(self, start: date, days: int = REVIEW_WORKING_DAYS) -> Deadline:
        """The ``days``-th working day after ``start`` (``start`` itself is not counted)."""
        if days < 1:
            raise ValueError("days must be positive")
        unconfirmed: set[int] = set()
        current, counted = start, 0
        while counted < days:
            current += timedelta(days=1)
            working, confirmed = self.is_workday(current)
            if not confirmed:
                unconfirmed.add(current.year)
            if working:
                counted += 1
        return Deadline(current, tuple(sorted(unconfirmed)))

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]``; used for "due soon" queues."""
        count, current = 0, start
        while current < end:
            current += timedelta(days=1)
            if self.is_workday(current)[0]:
                count += 1
        return count
