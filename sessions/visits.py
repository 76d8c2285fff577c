"""The visit state machine and its clock.

    scheduled ─► lobby ─► connecting ─► identity_check ─► live
        └──────────┴──────────┴──────────────┴─────────────┴──► ended(reason)

Elapsed time counts from the instant the visit went live and is derived from
that stored instant and the injected clock, never from a timer: a reconnect,
a page reload or a server restart recomputes the same remaining time, so
leaving and coming back can never reset it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from .errors import InvalidTransition
from .events import Event, EventName, SubjectType


class VisitKind(StrEnum):
    FAMILY = "family"
    LAWYER = "lawyer"


class VisitState(StrEnum):
    SCHEDULED = "scheduled"
    LOBBY = "lobby"
    CONNECTING = "connecting"
    IDENTITY_CHECK = "identity_check"
    LIVE = "live"
    ENDED = "ended"

    @property
    def label_zh(self) -> str:
        return {
            "scheduled": "已预约",
            "lobby": "家属已进入等候",
            "connecting": "民警开机联线中",
            "identity_check": "身份核验中",
            "live": "会见中",
            "ended": "已结束",
        }[self.value]


class EndReason(StrEnum):
    TIME_LIMIT = "time_limit"
    OFFICER_CUT = "officer_cut"
    IDENTITY_FAILED = "identity_failed"
    LEFT = "left"
    FAULT = "fault"

    @property
    def label_zh(self) -> str:
        return {
            "time_limit": "会见时间已到",
            "officer_cut": "民警已中止会见",
            "identity_failed": "身份核验未通过",
            "left": "会见人已离开",
            "fault": "系统故障",
        }[self.value]


_NEXT: dict[VisitState, VisitState] = {
    VisitState.SCHEDULED: VisitState.LOBBY,
    VisitState.LOBBY: VisitState.CONNECTING,
    VisitState.CONNECTING: VisitState.IDENTITY_CHECK,
    VisitState.IDENTITY_CHECK: VisitState.LIVE,
}

#: From which states a visit may end for each reason.
_ENDABLE_FROM: dict[EndReason, frozenset[VisitState]] = {
    EndReason.TIME_LIMIT: frozenset({VisitState.LIVE}),
    EndReason.IDENTITY_FAILED: frozenset({VisitState.IDENTITY_CHECK, VisitState.LIVE}),
    EndReason.OFFICER_CUT: frozenset(set(VisitState) - {VisitState.ENDED}),
    EndReason.LEFT: frozenset(set(VisitState) - {VisitState.ENDED}),
    EndReason.FAULT: frozenset(set(VisitState) - {VisitState.ENDED}),
}

WARNING_MARKS = (timedelta(minutes=5), timedelta(minutes=1))


@dataclass
class Visit:
    id: str
    facility_id: str
    appointment_id: str
    application_id: str | None
    kiosk_id: str
    kind: VisitKind
    limit_minutes: int
    state: VisitState = VisitState.SCHEDULED
    live_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    end_note: str | None = None
    ended_by: str | None = None
    version: int = 0
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def recorded(self) -> bool:
        """Family visits are recorded; lawyer meetings never are."""
        return self.kind is VisitKind.FAMILY

    @property
    def limit(self) -> timedelta:
        return timedelta(minutes=self.limit_minutes)

    # -- commands --------------------------------------------------------
    def enter_lobby(self, actor: str, now: datetime) -> None:
        """The relative opened the link with the right code. Rejoining later is not a new start."""
        if self.state is VisitState.SCHEDULED:
            self._advance(VisitState.LOBBY, actor, now)
        elif self.state is VisitState.ENDED:
            raise self._illegal("enter the lobby")
        else:
            self._record(EventName.VISIT_REJOINED, actor, now, state=self.state)

    def start_connection(self, actor: str, now: datetime) -> None:
        """开机联线: the duty officer connects the kiosk to the waiting relative."""
        self._advance(VisitState.CONNECTING, actor, now)

    def begin_identity_check(self, actor: str, now: datetime) -> None:
        self._advance(VisitState.IDENTITY_CHECK, actor, now)

    def go_live(self, actor: str, now: datetime) -> None:
        self._advance(VisitState.LIVE, actor, now)
        self.live_at = now

    def end(self, reason: EndReason, actor: str, now: datetime, note: str | None = None) -> None:
        if self.state not in _ENDABLE_FROM[reason]:
            raise self._illegal(f"end with {reason.value}")
        if reason is EndReason.TIME_LIMIT and not self.is_over(now):
            raise InvalidTransition(
                "time_not_up", "会见时间未到", "The time limit has not been reached yet"
            )
        previous = self.state
        self.state = VisitState.ENDED
        self.ended_at = now
        self.end_reason = reason
        self.end_note = (note or "").strip()[:500] or None
        self.ended_by = actor
        self._record(
            EventName.VISIT_ENDED,
            actor,
            now,
            reason=reason,
            from_state=previous,
            note=self.end_note,
            live_seconds=self.elapsed(now).total_seconds(),
        )

    # -- the clock --------------------------------------------------------
    def elapsed(self, now: datetime) -> timedelta:
        if self.live_at is None:
            return timedelta(0)
        until = self.ended_at if self.ended_at is not None else now
        return max(timedelta(0), until - self.live_at)

    def remaining(self, now: datetime) -> timedelta:
        return max(timedelta(0), self.limit - self.elapsed(now))

    def is_over(self, now: datetime) -> bool:
        return self.live_at is not None and self.elapsed(now) >= self.limit

    def deadline(self) -> datetime | None:
        return None if self.live_at is None else self.live_at + self.limit

    def warnings_due(self, now: datetime) -> list[timedelta]:
        """Warning marks (5 and 1 minute left) already reached, for the countdown."""
        if self.state is not VisitState.LIVE:
            return []
        left = self.remaining(now)
        return [mark for mark in WARNING_MARKS if left <= mark]

    # -- internals ----------------------------------------------------------
    def _advance(self, to: VisitState, actor: str, now: datetime) -> None:
        if _NEXT.get(self.state) is not to:
            raise self._illegal(f"move to {to.value}")
        self.state = to
        name = {
            VisitState.LOBBY: EventName.VISIT_LOBBY_ENTERED,
            VisitState.CONNECTING: EventName.VISIT_CONNECTING,
            VisitState.IDENTITY_CHECK: EventName.VISIT_IDENTITY_CHECK_STARTED,
            VisitState.LIVE: EventName.VISIT_WENT_LIVE,
        }[to]
        self._record(name, actor, now)

    def _illegal(self, what: str) -> InvalidTransition:
        return InvalidTransition(
            "visit_state",
            f"会见当前状态为“{self.state.label_zh}”，不能执行此操作",
            f"The visit is {self.state.value}; cannot {what}",
        )

    def _record(self, name: EventName, actor: str, at: datetime, **data: object) -> None:
        self.events.append(
            Event.of(
                name,
                SubjectType.VISIT,
                self.id,
                actor=actor,
                at=at,
                facility_id=self.facility_id,
                kind=self.kind,
                **data,
            )
        )
