"""Visit applications: who wants to visit whom, why, and where the review stands.

States follow the seed's process (申请 → 受理 → 审核 → 预约):

    submitted ──accept──► accepted ──approve──► approved ──schedule──► scheduled
        │  ▲                  └──reject──► rejected
     return│resubmit
        ▼  │
      returned

Only close relatives (近亲属, Civil Code art. 1045) living in the PRC may
apply, for one of the four reasons of the guide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from .errors import InvalidTransition, ValidationError
from .events import Event, EventName, SubjectType, officer_actor
from .identity import validate_id_number, validate_name, validate_phone
from .officers import Officer, Role
from .quotas import ExceptionKind, LeaderException
from .workdays import Deadline

#: Ceiling of people on one application whatever a facility or an exception
#: says: the kiosk screen and the face checks are sized for it.
ABSOLUTE_MAX_VISITORS = 6
MAX_REASON_DETAIL = 500
MAX_DECISION_REASON = 500


class Relationship(StrEnum):
    SPOUSE = "spouse"
    PARENT = "parent"
    CHILD = "child"
    SIBLING = "sibling"
    GRANDPARENT = "grandparent"
    GRANDCHILD = "grandchild"

    @property
    def label_zh(self) -> str:
        return _RELATIONSHIP_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _RELATIONSHIP_LABELS[self][1]


_RELATIONSHIP_LABELS = {
    Relationship.SPOUSE: ("配偶", "spouse"),
    Relationship.PARENT: ("父母", "parent"),
    Relationship.CHILD: ("子女", "child"),
    Relationship.SIBLING: ("兄弟姐妹", "sibling"),
    Relationship.GRANDPARENT: ("祖父母、外祖父母", "grandparent"),
    Relationship.GRANDCHILD: ("孙子女、外孙子女", "grandchild"),
}


class VisitReason(StrEnum):
    DISTANCE_HARDSHIP = "distance_hardship"
    ILLNESS_AGE_DISABILITY = "illness_age_disability"
    FAMILY_EMERGENCY = "family_emergency"
    OTHER = "other"

    @property
    def label_zh(self) -> str:
        return _REASON_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _REASON_LABELS[self][1]


_REASON_LABELS = {
    VisitReason.DISTANCE_HARDSHIP: (
        "路途遥远、经济困难等原因无法到监管场所现场会见",
        "distance or hardship prevents a visit in person",
    ),
    VisitReason.ILLNESS_AGE_DISABILITY: (
        "因病、年老体弱、伤残等行动不便",
        "illness, old age or disability",
    ),
    VisitReason.FAMILY_EMERGENCY: ("家庭发生变故、灾害等特殊情况急需会见", "family emergency"),
    VisitReason.OTHER: ("其他特殊情况确需视频会见", "other special circumstances"),
}


E = TypeVar("E", bound=StrEnum)


def parse_choice(enum: type[E], raw: str, *, field: str, zh: str, en: str) -> E:
    for member in enum:
        if raw in (member.value, getattr(member, "label_zh", None)):
            return member
    raise ValidationError(f"{field}_invalid", zh, en, field=field)


def parse_relationship(raw: str, *, field: str = "relationship") -> Relationship:
    return parse_choice(
        Relationship,
        raw.strip(),
        field=field,
        zh="与被会见人关系须为近亲属：配偶、父母、子女、兄弟姐妹、祖父母外祖父母、孙子女外孙子女",
        en="The relationship must be a close relative: spouse, parent, child, sibling, "
        "grandparent or grandchild",
    )


def parse_reason(raw: str) -> VisitReason:
    return parse_choice(
        VisitReason,
        raw.strip(),
        field="reason",
        zh="请选择申请视频会见的原因",
        en="Please choose the reason for the video visit",
    )


class ApplicationState(StrEnum):
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"
    APPROVED = "approved"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"

    @property
    def label_zh(self) -> str:
        return {
            "submitted": "已提交，待受理",
            "returned": "材料不全，已退回",
            "accepted": "已受理，待审核",
            "approved": "审核通过，待预约",
            "rejected": "不予会见",
            "scheduled": "已预约",
        }[self.value]


@dataclass(frozen=True)
class Visitor:
    """One person who will appear on the relative's side of the visit."""

    name: str
    id_number: str
    phone: str
    relationship: Relationship
    #: Where the uploaded ID-card photo is stored; its face is the enrolment.
    id_photo_ref: str
    #: The enrolment of that face: 128 little-endian float64 (1024 bytes, see
    #: ``recognition.enrolment.encoding_to_bytes``), computed once at upload and
    #: never per frame. ``None`` for records made before enrolment existed.
    face_encoding: bytes | None = field(default=None, repr=False)

    @classmethod
    def validated(
        cls,
        *,
        name: str,
        id_number: str,
        phone: str,
        relationship: str,
        id_photo_ref: str,
        today: date,
        prefix: str = "",
        face_encoding: bytes | None = None,
    ) -> Visitor:
        if not id_photo_ref:
            raise ValidationError(
                "id_photo_missing",
                "请上传清晰的身份证照片",
                "Please upload a clear photo of the ID card",
                field=f"{prefix}id_photo",
            )
        return cls(
            name=validate_name(name, field=f"{prefix}name"),
            id_number=validate_id_number(id_number, today=today, field=f"{prefix}id_number"),
            phone=validate_phone(phone, field=f"{prefix}phone"),
            relationship=parse_relationship(relationship, field=f"{prefix}relationship"),
            id_photo_ref=id_photo_ref,
            face_encoding=face_encoding,
        )


_TRANSITIONS: dict[ApplicationState, frozenset[ApplicationState]] = {
    ApplicationState.SUBMITTED: frozenset({ApplicationState.ACCEPTED, ApplicationState.RETURNED}),
    ApplicationState.RETURNED: frozenset({ApplicationState.SUBMITTED}),
    ApplicationState.ACCEPTED: frozenset({ApplicationState.APPROVED, ApplicationState.REJECTED}),
    ApplicationState.APPROVED: frozenset({ApplicationState.SCHEDULED}),
    ApplicationState.REJECTED: frozenset(),
    ApplicationState.SCHEDULED: frozenset(),
}


def _require_text(text: str, *, code: str, zh: str, en: str, limit: int, field: str) -> str:
    clean = text.strip()
    if not clean:
        raise ValidationError(code, zh, en, field=field)
    if len(clean) > limit:
        raise ValidationError(
            f"{field}_too_long",
            f"内容不能超过{limit}个字",
            f"At most {limit} characters",
            field=field,
        )
    return clean


@dataclass
class Application:
    id: str
    number: str
    facility_id: str
    detainee_id: str
    visitors: list[Visitor]
    reason: VisitReason
    reason_detail: str
    submitted_at: datetime
    deadline: Deadline
    state: ApplicationState = ApplicationState.SUBMITTED
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    exceptions: list[LeaderException] = field(default_factory=list)
    version: int = 0
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def applicant(self) -> Visitor:
        return self.visitors[0]

    @classmethod
    def submit(
        cls,
        *,
        id: str,
        number: str,
        facility_id: str,
        detainee_id: str,
        visitors: list[Visitor],
        reason: VisitReason,
        reason_detail: str,
        max_people: int,
        now: datetime,
        deadline: Deadline,
    ) -> Application:
        check_visitor_count(visitors, max_people)
        if reason is VisitReason.OTHER:
            reason_detail = _require_text(
                reason_detail,
                code="reason_detail_missing",
                zh="选择“其他”时请说明具体原因",
                en="Please describe the reason when choosing 'other'",
                limit=MAX_REASON_DETAIL,
                field="reason_detail",
            )
        elif len(reason_detail.strip()) > MAX_REASON_DETAIL:
            raise ValidationError(
                "reason_detail_too_long",
                f"原因说明不能超过{MAX_REASON_DETAIL}个字",
                f"The explanation is limited to {MAX_REASON_DETAIL} characters",
                field="reason_detail",
            )
        app = cls(
            id=id,
            number=number,
            facility_id=facility_id,
            detainee_id=detainee_id,
            visitors=list(visitors),
            reason=reason,
            reason_detail=reason_detail.strip(),
            submitted_at=now,
            deadline=deadline,
        )
        app._record(
            EventName.APPLICATION_SUBMITTED,
            actor=f"applicant:{visitors[0].id_number[-4:]}",
            at=now,
            number=number,
            detainee_id=detainee_id,
            visitors=len(visitors),
            reason=reason,
            deadline=deadline.due,
            deadline_estimate=deadline.is_estimate,
        )
        return app

    # -- officer decisions -------------------------------------------------
    def accept(self, officer: Officer, now: datetime) -> None:
        officer.require(Role.INTAKE)
        self._decide(officer, ApplicationState.ACCEPTED, now, None)
        self._record(EventName.APPLICATION_ACCEPTED, actor=officer_actor(officer.id), at=now)

    def return_incomplete(self, officer: Officer, reason: str, now: datetime) -> None:
        officer.require(Role.INTAKE)
        why = self._reason_text(reason)
        self._decide(officer, ApplicationState.RETURNED, now, why)
        self._record(
            EventName.APPLICATION_RETURNED, actor=officer_actor(officer.id), at=now, reason=why
        )

    def resubmit(self, visitors: list[Visitor], max_people: int, now: datetime) -> None:
        check_visitor_count(visitors, max_people + self.extra_people())
        self._move(ApplicationState.SUBMITTED)
        self.visitors = list(visitors)
        self.decision_reason = None
        self._record(
            EventName.APPLICATION_RESUBMITTED,
            actor=f"applicant:{visitors[0].id_number[-4:]}",
            at=now,
        )

    def approve(
        self, officer: Officer, now: datetime, *, warnings: list[str] | None = None
    ) -> None:
        officer.require(Role.REVIEWER)
        self._decide(officer, ApplicationState.APPROVED, now, None)
        self._record(
            EventName.APPLICATION_APPROVED,
            actor=officer_actor(officer.id),
            at=now,
            acknowledged_warnings=warnings or [],
        )

    def reject(self, officer: Officer, reason: str, now: datetime) -> None:
        officer.require(Role.REVIEWER)
        why = self._reason_text(reason)
        self._decide(officer, ApplicationState.REJECTED, now, why)
        self._record(
            EventName.APPLICATION_REJECTED, actor=officer_actor(officer.id), at=now, reason=why
        )

    def mark_scheduled(self, officer: Officer, appointment_id: str, now: datetime) -> None:
        officer.require(Role.DUTY)
        officer.require_facility(self.facility_id)
        self._move(ApplicationState.SCHEDULED)
        self._record(
            EventName.APPLICATION_SCHEDULED,
            actor=officer_actor(officer.id),
            at=now,
            appointment_id=appointment_id,
        )

    def grant_exception(self, exception: LeaderException, leader: Officer) -> None:
        leader.require(Role.LEADER)
        leader.require_facility(self.facility_id)
        if self.state in (ApplicationState.REJECTED, ApplicationState.SCHEDULED):
            raise InvalidTransition(
                "exception_too_late",
                "该申请已办结，不能再批准例外",
                "The application is closed; no exception can be granted",
            )
        self.exceptions.append(exception)
        self._record(
            EventName.EXCEPTION_GRANTED,
            actor=officer_actor(leader.id),
            at=exception.granted_at,
            kind=exception.kind,
            reason=exception.reason,
            extra_minutes=exception.extra_minutes,
            extra_people=exception.extra_people,
        )

    # -- derived -------------------------------------------------------------
    def has_exception(self, kind: ExceptionKind) -> bool:
        return any(e.kind is kind for e in self.exceptions)

    def extra_minutes(self) -> int:
        return sum(e.extra_minutes for e in self.exceptions if e.kind is ExceptionKind.LONGER_VISIT)

    def extra_people(self) -> int:
        return sum(e.extra_people for e in self.exceptions if e.kind is ExceptionKind.MORE_PEOPLE)

    # -- internals -------------------------------------------------------------
    def _reason_text(self, reason: str) -> str:
        return _require_text(
            reason,
            code="decision_reason_missing",
            zh="请填写理由",
            en="Please give a reason",
            limit=MAX_DECISION_REASON,
            field="reason",
        )

    def _decide(
        self, officer: Officer, to: ApplicationState, now: datetime, why: str | None
    ) -> None:
        officer.require_facility(self.facility_id)
        self._move(to)
        self.decided_by = officer.id
        self.decided_at = now
        self.decision_reason = why

    def _move(self, to: ApplicationState) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise InvalidTransition(
                "application_state",
                f"申请当前状态为“{self.state.label_zh}”，不能执行此操作",
                f"The application is {self.state.value}; this step is not possible",
            )
        self.state = to

    def _record(self, name: EventName, *, actor: str, at: datetime, **data: object) -> None:
        self.events.append(
            Event.of(
                name,
                SubjectType.APPLICATION,
                self.id,
                actor=actor,
                at=at,
                facility_id=self.facility_id,
                **data,
            )
        )


def check_visitor_count(visitors: list[Visitor], max_people: int) -> None:
    limit = min(max_people, ABSOLUTE_MAX_VISITORS)
    if not visitors:
        raise ValidationError(
            "visitors_missing",
            "至少需要填写申请人信息",
            "The applicant's details are required",
            field="visitors",
        )
    if len(visitors) > limit:
        raise ValidationError(
            "visitors_too_many",
            f"每次会见人数不超过{limit}人",
            f"At most {limit} people may take part in one visit",
            field="visitors",
        )
    numbers = [v.id_number for v in visitors]
    if len(set(numbers)) != len(numbers):
        raise ValidationError(
            "visitors_duplicate",
            "同一身份证号码不能重复填写",
            "The same ID number appears twice",
            field="visitors",
        )
