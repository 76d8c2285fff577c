"""Why a detainee cannot be offered a video visit, per kind of facility (seed 000, 受理条件)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from sessions.detainees import Detainee, IneligibleReason
from sessions.facilities import FacilityKind
from tests.unit._domain import has_cjk

R = IneligibleReason
K = FacilityKind
ADMITTED = date(2026, 2, 1)
ON = date(2026, 3, 2)
CLEAN = Detainee(id="d1", facility_id="f1", name="被会见人", admitted_on=ADMITTED)


def reasons(kind: FacilityKind, on: date = ON, **facts: object) -> list[IneligibleReason]:
    return replace(CLEAN, **facts).ineligibility(kind, on)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(K))
def test_a_detainee_with_no_adverse_facts_is_eligible_everywhere(kind: FacilityKind) -> None:
    assert CLEAN.ineligibility(kind, ON) == []


@pytest.mark.parametrize("kind", list(K))
def test_a_detainee_who_refuses_is_ineligible_in_every_kind_of_facility(kind: FacilityKind) -> None:
    assert reasons(kind, refuses_video_visits=True) == [R.REFUSED]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (K.DETENTION_CENTRE, [R.FOREIGN_NATIONAL]),
        (K.DETENTION_HOUSE, []),
        (K.DRUG_REHAB, []),
        (K.CUSTODY_EDUCATION, []),
    ],
)
def test_foreign_nationality_only_matters_in_a_detention_centre(
    kind: FacilityKind, expected: list[IneligibleReason]
) -> None:
    assert reasons(kind, foreign_national=True) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (K.DETENTION_CENTRE, []),
        (K.DETENTION_HOUSE, [R.STRICT_MANAGEMENT]),
        (K.DRUG_REHAB, []),
        (K.CUSTODY_EDUCATION, []),
    ],
)
def test_strict_management_only_matters_in_a_detention_house(
    kind: FacilityKind, expected: list[IneligibleReason]
) -> None:
    assert reasons(kind, strict_management=True) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (K.DETENTION_CENTRE, [R.SERIOUS_VIOLATION]),
        (K.DETENTION_HOUSE, [R.STRICT_MANAGEMENT]),
        (K.DRUG_REHAB, [R.SERIOUS_VIOLATION]),
        (K.CUSTODY_EDUCATION, [R.SERIOUS_VIOLATION]),
    ],
)
def test_a_serious_violation_rules_out_a_visit_everywhere(
    kind: FacilityKind, expected: list[IneligibleReason]
) -> None:
    assert reasons(kind, serious_violation=True) == expected


def test_strict_management_and_a_violation_in_a_detention_house_give_one_reason_not_two() -> None:
    assert reasons(K.DETENTION_HOUSE, strict_management=True, serious_violation=True) == [
        R.STRICT_MANAGEMENT
    ]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (K.DETENTION_CENTRE, []),
        (K.DETENTION_HOUSE, []),
        (K.DRUG_REHAB, [R.PENDING_CRIMINAL_TRANSFER]),
        (K.CUSTODY_EDUCATION, []),
    ],
)
def test_a_pending_criminal_transfer_only_matters_in_drug_rehab(
    kind: FacilityKind, expected: list[IneligibleReason]
) -> None:
    assert reasons(kind, pending_criminal_transfer=True) == expected


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2026, 2, 1), [R.FIRST_WEEK_OF_DETOX]),  # the day of admission
        (date(2026, 2, 7), [R.FIRST_WEEK_OF_DETOX]),  # the seventh day
        (date(2026, 2, 8), []),  # a full week after admission
        (date(2026, 3, 2), []),
    ],
)
def test_detox_treatment_rules_out_a_visit_only_in_the_first_seven_days_in_rehab(
    on: date, expected: list[IneligibleReason]
) -> None:
    assert reasons(K.DRUG_REHAB, on=on, in_detox_treatment=True) == expected


def test_the_first_week_does_not_matter_once_detox_treatment_is_over() -> None:
    assert reasons(K.DRUG_REHAB, on=date(2026, 2, 3), in_detox_treatment=False) == []


@pytest.mark.parametrize("kind", [K.DETENTION_CENTRE, K.DETENTION_HOUSE, K.CUSTODY_EDUCATION])
def test_detox_treatment_in_the_first_week_does_not_matter_outside_rehab(
    kind: FacilityKind,
) -> None:
    assert reasons(kind, on=date(2026, 2, 3), in_detox_treatment=True) == []


@pytest.mark.parametrize("kind", list(K))
def test_a_released_detainee_is_ineligible_from_the_day_of_release(kind: FacilityKind) -> None:
    assert reasons(kind, released_on=date(2026, 3, 3)) == []
    assert reasons(kind, released_on=ON) == [R.RELEASED]
    assert reasons(kind, released_on=date(2026, 2, 20)) == [R.RELEASED]


def test_every_applicable_reason_is_listed_not_just_the_first() -> None:
    everything = dict(
        released_on=date(2026, 2, 5),
        refuses_video_visits=True,
        strict_management=True,
        serious_violation=True,
        foreign_national=True,
        in_detox_treatment=True,
        pending_criminal_transfer=True,
    )
    on = date(2026, 2, 6)
    assert reasons(K.DETENTION_CENTRE, on=on, **everything) == [
        R.RELEASED,
        R.REFUSED,
        R.SERIOUS_VIOLATION,
        R.FOREIGN_NATIONAL,
    ]
    assert reasons(K.DETENTION_HOUSE, on=on, **everything) == [
        R.RELEASED,
        R.REFUSED,
        R.STRICT_MANAGEMENT,
    ]
    assert reasons(K.DRUG_REHAB, on=on, **everything) == [
        R.RELEASED,
        R.REFUSED,
        R.SERIOUS_VIOLATION,
        R.FIRST_WEEK_OF_DETOX,
        R.PENDING_CRIMINAL_TRANSFER,
    ]
    assert reasons(K.CUSTODY_EDUCATION, on=on, **everything) == [
        R.RELEASED,
        R.REFUSED,
        R.SERIOUS_VIOLATION,
    ]


@pytest.mark.parametrize("reason", list(R))
def test_every_reason_is_explained_in_chinese_and_in_english(reason: IneligibleReason) -> None:
    assert has_cjk(reason.zh)
    assert reason.en and not has_cjk(reason.en)


def test_no_two_reasons_share_a_text() -> None:
    assert len({r.zh for r in R}) == len(R)
    assert len({r.en for r in R}) == len(R)
