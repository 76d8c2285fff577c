"""Booking a kiosk slot: in the future, inside opening hours (facility time), never overlapping."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from sessions.appointments import EARLY_JOIN, Appointment, Kiosk
from sessions.errors import Conflict, ValidationError
from sessions.events import EventName
from sessions.facilities import Facility, FacilityKind, OpeningHours
from tests.unit._domain import SHANGHAI, has_cjk

FACILITY = Facility.new("f1", "第一看守所", FacilityKind.DETENTION_CENTRE)
KIOSK = Kiosk(id="k1", facility_id="f1", name="一号终端", device_token_hash="x")
KIOSK2 = Kiosk(id="k2", facility_id="f1", name="二号终端", device_token_hash="y")
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=SHANGHAI)


def at(hour: int, minute: int = 0, day: int = 3) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI)


def book(
    starts_at: datetime,
    minutes: int = 60,
    *,
    existing: list[Appointment] | None = None,
    kiosk: Kiosk = KIOSK,
    facility: Facility = FACILITY,
    now: datetime = NOW,
    id: str = "appt",
) -> Appointment:
    return Appointment.book(
        id=id,
        facility=facility,
        kiosk=kiosk,
        application_id="app1",
        detainee_id="d1",
        starts_at=starts_at,
        minutes=minutes,
        booked_by="duty",
        now=now,
        existing=existing or [],
    )


def refused_code(starts_at: datetime, minutes: int = 60, **kw: object) -> str:
    with pytest.raises(ValidationError) as caught:
        book(starts_at, minutes, **kw)  # type: ignore[arg-type]
    assert has_cjk(caught.value.zh)
    return caught.value.code


def test_a_slot_inside_opening_hours_is_booked_with_its_end_and_an_event() -> None:
    appt = book(at(9))
    assert (appt.starts_at, appt.ends_at) == (at(9), at(10))
    assert appt.kiosk_id == "k1" and appt.booked_by == "duty" and not appt.cancelled
    assert appt.join_opens_at == at(8, 45) == at(9) - EARLY_JOIN
    [event] = appt.events
    assert event.name is EventName.APPOINTMENT_BOOKED
    assert event.actor == "officer:duty"
    assert event.at == NOW
    assert event.data["ends_at"] == at(10).isoformat()


@pytest.mark.parametrize(
    ("start", "minutes"),
    [
        ((8, 30), 60),  # first minute of the morning
        ((11, 0), 60),  # ends exactly at noon
        ((14, 0), 30),
        ((16, 0), 60),  # ends exactly at 17:00
    ],
)
def test_slots_touching_the_edges_of_a_window_are_inside(
    start: tuple[int, int], minutes: int
) -> None:
    book(at(*start), minutes)


@pytest.mark.parametrize(
    ("start", "minutes"),
    [
        ((8, 0), 30),  # before opening
        ((8, 29), 30),  # one minute early
        ((11, 30), 60),  # runs into lunch
        ((12, 0), 30),  # lunch
        ((13, 30), 60),  # starts in lunch, ends in the afternoon
        ((16, 30), 60),  # runs past 17:00
        ((17, 0), 30),  # after closing
        ((20, 0), 30),
        ((23, 30), 60),  # crosses midnight
    ],
)
def test_slots_outside_opening_hours_are_refused(start: tuple[int, int], minutes: int) -> None:
    assert refused_code(at(*start), minutes) == "slot_outside_hours"


def test_opening_hours_are_read_in_the_facility_time_zone_not_utc() -> None:
    # 01:00 UTC is 09:00 in Shanghai: open. 09:00 UTC is 17:00 in Shanghai: closed.
    book(datetime(2026, 3, 3, 1, 0, tzinfo=UTC))
    assert refused_code(datetime(2026, 3, 3, 9, 0, tzinfo=UTC), 30) == "slot_outside_hours"


def test_a_facility_in_another_time_zone_uses_its_own_clock() -> None:
    urumqi = Facility.new("f1", "乌鲁木齐", FacilityKind.DETENTION_CENTRE, time_zone="Asia/Urumqi")
    # 09:00 Shanghai is 07:00 in Urumqi (UTC+6): closed there.
    assert refused_code(at(9), 60, facility=urumqi) == "slot_outside_hours"
    book(at(11), 60, facility=urumqi)  # 09:00 in Urumqi


def test_the_refusal_names_the_opening_hours() -> None:
    with pytest.raises(ValidationError) as caught:
        book(at(12, 30), 30)
    assert "08:30-12:00,14:00-17:00" in caught.value.zh
    assert caught.value.field == "starts_at"


def test_a_slot_that_has_started_or_is_past_is_refused() -> None:
    assert refused_code(NOW, 30, now=NOW.replace(hour=9)) == "slot_in_past"
    assert refused_code(at(9, day=2), 30, now=at(9, day=2)) == "slot_in_past"
    assert refused_code(at(9, day=1), 30) == "slot_in_past"
    book(at(9, day=2), 30, now=at(8, 59, day=2))


def test_an_overlapping_slot_on_the_same_kiosk_is_a_conflict() -> None:
    first = book(at(9), 60, id="a1")
    for start, minutes in [
        ((9, 0), 60),
        ((9, 30), 60),
        ((8, 30), 60),
        ((9, 15), 15),
        ((8, 30), 180),
    ]:
        with pytest.raises(Conflict) as caught:
            book(at(*start), minutes, existing=[first], id="a2")
        assert caught.value.code == "slot_taken"
        assert has_cjk(caught.value.zh)


def test_back_to_back_slots_on_one_kiosk_are_allowed() -> None:
    first = book(at(9), 60, id="a1")
    after = book(at(10), 60, existing=[first], id="a2")
    before = book(at(8, 30), 30, existing=[first, after], id="a3")
    assert before.ends_at == first.starts_at and first.ends_at == after.starts_at


def test_the_same_time_on_another_kiosk_or_over_a_cancelled_booking_is_allowed() -> None:
    first = book(at(9), 60, id="a1")
    book(at(9), 60, existing=[first], kiosk=KIOSK2, id="a2")
    first.cancelled = True
    book(at(9), 60, existing=[first], id="a3")


def test_an_inactive_kiosk_or_another_facilitys_kiosk_cannot_be_booked() -> None:
    retired = Kiosk(id="k3", facility_id="f1", name="旧终端", device_token_hash="z", active=False)
    foreign = Kiosk(id="k4", facility_id="f2", name="外所终端", device_token_hash="w")
    assert refused_code(at(9), kiosk=retired) == "kiosk_unavailable"
    assert refused_code(at(9), kiosk=foreign) == "kiosk_unavailable"


def test_overlap_is_symmetric_and_ignores_other_kiosks() -> None:
    a = book(at(9), 60, id="a")
    b = book(at(9, 30), 60, id="b")
    c = book(at(9, 30), 60, id="c", kiosk=KIOSK2)
    assert a.overlaps(b) and b.overlaps(a)
    assert not a.overlaps(c) and not c.overlaps(a)


# --- opening hours on their own ----------------------------------------------------------------


def test_opening_hours_parse_and_print_the_same_text() -> None:
    hours = OpeningHours.parse(" 09:00-11:30 , 13:30-16:00 ")
    assert hours.windows == ((time(9, 0), time(11, 30)), (time(13, 30), time(16, 0)))
    assert hours.as_text() == "09:00-11:30,13:30-16:00"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("9-11", "opening_hours_format"),
        ("", "opening_hours_format"),
        ("12:00-08:00", "opening_hours_order"),
        ("08:00-08:00", "opening_hours_order"),
    ],
)
def test_malformed_or_backwards_opening_hours_are_rejected(text: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OpeningHours.parse(text)
    assert caught.value.code == code


def test_a_slot_ending_at_midnight_is_outside_a_window_that_closes_before_midnight() -> None:
    evening = OpeningHours(((time(20, 0), time(23, 0)),))
    start = datetime(2026, 3, 3, 21, 0, tzinfo=SHANGHAI)
    assert evening.contains(start, start + timedelta(hours=2), SHANGHAI)
    assert not evening.contains(start, start + timedelta(hours=3), SHANGHAI)  # ends 00:00


def test_a_slot_ending_at_midnight_fits_a_window_that_runs_to_the_end_of_the_day() -> None:
    late = OpeningHours(((time(20, 0), time.max),))
    start = datetime(2026, 3, 3, 23, 0, tzinfo=SHANGHAI)
    assert late.contains(start, start + timedelta(hours=1), SHANGHAI)
    assert not late.contains(start, start + timedelta(hours=2), SHANGHAI)
