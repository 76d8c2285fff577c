"""How many visits, how many people, how long — and the leader's exceptions.

The rules allow a facility leader (所领导) to approve more visits, more people
or a longer visit "因特殊情况"; such a decision is recorded with who and why and
then lifts exactly the limit it names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from .errors import ValidationError
from .facilities import FacilityRules, QuotaPeriod


class ExceptionKind(StrEnum):
    EXTRA_VISIT = "extra_visit"
    MORE_PEOPLE = "more_people"
    LONGER_VISIT = "longer_visit"

    @property
    def label_zh(self) -> str:
        return {
            "extra_visit": "增加会见次数",
            "more_people": "增加会见人数",
            "longer_visit": "延长会见时间",
        }[self.value]


@dataclass(frozen=True)
class LeaderException:
    kind: ExceptionKind
    granted_by: str
    reason: str
    granted_at: datetime
    extra_minutes: int = 0
    extra_people: int = 0

    @classmethod
    def grant(
        cls,
        kind: ExceptionKind,
        *,
        granted_by: str,
        reason: str,
        at: datetime,
        extra_minutes: int = 0,
        extra_people: int = 0,
    ) -> LeaderException:
        if not reason.strip():
            raise ValidationError(
                "exception_reason_missing",
                "批准例外须填写理由",
                "An exception needs a reason",
                field="reason",
            )
        if kind is ExceptionKind.LONGER_VISIT and not 1 <= extra_minutes <= 120:
            raise ValidationError(
                "exception_minutes",
                "延长时间应为1至120分钟",
                "The extension must be 1 to 120 minutes",
                field="extra_minutes",
            )
        if kind is ExceptionKind.MORE_PEOPLE and not 1 <= extra_people <= 3:
            raise ValidationError(
                "exception_people",
                "增加人数应为1至3人",
                "Extra people must be 1 to 3",
                field="extra_people",
            )
        return cls(kind, granted_by, reason.strip(), at, extra_minutes, extra_people)


@dataclass(frozen=True)
class QuotaIssue:
    """A limit this visit would exceed, and the exception that would lift it."""

    needs: ExceptionKind
    zh: str
    en: str


def period_start(rules: FacilityRules, visit_date: date, admitted_on: date) -> date:
    if rules.period is QuotaPeriod.CALENDAR_MONTH:
        return visit_date.replace(day=1)
    return admitted_on


def counted_in_period(
    rules: FacilityRules, visit_date: date, admitted_on: date, other_visit_dates: Iterable[date]
) -> int:
    """Visits already booked in the same calendar month (facility local dates) or
    in the whole detention, whichever the facility counts."""
    start = period_start(rules, visit_date, admitted_on)
    if rules.period is QuotaPeriod.CALENDAR_MONTH:
        return sum(1 for d in other_visit_dates if (d.year, d.month) == (start.year, start.month))
    return sum(1 for d in other_visit_dates if d >= admitted_on)


def quota_issues(
    rules: FacilityRules,
    *,
    visit_date: date,
    admitted_on: date,
    other_visit_dates: Iterable[date],
    people: int,
    minutes: int | None = None,
) -> list[QuotaIssue]:
    issues: list[QuotaIssue] = []
    used = counted_in_period(rules, visit_date, admitted_on, other_visit_dates)
    if used >= rules.visits_per_period:
        if rules.period is QuotaPeriod.CALENDAR_MONTH:
            zh = f"本月已安排会见{used}次，已达每月{rules.visits_per_period}次的上限"
            en = f"{used} visits already this month; the monthly limit is {rules.visits_per_period}"
        else:
            zh = f"本次羁押期间已会见{used}次，已达{rules.visits_per_period}次的上限"
            en = f"{used} visits already in this detention; the limit is {rules.visits_per_period}"
        issues.append(QuotaIssue(ExceptionKind.EXTRA_VISIT, zh, en))
    if people > rules.max_people:
        issues.append(
            QuotaIssue(
                ExceptionKind.MORE_PEOPLE,
                f"会见人数{people}人，超过每次{rules.max_people}人的上限",
                f"{people} people exceed the limit of {rules.max_people} per visit",
            )
        )
    if minutes is not None and minutes > rules.max_visit_minutes:
        issues.append(
            QuotaIssue(
                ExceptionKind.LONGER_VISIT,
                f"会见时长{minutes}分钟，超过{rules.max_visit_minutes}分钟的上限",
                f"{minutes} minutes exceed the limit of {rules.max_visit_minutes}",
            )
        )
    return issues


def unresolved(
    issues: Iterable[QuotaIssue], exceptions: Iterable[LeaderException]
) -> list[QuotaIssue]:
    granted = {e.kind for e in exceptions}
    return [i for i in issues if i.needs not in granted]
