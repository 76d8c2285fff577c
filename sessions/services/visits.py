"""The visit itself: joining with the link and code, the officer's start, the
identity decisions (the face gate's, and the officer's admit or deny that
override it), warnings, mute, chat, the cut and the time limit, and the ledger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from ..applications import Application
from ..appointments import Appointment, Kiosk
from ..audit import ChainVerdict, verify_chain
from ..credentials import VisitCredential, token_digest
from ..errors import (
    CredentialRejected,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from ..events import FACE_GATE, FACE_WATCH, SYSTEM, Event, EventName, officer_actor
from ..facilities import Facility
from ..officers import Role
from ..repository import UnitOfWork
from ..visits import EndReason, Visit, VisitState
from .base import (
    ACTIVE_VISIT_STATES,
    CHAT_MAX_CHARS,
    VISIT_SIDES,
    WARNING_MAX_CHARS,
    KioskSlot,
    _visit_event,
    visit_text,
)
from .scheduling import SchedulingUseCases


class VisitUseCases(SchedulingUseCases):
    # -- the visit ---------------------------------------------------------
    async def join_visit(self, token: str, code: str) -> Visit:
        """The relative's link + 会见码. A wrong code is counted (and may lock
        the link) even though the call fails."""
        digest = token_digest(token)
        async with self.uow() as uow:
            credential = await uow.credentials.get_by_token_hash(digest)
        if credential is None:
            raise CredentialRejected("link_unknown", "会见链接无效", "This visit link is not valid")
        credential.check_usable(self.clock.now())
        matched = await self._verify(credential.code_hash, code.strip())
        failure: CredentialRejected | None = None

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            nonlocal failure
            fresh = await uow.credentials.get_by_token_hash(digest)
            assert fresh is not None
            now = self.clock.now()
            try:
                fresh.record_attempt(matched, now)
            except CredentialRejected as rejected:
                failure = rejected
            await uow.credentials.update(fresh)
            events.extend(fresh.events)
            visit = await self._visit(uow, fresh.visit_id)
            if failure is None:
                visit.enter_lobby(f"relative:{fresh.id}", now)
                await uow.visits.update(visit)
                events.extend(visit.events)
            return visit

        visit = await self._transaction(work)
        if failure is not None:
            raise failure
        return visit

    async def advance_visit(self, visit_id: str, to: VisitState, actor: str) -> Visit:
        """connecting (officer starts the connection), identity_check, live."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._visit(uow, visit_id)
            now = self.clock.now()
            if to is VisitState.CONNECTING:
                visit.start_connection(actor, now)
            elif to is VisitState.IDENTITY_CHECK:
                visit.begin_identity_check(actor, now)
            elif to is VisitState.LIVE:
                visit.go_live(actor, now)
            else:
                raise ValidationError(
                    "visit_target", "无效的会见状态", "Not a state one can move to"
                )
            await uow.visits.update(visit)
            events.extend(visit.events)
            return visit

        return await self._transaction(work)

    async def start_connection(self, officer_id: str, visit_id: str) -> Visit:
        async with self.uow() as uow:
            officer = await self._officer(uow, officer_id)
            visit = await self._visit(uow, visit_id)
        officer.require(Role.DUTY)
        officer.require_facility(visit.facility_id)
        return await self.advance_visit(visit_id, VisitState.CONNECTING, officer_actor(officer.id))

    async def end_visit(
        self, visit_id: str, reason: EndReason, actor: str, note: str | None = None
    ) -> Visit:
        """End the visit and kill its credentials in the same transaction."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._visit(uow, visit_id)
            await _end_and_revoke(uow, events, visit, reason, actor, self.clock.now(), note)
            return visit

        return await self._transaction(work)

    async def cut_visit(self, officer_id: str, visit_id: str, note: str) -> Visit:
        async with self.uow() as uow:
            officer = await self._officer(uow, officer_id)
            visit = await self._visit(uow, visit_id)
        officer.require(Role.DUTY)
        officer.require_facility(visit.facility_id)
        return await self.end_visit(
            visit_id, EndReason.OFFICER_CUT, officer_actor(officer.id), note
        )

    async def end_overdue_visits(self, facility_id: str) -> list[Visit]:
        """End every live visit whose time is up; the media plane calls this on a
        timer and after a restart, so the limit holds even if no client is left."""
        async with self.uow() as uow:
            live = await uow.visits.list_by_state(facility_id, frozenset({VisitState.LIVE}))
        now = self.clock.now()
        return [
            await self.end_visit(v.id, EndReason.TIME_LIMIT, SYSTEM) for v in live if v.is_over(now)
        ]

    # -- face checks ---------------------------------------------------------------
    async def record_identity_result(
        self,
        visit_id: str,
        *,
        passed: bool,
        persons: Sequence[Mapping[str, object]],
        snapshot_ref: str | None = None,
    ) -> Visit:
        """The automatic gate's decision (``visit.identity_checked``, with each
        person's distances); a pass takes a visit still in identity_check live in
        the same transaction. The officer's ``admit`` remains the override."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._visit(uow, visit_id)
            if visit.state is not VisitState.IDENTITY_CHECK:
                raise InvalidTransition(
                    "identity_not_checking",
                    "会见不在身份核验阶段",
                    "The visit is not in its identity check",
                )
            now = self.clock.now()
            events.append(
                _visit_event(
                    visit,
                    EventName.VISIT_IDENTITY_CHECKED,
                    FACE_GATE,
                    now,
                    passed=passed,
                    persons=list(persons),
                    snapshot_ref=snapshot_ref,
                )
            )
            if passed:
                visit.go_live(FACE_GATE, now)
                await uow.visits.update(visit)
                events.extend(visit.events)
            return visit

        return await self._transaction(work)

    async def admit_visit(self, officer_id: str, visit_id: str, reason: str) -> Visit:
        """The duty officer's override of the face gate (the card checked by eye, a
        visitor the gate cannot read): ``visit.identity_checked`` with ``override``
        and the officer's reason, and the visit goes live, in one transaction, so
        the ledger never shows a live visit without the decision that let it in."""
        why = _reason(reason, required=True)
        assert why is not None

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._checking_visit(uow, officer_id, visit_id)
            now, actor = self.clock.now(), officer_actor(officer_id)
            events.append(
                _visit_event(
                    visit,
                    EventName.VISIT_IDENTITY_CHECKED,
                    actor,
                    now,
                    passed=True,
                    override=True,
                    reason=why,
                    officer=officer_id,
                )
            )
            visit.go_live(actor, now)
            await uow.visits.update(visit)
            events.extend(visit.events)
            return visit

        return await self._transaction(work)

    async def deny_identity(self, officer_id: str, visit_id: str, reason: str | None) -> Visit:
        """The duty officer decides the visitor is not who the application says:
        ``visit.identity_checked`` (not passed, ``override``) and the visit ends with
        ``identity_failed``, its link and code revoked, in one transaction. The
        caller stops the media first, as for a cut."""
        why = _reason(reason or "", required=False)

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._checking_visit(uow, officer_id, visit_id)
            now, actor = self.clock.now(), officer_actor(officer_id)
            events.append(
                _visit_event(
                    visit,
                    EventName.VISIT_IDENTITY_CHECKED,
                    actor,
                    now,
                    passed=False,
                    override=True,
                    reason=why,
                    officer=officer_id,
                )
            )
            await _end_and_revoke(uow, events, visit, EndReason.IDENTITY_FAILED, actor, now, why)
            return visit

        return await self._transaction(work)

    async def _checking_visit(self, uow: UnitOfWork, officer_id: str, visit_id: str) -> Visit:
        """The visit, if ``officer_id`` is on duty at its facility and it is in its
        identity check (the only time the officer's identity decision means anything)."""
        officer = await self._officer(uow, officer_id)
        visit = await self._visit(uow, visit_id)
        officer.require(Role.DUTY)
        officer.require_facility(visit.facility_id)
        if visit.state is not VisitState.IDENTITY_CHECK:
            raise identity_not_checking()
        return visit

    async def raise_face_alert(self, visit_id: str, side: str, **details: object) -> Event:
        """An unexpected face agreed over several samples (``visit.face_alert``):
        the box, the votes and the distances; never the picture itself."""
        if side not in VISIT_SIDES:
            raise ValidationError("side_unknown", "未知的一方", "Unknown side", field="side")

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            return _visit_event(
                visit, EventName.VISIT_FACE_ALERT, FACE_WATCH, now, side=side, **details
            )

        return await self._visit_action(visit_id, make)

    async def record_presence(self, visit_id: str, side: str, **details: object) -> Event:
        """Continuous re-verification: an approved person absent or no longer
        matching for the configured time, or back (``visit.presence_changed``)."""
        if side not in VISIT_SIDES:
            raise ValidationError("side_unknown", "未知的一方", "Unknown side", field="side")

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            return _visit_event(
                visit, EventName.VISIT_PRESENCE_CHANGED, FACE_WATCH, now, side=side, **details
            )

        return await self._visit_action(visit_id, make)

    # -- during the live visit -------------------------------------------------
    async def _visit_action(
        self,
        visit_id: str,
        make: Callable[[UnitOfWork, Visit, datetime], Awaitable[Event]],
        officer_id: str | None = None,
    ) -> Event:
        """One audit event about a visit that does not change its state (a warning,
        a mute, a chat line); an officer acting must be on duty at the visit's facility."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Event:
            visit = await self._visit(uow, visit_id)
            if officer_id is not None:
                officer = await self._officer(uow, officer_id)
                officer.require(Role.DUTY)
                officer.require_facility(visit.facility_id)
            if visit.state not in ACTIVE_VISIT_STATES:
                raise InvalidTransition(
                    "visit_not_active",
                    "会见未在进行中，不能执行此操作",
                    "The visit is not in progress",
                )
            event = await make(uow, visit, self.clock.now())
            events.append(event)
            return event

        return await self._transaction(work)

    async def warn(self, officer_id: str, visit_id: str, text: str) -> Event:
        """The duty officer's warning, shown on both screens."""
        body = visit_text(text, WARNING_MAX_CHARS, "text")

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            return _visit_event(
                visit, EventName.VISIT_WARNED, officer_actor(officer_id), now, text=body
            )

        return await self._visit_action(visit_id, make, officer_id)

    async def set_muted(self, officer_id: str, visit_id: str, side: str, muted: bool) -> Event:
        """Mute or unmute one side's audio; the media plane applies it."""
        if side not in VISIT_SIDES:
            raise ValidationError(
                "side_unknown", "只能静音家属或终端一方", "Only relative or kiosk", field="side"
            )

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            return _visit_event(
                visit,
                EventName.VISIT_MUTE_CHANGED,
                officer_actor(officer_id),
                now,
                side=side,
                muted=bool(muted),
            )

        return await self._visit_action(visit_id, make, officer_id)

    async def chat(self, visit_id: str, sender_role: str, text: str) -> Event:
        """A text line between the relative and the kiosk while the visit is live.
        Lawyer meetings are not monitored: only the fact and length are kept."""
        if sender_role not in VISIT_SIDES:
            raise ValidationError(
                "sender_unknown", "只有家属和终端可以发送消息", "Only relative or kiosk may chat"
            )
        body = visit_text(text, CHAT_MAX_CHARS, "text")

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            if visit.state is not VisitState.LIVE:
                raise InvalidTransition(
                    "chat_not_live",
                    "会见尚未开始，暂不能发送消息",
                    "Messages can be sent once the visit is live",
                )
            if sender_role == "kiosk":
                actor = f"kiosk:{visit.kiosk_id}"
            else:
                credentials = await uow.credentials.for_visit(visit.id)
                actor = f"relative:{credentials[0].id}" if credentials else "relative"
            if visit.recorded:
                return _visit_event(
                    visit, EventName.VISIT_CHAT_SENT, actor, now, sender=sender_role, text=body
                )
            return _visit_event(
                visit, EventName.VISIT_CHAT_SENT, actor, now, sender=sender_role, length=len(body)
            )

        event = await self._visit_action(visit_id, make)
        if "text" not in event.data:
            # The sockets still need the words; the ledger does not keep them.
            return Event(
                event.name,
                event.subject_type,
                event.subject_id,
                event.actor,
                event.at,
                event.facility_id,
                {**event.data, "text": body},
            )
        return event

    async def get_visit(self, visit_id: str) -> Visit:
        async with self.uow() as uow:
            return await self._visit(uow, visit_id)

    async def visit_for_token(self, token: str) -> tuple[Visit, VisitCredential]:
        """The visit a link points at, without admitting anyone (for the join page)."""
        async with self.uow() as uow:
            credential = await uow.credentials.get_by_token_hash(token_digest(token))
            if credential is None:
                raise CredentialRejected(
                    "link_unknown", "会见链接无效", "This visit link is not valid"
                )
            return await self._visit(uow, credential.visit_id), credential

    async def visit_context(self, visit: Visit) -> tuple[Facility, Appointment]:
        async with self.uow() as uow:
            facility = await self._facility(uow, visit.facility_id)
            appointment = await uow.appointments.get(visit.appointment_id)
        assert appointment is not None
        return facility, appointment

    async def visit_application(self, visit: Visit) -> tuple[Facility, Application]:
        """The visit's facility and its application (whose visitors are the approved
        people on the relative's side)."""
        async with self.uow() as uow:
            facility = await self._facility(uow, visit.facility_id)
            appointment = await uow.appointments.get(visit.appointment_id)
            assert appointment is not None
            application = await uow.applications.get(appointment.application_id)
        if application is None:
            raise NotFound("application_not_found", "申请不存在", "No such application")
        return facility, application

    async def kiosk_day(self, token: str) -> tuple[Kiosk, Facility, list[KioskSlot]]:
        """What a kiosk shows: today's appointments on it, who is calling, their state."""
        kiosk = await self.kiosk_by_token(token)
        async with self.uow() as uow:
            facility = await self._facility(uow, kiosk.facility_id)
            local_now = self.clock.now().astimezone(facility.tz)
            start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
            slots = []
            for appointment in await uow.appointments.overlapping(
                kiosk.id, start, start + timedelta(days=1)
            ):
                application = await uow.applications.get(appointment.application_id)
                detainee = await uow.detainees.get(appointment.detainee_id)
                slots.append(
                    KioskSlot(
                        appointment,
                        await uow.visits.get_by_appointment(appointment.id),
                        detainee.name if detainee else "",
                        [f"{v.name}（{v.relationship.label_zh}）" for v in application.visitors]
                        if application
                        else [],
                    )
                )
        return kiosk, facility, slots

    # -- the ledger -------------------------------------------------------------
    async def verify_ledger(self) -> ChainVerdict:
        async with self.uow() as uow:
            records = await uow.audit.records()
        return verify_chain(records)


#: Longest reason an officer gives for admitting or turning away a visitor.
IDENTITY_REASON_MAX_CHARS = 200


def identity_not_checking() -> InvalidTransition:
    """The officer's identity decision came outside ``identity_check``."""
    return InvalidTransition(
        "identity_not_checking",
        "只有在身份核验阶段才能作出核验决定",
        "Identity decisions can only be made during the identity check",
    )


def _reason(raw: str, *, required: bool) -> str | None:
    """The officer's reason, cleaned like any visit text; an empty one is refused
    when ``required`` (admitting must say why) and None otherwise."""
    try:
        return visit_text(raw, IDENTITY_REASON_MAX_CHARS, "reason")
    except ValidationError as error:
        if error.code != "text_empty":
            raise
        if required:
            raise ValidationError(
                "reason_required",
                "请填写人工核验的理由",
                "Give the reason for admitting the visitor",
                field="reason",
            ) from None
        return None


async def _end_and_revoke(
    uow: UnitOfWork,
    events: list[Event],
    visit: Visit,
    reason: EndReason,
    actor: str,
    now: datetime,
    note: str | None,
) -> None:
    """End ``visit`` and revoke its link and code, inside the caller's transaction."""
    visit.end(reason, actor, now, note)
    await uow.visits.update(visit)
    events.extend(visit.events)
    for credential in await uow.credentials.for_visit(visit.id):
        credential.revoke(f"visit ended: {reason.value}", now, actor)
        await uow.credentials.update(credential)
        events.extend(credential.events)
