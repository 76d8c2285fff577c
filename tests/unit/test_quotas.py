"""Visit quotas per calendar month / whole detention, and leaders' exceptions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sessions.errors import ValidationError
from sessions.facilities import FacilityKind, FacilityRules, QuotaPeriod
from sessions.quotas import (
    ExceptionKind,
    LeaderException,
    counted_in_period,
    period_start,
    quota_issues,
    unresolved,
)
from tests.unit._domain import has_cjk

CENTRE = FacilityRules.default_for(FacilityKind.DETENTION_CENTRE)
HOUSE = FacilityRules.default_for(FacilityKind.DETENTION_HOUSE)
AT = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def grant(kind: ExceptionKind, **kw: int) -> LeaderException:
    return LeaderException.grant(kind, granted_by="leader-1", reason="家中老人病重", at=AT, **kw)


def test_default_rules_follow_the_seed_for_each_kind_of_facility() -> None:
    assert (CENTRE.visits_per_period, CENTRE.period, CENTRE.max_visit_minutes) == (
        2,
        QuotaPeriod.CALENDAR_MONTH,
        60,
    )
    assert (HOUSE.visits_per_period, HOUSE.period, HOUSE.max_visit_minutes) == (
        2,
        QuotaPeriod.WHOLE_DETENTION,
        30,
    )
    education = FacilityRules.default_for(FacilityKind.CUSTODY_EDUCATION)
    assert (education.visits_per_period, education.period) == (1, QuotaPeriod.CALENDAR_MONTH)
    for kind in FacilityKind:
        assert FacilityRules.default_for(kind).max_people == 3


# --- detention centre: per calendar month --------------------------------------------------


def test_visits_on_jan_31_and_feb_1_count_in_different_months() -> None:
    admitted = date(2025, 12, 1)
    assert counted_in_period(CENTRE, date(2026, 2, 1), admitted, [date(2026, 1, 31)]) == 0
    assert counted_in_period(CENTRE, date(2026, 1, 31), admitted, [date(2026, 2, 1)]) == 0
    assert (
        quota_issues(
            CENTRE,
            visit_date=date(2026, 2, 1),
            admitted_on=admitted,
            other_visit_dates=[date(2026, 1, 30), date(2026, 1, 31)],
            people=1,
        )
        == []
    )


def test_the_same_month_of_another_year_is_not_the_same_month() -> None:
    assert counted_in_period(CENTRE, date(2026, 1, 15), date(2024, 1, 1), [date(2025, 1, 10)]) == 0


def test_the_third_visit_in_one_month_needs_an_extra_visit_exception() -> None:
    issues = quota_issues(
        CENTRE,
        visit_date=date(2026, 2, 28),
        admitted_on=date(2025, 12, 1),
        other_visit_dates=[date(2026, 2, 1), date(2026, 2, 14), date(2026, 1, 31)],
        people=1,
    )
    assert [i.needs for i in issues] == [ExceptionKind.EXTRA_VISIT]
    assert "2" in issues[0].zh and has_cjk(issues[0].zh)
    assert "month" in issues[0].en


def test_the_second_visit_in_a_month_is_still_within_the_quota() -> None:
    assert (
        quota_issues(
            CENTRE,
            visit_date=date(2026, 2, 28),
            admitted_on=date(2025, 12, 1),
            other_visit_dates=[date(2026, 2, 1)],
            people=3,
            minutes=60,
        )
        == []
    )


def test_a_leaders_extra_visit_exception_resolves_exactly_that_issue() -> None:
    issues = quota_issues(
        CENTRE,
        visit_date=date(2026, 2, 28),
        admitted_on=date(2025, 12, 1),
        other_visit_dates=[date(2026, 2, 1), date(2026, 2, 2)],
        people=4,
    )
    assert [i.needs for i in issues] == [ExceptionKind.EXTRA_VISIT, ExceptionKind.MORE_PEOPLE]
    assert unresolved(issues, []) == issues
    left = unresolved(issues, [grant(ExceptionKind.EXTRA_VISIT)])
    assert [i.needs for i in left] == [ExceptionKind.MORE_PEOPLE]
    both = [grant(ExceptionKind.EXTRA_VISIT), grant(ExceptionKind.MORE_PEOPLE, extra_people=1)]
    assert unresolved(issues, both) == []


def test_a_longer_visit_exception_does_not_lift_the_visit_count() -> None:
    issues = quota_issues(
        CENTRE,
        visit_date=date(2026, 2, 28),
        admitted_on=date(2025, 12, 1),
        other_visit_dates=[date(2026, 2, 1), date(2026, 2, 2)],
        people=1,
    )
    assert unresolved(issues, [grant(ExceptionKind.LONGER_VISIT, extra_minutes=30)]) == issues


# --- detention house: per whole detention --------------------------------------------------


def test_a_detention_house_counts_every_visit_since_admission_across_months() -> None:
    admitted = date(2026, 1, 20)
    others = [date(2026, 1, 25), date(2026, 2, 3)]
    assert counted_in_period(HOUSE, date(2026, 3, 1), admitted, others) == 2
    issues = quota_issues(
        HOUSE, visit_date=date(2026, 3, 1), admitted_on=admitted, other_visit_dates=others, people=1
    )
    assert [i.needs for i in issues] == [ExceptionKind.EXTRA_VISIT]
    assert "detention" in issues[0].en and "本次羁押" in issues[0].zh


def test_visits_before_admission_are_not_counted_in_the_whole_detention() -> None:
    admitted = date(2026, 1, 20)
    previous_detention = [date(2025, 11, 2), date(2025, 11, 20), date(2026, 1, 19)]
    assert counted_in_period(HOUSE, date(2026, 1, 25), admitted, previous_detention) == 0
    assert (
        quota_issues(
            HOUSE,
            visit_date=date(2026, 1, 25),
            admitted_on=admitted,
            other_visit_dates=[*previous_detention, date(2026, 1, 20)],
            people=1,
        )
        == []
    )


def test_the_period_starts_on_the_first_of_the_month_or_on_admission() -> None:
    assert period_start(CENTRE, date(2026, 2, 17), date(2025, 12, 9)) == date(2026, 2, 1)
    assert period_start(HOUSE, date(2026, 2, 17), date(2025, 12, 9)) == date(2025, 12, 9)


# --- people and length ---------------------------------------------------------------------


def test_more_people_than_the_facility_allows_needs_a_more_people_exception() -> None:
    def needs(people: int) -> list[ExceptionKind]:
        issues = quota_issues(
            CENTRE,
            visit_date=date(2026, 2, 2),
            admitted_on=date(2026, 1, 1),
            other_visit_dates=[],
            people=people,
        )
        return [i.needs for i in issues]

    assert needs(3) == []
    assert needs(4) == [ExceptionKind.MORE_PEOPLE]


def test_a_visit_longer_than_the_limit_needs_a_longer_visit_exception() -> None:
    def needs(minutes: int | None) -> list[ExceptionKind]:
        issues = quota_issues(
            HOUSE,
            visit_date=date(2026, 2, 2),
            admitted_on=date(2026, 1, 1),
            other_visit_dates=[],
            people=1,
            minutes=minutes,
        )
        return [i.needs for i in issues]

    assert needs(None) == []
    assert needs(30) == []
    assert needs(31) == [ExceptionKind.LONGER_VISIT]


def test_every_issue_is_explained_in_chinese_and_english() -> None:
    issues = quota_issues(
        HOUSE,
        visit_date=date(2026, 2, 2),
        admitted_on=date(2026, 1, 1),
        other_visit_dates=[date(2026, 1, 5), date(2026, 1, 6)],
        people=5,
        minutes=45,
    )
    assert [i.needs for i in issues] == list(ExceptionKind)
    for issue in issues:
        assert has_cjk(issue.zh) and not has_cjk(issue.en)
    assert "5" in issues[1].zh and "45" in issues[2].zh


# --- LeaderException.grant -----------------------------------------------------------------


def test_a_granted_exception_keeps_who_why_and_when_with_the_reason_trimmed() -> None:
    exc = LeaderException.grant(
        ExceptionKind.LONGER_VISIT,
        granted_by="leader-1",
        reason="  路途遥远 ",
        at=AT,
        extra_minutes=30,
    )
    assert exc == LeaderException(ExceptionKind.LONGER_VISIT, "leader-1", "路途遥远", AT, 30, 0)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_an_exception_without_a_reason_is_refused(reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LeaderException.grant(ExceptionKind.EXTRA_VISIT, granted_by="l", reason=reason, at=AT)
    assert caught.value.code == "exception_reason_missing"
    assert has_cjk(caught.value.zh)


@pytest.mark.parametrize(("minutes", "ok"), [(0, False), (1, True), (120, True), (121, False)])
def test_a_longer_visit_extends_by_one_to_120_minutes(minutes: int, ok: bool) -> None:
    if ok:
        assert grant(ExceptionKind.LONGER_VISIT, extra_minutes=minutes).extra_minutes == minutes
    else:
        with pytest.raises(ValidationError) as caught:
            grant(ExceptionKind.LONGER_VISIT, extra_minutes=minutes)
        assert caught.value.code == "exception_minutes"


@pytest.mark.parametrize(("people", "ok"), [(0, False), (1, True), (3, True), (4, False)])
def test_more_people_adds_one_to_three_people(people: int, ok: bool) -> None:
    if ok:
        assert grant(ExceptionKind.MORE_PEOPLE, extra_people=people).extra_people == people
    else:
        with pytest.raises(ValidationError) as caught:
            grant(ExceptionKind.MORE_PEOPLE, extra_people=people)
        assert caught.value.code == "exception_people"


def test_every_exception_kind_has_a_chinese_label() -> None:
    assert [k.label_zh for k in ExceptionKind] == ["增加会见次数", "增加会见人数", "延长会见时间"]
