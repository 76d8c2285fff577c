"""Facilities: kinds, default rules from the seed, rule ranges and time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sessions.errors import ValidationError
from sessions.facilities import (
    Facility,
    FacilityKind,
    FacilityRules,
    QuotaPeriod,
    UnexpectedFacePolicy,
    validate_time_zone,
)
from tests.unit._domain import has_cjk


@pytest.mark.parametrize(
    ("kind", "label", "visits", "period", "minutes"),
    [
        (FacilityKind.DETENTION_CENTRE, "看守所", 2, QuotaPeriod.CALENDAR_MONTH, 60),
        (FacilityKind.DETENTION_HOUSE, "拘留所", 2, QuotaPeriod.WHOLE_DETENTION, 30),
        (FacilityKind.DRUG_REHAB, "强制隔离戒毒所", 2, QuotaPeriod.CALENDAR_MONTH, 30),
        (FacilityKind.CUSTODY_EDUCATION, "收容教育所", 1, QuotaPeriod.CALENDAR_MONTH, 30),
    ],
)
def test_a_new_facility_starts_with_the_seed_rules_of_its_kind(
    kind: FacilityKind, label: str, visits: int, period: QuotaPeriod, minutes: int
) -> None:
    facility = Facility.new("f1", "某所", kind)
    assert kind.label_zh == label and not has_cjk(kind.label_en)
    rules = facility.rules
    assert (rules.visits_per_period, rules.period, rules.max_visit_minutes, rules.max_people) == (
        visits,
        period,
        minutes,
        3,
    )
    assert rules.unexpected_face_policy is UnexpectedFacePolicy.ALERT_ONLY
    assert rules.opening_hours.as_text() == "08:30-12:00,14:00-17:00"
    assert facility.time_zone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"visits_per_period": 0}, "visits_per_period_range"),
        ({"visits_per_period": 32}, "visits_per_period_range"),
        ({"max_visit_minutes": 4}, "max_visit_minutes_range"),
        ({"max_visit_minutes": 241}, "max_visit_minutes_range"),
        ({"max_people": 0}, "max_people_range"),
        ({"max_people": 11}, "max_people_range"),
    ],
)
def test_rules_out_of_range_are_rejected(change: dict[str, int], code: str) -> None:
    rules = FacilityRules.default_for(FacilityKind.DETENTION_CENTRE)
    with pytest.raises(ValidationError) as caught:
        rules.with_changes(**change)
    assert caught.value.code == code
    assert has_cjk(caught.value.zh)


def test_rules_at_the_edges_of_their_ranges_are_accepted_and_defaults_untouched() -> None:
    rules = FacilityRules.default_for(FacilityKind.DETENTION_CENTRE)
    low = rules.with_changes(visits_per_period=1, max_visit_minutes=5, max_people=1)
    high = rules.with_changes(visits_per_period=31, max_visit_minutes=240, max_people=10)
    assert (low.visits_per_period, low.max_visit_minutes, low.max_people) == (1, 5, 1)
    assert (high.visits_per_period, high.max_visit_minutes, high.max_people) == (31, 240, 10)
    assert FacilityRules.default_for(FacilityKind.DETENTION_CENTRE).visits_per_period == 2


def test_an_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_time_zone("Mars/Olympus_Mons")
    assert caught.value.code == "time_zone_unknown"
    with pytest.raises(ValidationError):
        Facility.new("f1", "某所", FacilityKind.DETENTION_CENTRE, time_zone="Nowhere/City")


def test_the_local_date_is_the_facility_date_not_the_utc_date() -> None:
    facility = Facility.new("f1", "某所", FacilityKind.DETENTION_CENTRE)
    late_utc = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)  # 01:00 on 1 Feb in Shanghai
    assert facility.local_date(late_utc) == date(2026, 2, 1)


def test_visit_length_adds_a_leaders_extra_minutes() -> None:
    facility = Facility.new("f1", "某所", FacilityKind.DETENTION_HOUSE)
    assert facility.visit_length() == timedelta(minutes=30)
    assert facility.visit_length(15) == timedelta(minutes=45)
