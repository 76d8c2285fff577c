"""Setting a facility up: the facility and its rules, detainees with their
eligibility facts and their enrolled photo, officers and their logins, kiosks,
the working calendar.

A detainee's photo arrives here already judged and enrolled (the web layer runs
the face work off the event loop); this module only records the reference and
the encoding and never puts the encoding into an event."""

from __future__ import annotations

from ..appointments import Kiosk
from ..credentials import new_token, token_digest
from ..detainees import FACE_ENCODING_BYTES, Detainee
from ..errors import (
    CredentialRejected,
    NotFound,
    ValidationError,
)
from ..events import SYSTEM, Event, EventName, SubjectType, officer_actor
from ..facilities import Facility, FacilityKind, FacilityRules
from ..ids import new_id
from ..officers import Officer, Role, validate_username
from ..passwords import validate_new_password
from ..repository import UnitOfWork
from ..workdays import CalendarOverride, WorkdayCalendar
from .base import (
    ServiceBase,
    _rules_dict,
)


class SetupUseCases(ServiceBase):
    # -- facility set-up -----------------------------------------------------
    async def _check_setup_actor(self, uow: UnitOfWork, actor: str, facility_id: str) -> None:
        """Set-up done from the console must come from an admin of that facility;
        the command line and the demo act as themselves ("cli", "demo")."""
        if actor.startswith("officer:"):
            officer = await self._officer(uow, actor.removeprefix("officer:"))
            officer.require(Role.ADMIN)
            officer.require_facility(facility_id)

    async def create_facility(
        self,
        name: str,
        kind: FacilityKind,
        *,
        actor: str = SYSTEM,
        time_zone: str = "Asia/Shanghai",
        rules: FacilityRules | None = None,
    ) -> Facility:
        facility = Facility(
            new_id(), name.strip(), kind, rules or FacilityRules.default_for(kind), time_zone
        )

        async def work(uow: UnitOfWork, events: list[Event]) -> Facility:
            await uow.facilities.add(facility)
            events.append(
                Event.of(
                    EventName.FACILITY_CREATED,
                    SubjectType.FACILITY,
                    facility.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=facility.id,
                    name=facility.name,
                    kind=kind,
                    max_visit_minutes=facility.rules.max_visit_minutes,
                )
            )
            return facility

        return await self._transaction(work)

    async def register_detainee(self, detainee: Detainee, *, actor: str = SYSTEM) -> Detainee:
        async def work(uow: UnitOfWork, events: list[Event]) -> Detainee:
            await self._facility(uow, detainee.facility_id)
            await self._check_setup_actor(uow, actor, detainee.facility_id)
            await uow.detainees.add(detainee)
            events.append(
                Event.of(
                    EventName.DETAINEE_REGISTERED,
                    SubjectType.DETAINEE,
                    detainee.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=detainee.facility_id,
                )
            )
            return detainee

        return await self._transaction(work)

    async def create_officer(
        self,
        *,
        facility_id: str,
        username: str,
        display_name: str,
        password: str,
        roles: frozenset[Role],
        actor: str = SYSTEM,
    ) -> Officer:
        clean_username = validate_username(username)
        password_hash = await self._hash(validate_new_password(password))
        officer = Officer(
            new_id(), facility_id, clean_username, display_name.strip(), password_hash, roles
        )

        async def work(uow: UnitOfWork, events: list[Event]) -> Officer:
            await self._facility(uow, facility_id)
            await self._check_setup_actor(uow, actor, facility_id)
            await uow.officers.add(officer)
            events.append(
                Event.of(
                    EventName.OFFICER_CREATED,
                    SubjectType.OFFICER,
                    officer.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=facility_id,
                    username=clean_username,
                    roles=roles,
                )
            )
            return officer

        return await self._transaction(work)

    async def authenticate(self, username: str, password: str) -> Officer:
        async with self.uow() as uow:
            officer = await uow.officers.get_by_username(username.strip().lower())
        # Verify against a real hash even for unknown users so timing does not
        # tell which usernames exist.
        stored = officer.password_hash if officer else await self._dummy_hash()
        ok = await self._verify(stored, password)
        if officer is None or not officer.active or not ok:
            raise CredentialRejected(
                "login_failed", "用户名或密码错误", "Wrong username or password"
            )
        return officer

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self._hash("visitgate-dummy-password-1")
        return self._dummy

    async def register_kiosk(
        self, facility_id: str, name: str, *, actor: str = SYSTEM
    ) -> tuple[Kiosk, str]:
        """Returns the kiosk and its device token (shown once, stored hashed)."""
        token = new_token()
        kiosk = Kiosk(new_id(), facility_id, name.strip(), token_digest(token))

        async def work(uow: UnitOfWork, events: list[Event]) -> Kiosk:
            await self._facility(uow, facility_id)
            await self._check_setup_actor(uow, actor, facility_id)
            await uow.kiosks.add(kiosk)
            events.append(
                Event.of(
                    EventName.KIOSK_REGISTERED,
                    SubjectType.KIOSK,
                    kiosk.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=facility_id,
                    name=kiosk.name,
                )
            )
            return kiosk

        return await self._transaction(work), token

    async def update_facility_rules(self, admin_id: str, rules: FacilityRules) -> Facility:
        async def work(uow: UnitOfWork, events: list[Event]) -> Facility:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            facility = await self._facility(uow, admin.facility_id)
            before = facility.rules
            facility.rules = rules
            await uow.facilities.update(facility)
            events.append(
                Event.of(
                    EventName.FACILITY_RULES_CHANGED,
                    SubjectType.FACILITY,
                    facility.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=facility.id,
                    before=_rules_dict(before),
                    after=_rules_dict(rules),
                )
            )
            return facility

        return await self._transaction(work)

    async def update_detainee(self, admin_id: str, detainee: Detainee) -> Detainee:
        """Record the facts that decide eligibility (refusal, 严管, detox, transfer...)."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Detainee:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            stored = await uow.detainees.get(detainee.id)
            if stored is None:
                raise NotFound("detainee_not_found", "被羁押人员不存在", "No such detainee")
            admin.require_facility(stored.facility_id)
            detainee.facility_id = stored.facility_id
            # The photo and its enrolment change only through set_detainee_photo,
            # so an update of the facts (the API's PUT carries none) keeps them.
            detainee.photo_ref = stored.photo_ref
            detainee.face_encoding = stored.face_encoding
            await uow.detainees.update(detainee)
            events.append(
                Event.of(
                    EventName.DETAINEE_UPDATED,
                    SubjectType.DETAINEE,
                    detainee.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=detainee.facility_id,
                    refuses=detainee.refuses_video_visits,
                    strict_management=detainee.strict_management,
                    serious_violation=detainee.serious_violation,
                    foreign_national=detainee.foreign_national,
                    in_detox_treatment=detainee.in_detox_treatment,
                    pending_criminal_transfer=detainee.pending_criminal_transfer,
                    released_on=detainee.released_on,
                )
            )
            return detainee

        return await self._transaction(work)

    async def detainee(self, detainee_id: str) -> Detainee:
        """One detainee, or ``NotFound``. No facility check: the caller decides
        who may see it (the console and the API refuse other facilities')."""
        async with self.uow() as uow:
            return await self._detainee(uow, detainee_id)

    async def detainee_encoding(self, detainee_id: str) -> bytes | None:
        """The stored enrolment of the detainee's photo (1024 bytes), or ``None``
        when no photo has been enrolled yet: what a visit compares the kiosk
        side against, read once when the visit starts. ``NotFound`` for an
        unknown detainee."""
        return (await self.detainee(detainee_id)).face_encoding

    async def set_detainee_photo(
        self, admin_id: str, detainee_id: str, photo_ref: str, face_encoding: bytes
    ) -> Detainee:
        """Record the facility's photo of a detainee and the enrolment of its face
        (both replace any earlier ones). Only an admin of the detainee's facility
        may; the photo must be stored under that facility. The audit event says
        which photo replaced which and that a face was enrolled, never the
        encoding itself (biometric data stays out of the append-only chain)."""
        if len(face_encoding) != FACE_ENCODING_BYTES:
            raise ValidationError(
                "face_encoding_invalid",
                "人脸特征数据无效，请重新上传照片",
                "The face enrolment is invalid; upload the photo again",
                field="photo",
            )

        async def work(uow: UnitOfWork, events: list[Event]) -> Detainee:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            detainee = await self._detainee(uow, detainee_id)
            admin.require_facility(detainee.facility_id)
            if not photo_ref.startswith(f"{detainee.facility_id}/"):
                raise ValidationError(
                    "photo_ref_invalid",
                    "照片不属于本监所",
                    "The photo is not this facility's",
                    field="photo",
                )
            before = detainee.photo_ref
            detainee.photo_ref = photo_ref
            detainee.face_encoding = bytes(face_encoding)
            await uow.detainees.update(detainee)
            events.append(
                Event.of(
                    EventName.DETAINEE_UPDATED,
                    SubjectType.DETAINEE,
                    detainee.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=detainee.facility_id,
                    photo_ref_before=before,
                    photo_ref=photo_ref,
                    face_enrolled=True,
                )
            )
            return detainee

        return await self._transaction(work)

    @staticmethod
    async def _detainee(uow: UnitOfWork, detainee_id: str) -> Detainee:
        detainee = await uow.detainees.get(detainee_id)
        if detainee is None:
            raise NotFound("detainee_not_found", "被羁押人员不存在", "No such detainee")
        return detainee

    async def set_officer_active(self, admin_id: str, officer_id: str, active: bool) -> Officer:
        async def work(uow: UnitOfWork, events: list[Event]) -> Officer:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            officer = await uow.officers.get(officer_id)
            if officer is None:
                raise NotFound("officer_not_found", "民警账号不存在", "No such officer")
            admin.require_facility(officer.facility_id)
            if officer.id == admin.id and not active:
                raise ValidationError(
                    "cannot_disable_self",
                    "不能停用自己的账号",
                    "You cannot disable your own account",
                )
            officer.active = active
            await uow.officers.update(officer)
            events.append(
                Event.of(
                    EventName.OFFICER_UPDATED,
                    SubjectType.OFFICER,
                    officer.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=officer.facility_id,
                    active=active,
                )
            )
            return officer

        return await self._transaction(work)

    async def kiosk_by_token(self, token: str) -> Kiosk:
        async with self.uow() as uow:
            kiosk = await uow.kiosks.get_by_token_hash(token_digest(token))
        if kiosk is None or not kiosk.active:
            raise CredentialRejected("kiosk_token", "终端未授权", "This kiosk is not authorised")
        return kiosk

    # -- calendar --------------------------------------------------------------
    async def working_calendar(self) -> WorkdayCalendar:
        async with self.uow() as uow:
            return WorkdayCalendar(await uow.calendar.list())

    async def set_calendar_override(self, officer_id: str, override: CalendarOverride) -> None:
        async def work(uow: UnitOfWork, events: list[Event]) -> None:
            (await self._officer(uow, officer_id)).require(Role.ADMIN)
            await uow.calendar.put(override)
            events.append(
                Event.of(
                    EventName.CALENDAR_OVERRIDE_SET,
                    SubjectType.CALENDAR,
                    override.day.isoformat(),
                    actor=officer_actor(officer_id),
                    at=self.clock.now(),
                    facility_id=None,
                    is_workday=override.is_workday,
                    note=override.note,
                )
            )

        await self._transaction(work)
