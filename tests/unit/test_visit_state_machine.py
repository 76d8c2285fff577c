"""The visit state machine and its clock.

scheduled → lobby → connecting → identity_check → live, and ended from anywhere the
reason allows. The stateful test below drives a ``Visit`` and a tiny model of the rules
side by side with a ``ManualClock`` that moves forward at random.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sessions.clock import ManualClock
from sessions.errors import InvalidTransition
from sessions.events import EventName
from sessions.visits import EndReason, Visit, VisitKind, VisitState
from tests.unit._domain import has_cjk

S = VisitState
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
ORDER = [S.SCHEDULED, S.LOBBY, S.CONNECTING, S.IDENTITY_CHECK, S.LIVE]
LIMIT_MINUTES = 10


def new_visit(limit_minutes: int = LIMIT_MINUTES, kind: VisitKind = VisitKind.FAMILY) -> Visit:
    return Visit(
        id="v1",
        facility_id="f1",
        appointment_id="a1",
        application_id="app1",
        kiosk_id="k1",
        kind=kind,
        limit_minutes=limit_minutes,
    )


def live_visit(clock: ManualClock, limit_minutes: int = LIMIT_MINUTES) -> Visit:
    visit = new_visit(limit_minutes)
    visit.enter_lobby("relative", clock.now())
    visit.start_connection("officer:o1", clock.now())
    visit.begin_identity_check("officer:o1", clock.now())
    visit.go_live("officer:o1", clock.now())
    return visit


def restarted(visit: Visit) -> Visit:
    """What a restarted server would load: the stored fields and nothing else."""
    stored = {
        f.name: getattr(visit, f.name) for f in dataclasses.fields(visit) if f.name != "events"
    }
    return Visit(**stored)


# --- stateful property ----------------------------------------------------------------------


class VisitMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.visit = new_visit()
        # The model.
        self.state = S.SCHEDULED
        self.live_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.visited: list[VisitState] = [S.SCHEDULED]
        self.last_remaining = self.visit.remaining(self.clock.now())

    # -- helpers -------------------------------------------------------------
    def _expect_rejected(self, command: str, *args: object) -> None:
        before = copy.deepcopy(self.visit)
        events_before = list(self.visit.events)
        with pytest.raises(InvalidTransition) as caught:
            getattr(self.visit, command)(*args)
        assert has_cjk(caught.value.zh)
        assert self.visit == before
        assert self.visit.events == events_before

    def _expect_moved(self, command: str, to: VisitState, event: EventName, *args: object) -> None:
        n = len(self.visit.events)
        getattr(self.visit, command)(*args)
        assert self.visit.state is to
        assert [e.name for e in self.visit.events[n:]] == [event]
        assert self.visit.events[-1].at == self.clock.now()
        self.state = to
        self.visited.append(to)

    # -- rules ---------------------------------------------------------------
    @initialize(steps=st.integers(0, 4), gaps=st.lists(st.integers(0, 300), min_size=4, max_size=4))
    def start_somewhere_along_the_path(self, steps: int, gaps: list[int]) -> None:
        """Begin from a random point on the legal path, so every state gets explored."""
        for gap in gaps[:steps]:
            self.clock.advance(timedelta(seconds=gap))
            self.proceed()

    @rule(seconds=st.integers(0, 6 * 60))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(offset=st.integers(-90, 90))
    def time_nears_the_limit(self, offset: int) -> None:
        """Jump to around the limit of a live visit (never backwards)."""
        if self.live_at is None:
            return
        target = self.live_at + timedelta(minutes=LIMIT_MINUTES, seconds=offset)
        if target > self.clock.now():
            self.clock.set(target)

    @rule()
    def enter_lobby(self) -> None:
        now = self.clock.now()
        if self.state is S.ENDED:
            self._expect_rejected("enter_lobby", "relative", now)
        elif self.state is S.SCHEDULED:
            self._expect_moved(
                "enter_lobby", S.LOBBY, EventName.VISIT_LOBBY_ENTERED, "relative", now
            )
        else:
            n = len(self.visit.events)
            self.visit.enter_lobby("relative", now)
            assert self.visit.state is self.state
            assert self.visit.live_at == self.live_at
            assert [e.name for e in self.visit.events[n:]] == [EventName.VISIT_REJOINED]
            assert self.visit.events[-1].data["state"] == self.state.value

    @rule()
    def start_connection(self) -> None:
        now = self.clock.now()
        if self.state is S.LOBBY:
            self._expect_moved(
                "start_connection", S.CONNECTING, EventName.VISIT_CONNECTING, "officer:o1", now
            )
        else:
            self._expect_rejected("start_connection", "officer:o1", now)

    @rule()
    def begin_identity_check(self) -> None:
        now = self.clock.now()
        if self.state is S.CONNECTING:
            self._expect_moved(
                "begin_identity_check",
                S.IDENTITY_CHECK,
                EventName.VISIT_IDENTITY_CHECK_STARTED,
                "officer:o1",
                now,
            )
        else:
            self._expect_rejected("begin_identity_check", "officer:o1", now)

    @rule()
    def go_live(self) -> None:
        now = self.clock.now()
        if self.state is S.IDENTITY_CHECK:
            self._expect_moved("go_live", S.LIVE, EventName.VISIT_WENT_LIVE, "officer:o1", now)
            self.live_at = now
        else:
            self._expect_rejected("go_live", "officer:o1", now)

    @rule()
    def proceed(self) -> None:
        """Take the next step forward, so that runs get past the first few states."""
        step = {
            S.SCHEDULED: self.enter_lobby,
            S.LOBBY: self.start_connection,
            S.CONNECTING: self.begin_identity_check,
            S.IDENTITY_CHECK: self.go_live,
        }.get(self.state)
        if step is not None:
            step()

    # TIME_LIMIT is drawn more often: it is the only reason with a condition on the clock.
    @rule(reason=st.sampled_from([EndReason.TIME_LIMIT] * 4 + list(EndReason)))
    def end(self, reason: EndReason) -> None:
        now = self.clock.now()
        if reason is EndReason.TIME_LIMIT:
            allowed = (
                self.state is S.LIVE
                and self.live_at is not None
                and now - self.live_at >= timedelta(minutes=LIMIT_MINUTES)
            )
        elif reason is EndReason.IDENTITY_FAILED:
            allowed = self.state in (S.IDENTITY_CHECK, S.LIVE)
        else:
            allowed = self.state is not S.ENDED
        if not allowed:
            self._expect_rejected("end", reason, "officer:o1", now)
            return
        came_from = self.state
        self._expect_moved("end", S.ENDED, EventName.VISIT_ENDED, reason, "officer:o1", now)
        self.ended_at = now
        assert self.visit.end_reason is reason
        assert self.visit.ended_at == now
        assert self.visit.events[-1].data["from_state"] == came_from.value

    # -- invariants ----------------------------------------------------------
    @invariant()
    def state_follows_the_one_path(self) -> None:
        assert self.visit.state is self.state
        path = [s for s in self.visited if s is not S.ENDED]
        assert path == ORDER[: len(path)]
        assert self.visited.count(S.ENDED) <= 1
        if S.ENDED in self.visited:
            assert self.visited[-1] is S.ENDED

    @invariant()
    def live_at_is_set_once_when_going_live(self) -> None:
        assert self.visit.live_at == self.live_at
        went_live = [e for e in self.visit.events if e.name is EventName.VISIT_WENT_LIVE]
        assert len(went_live) == (0 if self.live_at is None else 1)

    @invariant()
    def remaining_matches_the_rule_and_never_increases(self) -> None:
        now = self.clock.now()
        limit = timedelta(minutes=LIMIT_MINUTES)
        if self.live_at is None:
            expected = limit
        else:
            until = self.ended_at if self.ended_at is not None else now
            expected = max(timedelta(0), limit - (until - self.live_at))
        remaining = self.visit.remaining(now)
        assert remaining == expected
        assert remaining <= self.last_remaining
        self.last_remaining = remaining

    @invariant()
    def a_restart_computes_the_same_remaining_time(self) -> None:
        now = self.clock.now()
        later = ManualClock(now)
        copy_ = restarted(self.visit)
        assert copy_.remaining(later.now()) == self.visit.remaining(now)
        assert copy_.is_over(later.now()) == self.visit.is_over(now)
        assert copy_.warnings_due(later.now()) == self.visit.warnings_due(now)

    @invariant()
    def warnings_are_due_only_while_live_at_five_and_one_minute(self) -> None:
        now = self.clock.now()
        due = self.visit.warnings_due(now)
        if self.state is not S.LIVE:
            assert due == []
            return
        left = self.visit.remaining(now)
        expected = [m for m in (timedelta(minutes=5), timedelta(minutes=1)) if left <= m]
        assert due == expected


VisitMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestVisitStateMachineAgainstItsModel = VisitMachine.TestCase


# --- worked examples --------------------------------------------------------------------------


def test_the_happy_path_records_one_event_per_step() -> None:
    clock = ManualClock(START)
    visit = live_visit(clock)
    clock.advance(timedelta(minutes=10))
    visit.end(EndReason.TIME_LIMIT, "system", clock.now())
    assert [e.name for e in visit.events] == [
        EventName.VISIT_LOBBY_ENTERED,
        EventName.VISIT_CONNECTING,
        EventName.VISIT_IDENTITY_CHECK_STARTED,
        EventName.VISIT_WENT_LIVE,
        EventName.VISIT_ENDED,
    ]
    assert visit.events[-1].data["live_seconds"] == 600.0
    assert visit.events[-1].data["kind"] == "family"


def test_time_limit_is_refused_one_microsecond_before_the_limit_and_allowed_at_it() -> None:
    clock = ManualClock(START)
    visit = live_visit(clock)
    clock.advance(timedelta(minutes=LIMIT_MINUTES) - timedelta(microseconds=1))
    with pytest.raises(InvalidTransition) as caught:
        visit.end(EndReason.TIME_LIMIT, "system", clock.now())
    assert caught.value.code == "time_not_up"
    assert visit.state is S.LIVE
    clock.advance(timedelta(microseconds=1))
    assert visit.is_over(clock.now())
    visit.end(EndReason.TIME_LIMIT, "system", clock.now())
    assert visit.state is S.ENDED


def test_rejoining_while_live_does_not_restart_the_clock() -> None:
    clock = ManualClock(START)
    visit = live_visit(clock)
    went_live = visit.live_at
    clock.advance(timedelta(minutes=7))
    visit.enter_lobby("relative", clock.now())
    assert visit.state is S.LIVE
    assert visit.live_at == went_live == START
    assert visit.events[-1].name is EventName.VISIT_REJOINED
    assert visit.remaining(clock.now()) == timedelta(minutes=3)


def test_a_restarted_server_later_computes_the_same_remaining_time() -> None:
    clock = ManualClock(START)
    visit = live_visit(clock, limit_minutes=30)
    clock.advance(timedelta(minutes=12, seconds=30))
    reloaded = restarted(copy.deepcopy(visit))
    clock.advance(timedelta(minutes=1))
    assert (
        reloaded.remaining(clock.now())
        == visit.remaining(clock.now())
        == timedelta(minutes=16, seconds=30)
    )
    assert reloaded.deadline() == START + timedelta(minutes=30)


def test_remaining_freezes_when_the_visit_ends() -> None:
    clock = ManualClock(START)
    visit = live_visit(clock)
    clock.advance(timedelta(minutes=4))
    visit.end(EndReason.OFFICER_CUT, "officer:o1", clock.now(), note="  违规 ")
    clock.advance(timedelta(hours=1))
    assert visit.remaining(clock.now()) == timedelta(minutes=6)
    assert visit.elapsed(clock.now()) == timedelta(minutes=4)
    assert visit.end_note == "违规"
    assert visit.ended_by == "officer:o1"


def test_a_visit_that_never_went_live_has_its_full_time_and_no_deadline() -> None:
    visit = new_visit()
    visit.enter_lobby("relative", START)
    visit.end(EndReason.LEFT, "relative", START + timedelta(minutes=3))
    assert visit.remaining(START + timedelta(hours=1)) == timedelta(minutes=LIMIT_MINUTES)
    assert visit.deadline() is None
    assert not visit.is_over(START + timedelta(hours=1))


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(minutes=5, seconds=1), []),
        (timedelta(minutes=5), [timedelta(minutes=5)]),
        (timedelta(minutes=1, seconds=1), [timedelta(minutes=5)]),
        (timedelta(minutes=1), [timedelta(minutes=5), timedelta(minutes=1)]),
        (timedelta(0), [timedelta(minutes=5), timedelta(minutes=1)]),
    ],
)
def test_warnings_fall_due_at_five_and_one_minute_left(
    left: timedelta, expected: list[timedelta]
) -> None:
    clock = ManualClock(START)
    visit = live_visit(clock, limit_minutes=30)
    clock.set(START + timedelta(minutes=30) - left)
    assert visit.warnings_due(clock.now()) == expected


def test_identity_failure_cannot_end_a_visit_before_the_identity_check() -> None:
    visit = new_visit()
    visit.enter_lobby("relative", START)
    with pytest.raises(InvalidTransition):
        visit.end(EndReason.IDENTITY_FAILED, "system", START)
    visit.start_connection("officer:o1", START)
    visit.begin_identity_check("officer:o1", START)
    visit.end(EndReason.IDENTITY_FAILED, "system", START, note="x" * 600)
    assert visit.end_reason is EndReason.IDENTITY_FAILED
    assert visit.end_note == "x" * 500


@pytest.mark.parametrize("reason", list(EndReason))
def test_ended_is_terminal_for_every_command(reason: EndReason) -> None:
    visit = new_visit()
    visit.end(EndReason.FAULT, "system", START)
    snapshot = copy.deepcopy(visit)
    for command in ("enter_lobby", "start_connection", "begin_identity_check", "go_live"):
        with pytest.raises(InvalidTransition):
            getattr(visit, command)("x", START + timedelta(hours=2))
    with pytest.raises(InvalidTransition):
        visit.end(reason, "x", START + timedelta(hours=2))
    assert visit == snapshot


def test_family_visits_are_recorded_and_lawyer_meetings_are_not() -> None:
    assert new_visit(kind=VisitKind.FAMILY).recorded is True
    assert new_visit(kind=VisitKind.LAWYER).recorded is False


def test_every_state_and_end_reason_has_a_chinese_label() -> None:
    assert all(has_cjk(s.label_zh) for s in VisitState)
    assert all(has_cjk(r.label_zh) for r in EndReason)
