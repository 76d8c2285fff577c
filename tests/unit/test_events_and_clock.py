"""Events carry plain JSON; the clock refuses naive datetimes and moves only when told."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sessions.clock import ManualClock, ensure_aware
from sessions.errors import DomainError, NotFound, ValidationError
from sessions.events import Event, EventName, SubjectType, jsonable, officer_actor
from sessions.visits import VisitState
from tests.unit._domain import SHANGHAI

T = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)


def test_jsonable_turns_enums_dates_and_sets_into_plain_values() -> None:
    assert jsonable(
        {
            "state": VisitState.LIVE,
            "at": T,
            "on": date(2026, 3, 2),
            "tags": {"b", "a"},
            "pair": (1, 2.5),
            "none": None,
            "中文": "张三",
        }
    ) == {
        "state": "live",
        "at": "2026-03-02T09:00:00+08:00",
        "on": "2026-03-02",
        "tags": ["a", "b"],
        "pair": [1, 2.5],
        "none": None,
        "中文": "张三",
    }


def test_jsonable_refuses_values_it_cannot_represent() -> None:
    with pytest.raises(TypeError):
        jsonable({"x": object()})


def test_event_of_collects_keyword_data_as_json() -> None:
    event = Event.of(
        EventName.VISIT_ENDED,
        SubjectType.VISIT,
        "v1",
        actor=officer_actor("o1"),
        at=T,
        facility_id="f1",
        reason=VisitState.ENDED,
    )
    assert event.actor == "officer:o1"
    assert event.data == {"reason": "ended"}


def test_the_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T)
    assert clock.now() == clock.now() == T
    clock.advance(timedelta(minutes=5))
    assert clock.now() == T + timedelta(minutes=5)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2027, 1, 1, tzinfo=UTC)


def test_naive_datetimes_are_refused_everywhere_time_enters() -> None:
    naive = datetime(2026, 3, 2, 9, 0)
    with pytest.raises(ValueError):
        ManualClock(naive)
    with pytest.raises(ValueError):
        ManualClock(T).set(naive)
    with pytest.raises(ValueError):
        ensure_aware(naive)
    assert ensure_aware(T) is T


def test_domain_errors_speak_both_languages_and_carry_a_status() -> None:
    error = ValidationError("x_bad", "错误", "Bad", field="x")
    assert error.as_dict() == {"code": "x_bad", "message": "错误", "field": "x"}
    assert error.as_dict("en") == {"code": "x_bad", "message": "Bad", "field": "x"}
    assert (
        error.status,
        NotFound("n", "无", "none").status,
        DomainError("d", "甲", "a").status,
    ) == (
        422,
        404,
        400,
    )
