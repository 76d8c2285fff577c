"""Five-working-day review deadlines over Chinese public holidays and make-up days.

Every expected date below is worked out by hand from the announced schedule:
2026 Spring Festival: off Sun 15 – Mon 23 Feb, make-up working Sat 14 Feb and Sat 28 Feb.
2026 Mid-autumn + National Day: off Fri 25 – Sun 27 Sep and Thu 1 – Wed 7 Oct, make-up
working Sun 20 Sep and Sat 10 Oct.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions.workdays import CalendarOverride, Deadline, WorkdayCalendar
from tests.unit._domain import has_cjk

CAL = WorkdayCalendar()


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        # Fri 13 Feb: Sat 14 (make-up) =1, 15–23 off, Tue 24 =2, 25 =3, 26 =4, Fri 27 =5.
        (date(2026, 2, 13), date(2026, 2, 27)),
        # Sat 14 Feb (itself a working day, but the start day never counts): 24..27 =1..4, Sat 28 =5.
        (date(2026, 2, 14), date(2026, 2, 28)),
        # Tue 24 Feb: 25 =1, 26 =2, 27 =3, Sat 28 (make-up) =4, Sun 1 Mar off, Mon 2 Mar =5.
        (date(2026, 2, 24), date(2026, 3, 2)),
        # Thu 12 Feb: Fri 13 =1, Sat 14 =2, 24 =3, 25 =4, 26 =5.
        (date(2026, 2, 12), date(2026, 2, 26)),
        # Submitted on a holiday (Wed 18 Feb): 24 =1, 25 =2, 26 =3, 27 =4, Sat 28 =5.
        (date(2026, 2, 18), date(2026, 2, 28)),
    ],
)
def test_spring_festival_2026_holidays_are_skipped_and_make_up_saturdays_count(
    submitted: date, due: date
) -> None:
    assert CAL.add_working_days(submitted, 5) == Deadline(due, ())


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        # Fri 18 Sep: Sat 19 off, Sun 20 (make-up) =1, Mon 21 =2, 22 =3, 23 =4, Thu 24 =5.
        (date(2026, 9, 18), date(2026, 9, 24)),
        # Thu 24 Sep: 25–27 off, Mon 28 =1, 29 =2, 30 =3, 1–7 Oct off, Thu 8 =4, Fri 9 =5.
        (date(2026, 9, 24), date(2026, 10, 9)),
        # Mon 28 Sep: 29 =1, 30 =2, Thu 8 Oct =3, Fri 9 =4, Sat 10 (make-up) =5.
        (date(2026, 9, 28), date(2026, 10, 10)),
        # Wed 30 Sep: Thu 8 Oct =1, 9 =2, Sat 10 =3, Sun 11 off, Mon 12 =4, Tue 13 =5.
        (date(2026, 9, 30), date(2026, 10, 13)),
        # Fri 2 Oct (holiday): 8 =1, 9 =2, Sat 10 =3, 12 =4, 13 =5.
        (date(2026, 10, 2), date(2026, 10, 13)),
    ],
)
def test_mid_autumn_and_national_day_2026_are_skipped_and_make_up_days_count(
    submitted: date, due: date
) -> None:
    assert CAL.add_working_days(submitted, 5) == Deadline(due, ())


def test_a_deadline_across_new_year_2027_without_overrides_is_an_estimate_not_an_error() -> None:
    # Wed 30 Dec 2026: Thu 31 =1 (2026, known); 2027 unknown so weekdays only:
    # Fri 1 Jan =2, Sat/Sun off, Mon 4 =3, Tue 5 =4, Wed 6 =5.
    deadline = CAL.add_working_days(date(2026, 12, 30), 5)
    assert deadline.due == date(2027, 1, 6)
    assert deadline.is_estimate is True
    assert deadline.unconfirmed_years == (2027,)
    zh = deadline.warning()
    assert zh is not None and "2027" in zh and has_cjk(zh)
    en = deadline.warning("en")
    assert en is not None and "2027" in en and not has_cjk(en)


def test_a_deadline_entirely_in_an_unannounced_year_names_only_that_year() -> None:
    # Fri 7 Jan 2028 -> Mon 10 .. Fri 14 (weekdays only).
    deadline = CAL.add_working_days(date(2028, 1, 7), 5)
    assert deadline.due == date(2028, 1, 14)
    assert deadline.unconfirmed_years == (2028,)


def test_a_deadline_spanning_two_unannounced_years_names_both_in_order() -> None:
    # Thu 30 Dec 2027: Fri 31 =1, Mon 3 Jan 2028 =2 .. Thu 6 =5.
    deadline = CAL.add_working_days(date(2027, 12, 30), 5)
    assert deadline.due == date(2028, 1, 6)
    assert deadline.unconfirmed_years == (2027, 2028)
    assert "2027、2028" in (deadline.warning() or "")


NEW_YEAR_2027 = [
    CalendarOverride(date(2027, 1, 1), is_workday=False, note="元旦"),
    CalendarOverride(date(2027, 1, 9), is_workday=True, note="调休上班"),
]


def test_overrides_entered_for_2027_are_honoured_and_the_deadline_is_confirmed() -> None:
    cal = WorkdayCalendar(NEW_YEAR_2027)
    # Wed 30 Dec 2026: Thu 31 =1, Fri 1 Jan holiday, Mon 4 =2, 5 =3, 6 =4, Thu 7 =5.
    deadline = cal.add_working_days(date(2026, 12, 30), 5)
    assert deadline == Deadline(date(2027, 1, 7), ())
    assert deadline.is_estimate is False
    assert deadline.warning() is None


def test_a_make_up_saturday_entered_for_2027_counts_as_a_working_day() -> None:
    cal = WorkdayCalendar(NEW_YEAR_2027)
    # Tue 5 Jan 2027: 6 =1, 7 =2, 8 =3, Sat 9 (make-up) =4, Sun off, Mon 11 =5.
    assert cal.add_working_days(date(2027, 1, 5), 5) == Deadline(date(2027, 1, 11), ())
    # Without the override the same start lands a day later and is flagged.
    assert CAL.add_working_days(date(2027, 1, 5), 5) == Deadline(date(2027, 1, 12), (2027,))


def test_an_override_beats_the_shipped_calendar_for_an_announced_year() -> None:
    # Suppose Fri 27 Feb 2026 were declared a holiday after the library shipped.
    cal = WorkdayCalendar([CalendarOverride(date(2026, 2, 27), is_workday=False)])
    # Fri 13 Feb: 14 =1, 24 =2, 25 =3, 26 =4, 27 off, Sat 28 =5.
    assert cal.add_working_days(date(2026, 2, 13), 5) == Deadline(date(2026, 2, 28), ())


def test_is_workday_reports_whether_the_answer_is_a_guess() -> None:
    assert CAL.is_workday(date(2026, 2, 14)) == (True, True)  # make-up Saturday
    assert CAL.is_workday(date(2026, 2, 16)) == (False, True)  # Spring Festival Monday
    assert CAL.is_workday(date(2027, 1, 1)) == (True, False)  # a weekday, nobody knows yet
    assert CAL.is_workday(date(2027, 1, 2)) == (False, False)
    cal = WorkdayCalendar(NEW_YEAR_2027)
    assert cal.is_workday(date(2027, 1, 1)) == (False, True)
    assert cal.is_workday(date(2027, 1, 4)) == (True, True)


def test_zero_or_negative_working_days_are_refused() -> None:
    for days in (0, -1):
        with pytest.raises(ValueError):
            CAL.add_working_days(date(2026, 3, 2), days)


def test_working_days_between_counts_the_half_open_interval() -> None:
    # (Fri 13 Feb, Fri 27 Feb]: 14, 24, 25, 26, 27.
    assert CAL.working_days_between(date(2026, 2, 13), date(2026, 2, 27)) == 5
    assert CAL.working_days_between(date(2026, 2, 27), date(2026, 2, 27)) == 0
    assert CAL.working_days_between(date(2026, 2, 14), date(2026, 2, 23)) == 0


@settings(max_examples=150)
@given(st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 15)))
def test_a_deadline_inside_2026_is_never_an_estimate_and_is_the_fifth_working_day(
    start: date,
) -> None:
    deadline = CAL.add_working_days(start, 5)
    assert deadline.due.year == 2026
    assert deadline.is_estimate is False
    assert deadline.warning() is None
    # Oracle: the shipped calendar itself, walked day by day.
    days = [start + timedelta(days=i) for i in range(1, (deadline.due - start).days + 1)]
    working = [d for d in days if chinese_calendar.is_workday(d)]
    assert len(working) == 5
    assert working[-1] == deadline.due


@settings(max_examples=100)
@given(st.dates(min_value=date(2027, 1, 1), max_value=date(2027, 12, 20)))
def test_without_overrides_2027_deadlines_count_weekdays_only(start: date) -> None:
    deadline = CAL.add_working_days(start, 5)
    days = [start + timedelta(days=i) for i in range(1, (deadline.due - start).days + 1)]
    assert [d.weekday() < 5 for d in days].count(True) == 5
    assert deadline.due.weekday() < 5
    assert deadline.unconfirmed_years == (2027,)
