"""Visit applications: who may apply, for what reason, and the review's states and roles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sessions.applications import (
    Application,
    ApplicationState,
    Relationship,
    Visitor,
    VisitReason,
    parse_reason,
    parse_relationship,
)
from sessions.errors import InvalidTransition, PermissionDenied, ValidationError
from sessions.events import EventName
from sessions.officers import Role
from sessions.quotas import ExceptionKind, LeaderException
from sessions.workdays import Deadline
from tests.unit._domain import TODAY, has_cjk, id_number, officer, visitor

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
DEADLINE = Deadline(date(2026, 3, 9))
S = ApplicationState

INTAKE = officer(Role.INTAKE, id="intake")
REVIEWER = officer(Role.REVIEWER, id="reviewer")
DUTY = officer(Role.DUTY, id="duty")
LEADER = officer(Role.LEADER, id="leader")
ADMIN = officer(Role.ADMIN, id="admin")


def submit(
    visitors: list[Visitor] | None = None,
    *,
    max_people: int = 3,
    reason: VisitReason = VisitReason.DISTANCE_HARDSHIP,
    detail: str = "",
) -> Application:
    return Application.submit(
        id="app1",
        number="20260302-000001",
        facility_id="f1",
        detainee_id="d1",
        visitors=visitors if visitors is not None else [visitor(0)],
        reason=reason,
        reason_detail=detail,
        max_people=max_people,
        now=NOW,
        deadline=DEADLINE,
    )


def in_state(state: ApplicationState) -> Application:
    app = submit()
    if state is S.RETURNED:
        app.return_incomplete(INTAKE, "身份证照片不清晰", NOW)
    if state in (S.ACCEPTED, S.APPROVED, S.REJECTED, S.SCHEDULED):
        app.accept(INTAKE, NOW)
    if state in (S.APPROVED, S.SCHEDULED):
        app.approve(REVIEWER, NOW)
    if state is S.REJECTED:
        app.reject(REVIEWER, "被会见人拒绝会见", NOW)
    if state is S.SCHEDULED:
        app.mark_scheduled(DUTY, "appt1", NOW)
    assert app.state is state
    return app


def names(app: Application) -> list[EventName]:
    return [e.name for e in app.events]


# --- relationships and reasons ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("spouse", Relationship.SPOUSE),
        ("配偶", Relationship.SPOUSE),
        ("parent", Relationship.PARENT),
        ("父母", Relationship.PARENT),
        ("child", Relationship.CHILD),
        ("子女", Relationship.CHILD),
        ("sibling", Relationship.SIBLING),
        ("兄弟姐妹", Relationship.SIBLING),
        ("grandparent", Relationship.GRANDPARENT),
        ("祖父母、外祖父母", Relationship.GRANDPARENT),
        ("grandchild", Relationship.GRANDCHILD),
        ("孙子女、外孙子女", Relationship.GRANDCHILD),
        ("  配偶 ", Relationship.SPOUSE),
    ],
)
def test_the_six_close_relatives_are_accepted_by_value_and_by_chinese_label(
    raw: str, expected: Relationship
) -> None:
    assert parse_relationship(raw) is expected


def test_there_are_exactly_six_close_relative_relationships() -> None:
    assert len(Relationship) == 6
    assert all(has_cjk(r.label_zh) for r in Relationship)


@pytest.mark.parametrize("raw", ["朋友", "uncle", "", "  ", "叔叔", "同事", "lawyer", "SPOUSE"])
def test_anyone_but_a_close_relative_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_relationship(raw, field="visitors.1.relationship")
    assert caught.value.code == "visitors.1.relationship_invalid"
    assert caught.value.field == "visitors.1.relationship"
    assert "近亲属" in caught.value.zh


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(r.value, r) for r in VisitReason] + [(r.label_zh, r) for r in VisitReason],
)
def test_the_four_reasons_parse_by_value_and_by_chinese_label(
    raw: str, expected: VisitReason
) -> None:
    assert parse_reason(raw) is expected


@pytest.mark.parametrize("raw", ["", "boredom", "想见"])
def test_an_unknown_reason_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_reason(raw)
    assert caught.value.code == "reason_invalid"
    assert has_cjk(caught.value.zh)


@pytest.mark.parametrize("detail", ["", "   "])
def test_the_reason_other_needs_a_description(detail: str) -> None:
    with pytest.raises(ValidationError) as caught:
        submit(reason=VisitReason.OTHER, detail=detail)
    assert caught.value.code == "reason_detail_missing"
    assert caught.value.field == "reason_detail"
    assert has_cjk(caught.value.zh)


def test_the_reason_other_with_a_description_keeps_it_trimmed() -> None:
    app = submit(reason=VisitReason.OTHER, detail="  孩子高考前想见父亲  ")
    assert app.reason_detail == "孩子高考前想见父亲"


def test_a_reason_description_over_500_characters_is_rejected_for_any_reason() -> None:
    for reason in VisitReason:
        with pytest.raises(ValidationError) as caught:
            submit(reason=reason, detail="字" * 501)
        assert caught.value.field == "reason_detail"
    assert submit(reason=VisitReason.OTHER, detail="字" * 500).reason_detail == "字" * 500


# --- visitors -----------------------------------------------------------------------------------


def test_a_visitor_is_validated_field_by_field_with_the_prefix_in_the_field_name() -> None:
    with pytest.raises(ValidationError) as caught:
        Visitor.validated(
            name="张三",
            id_number="110105194912310021",  # check digit should be X
            phone="13800138000",
            relationship="配偶",
            id_photo_ref="p.jpg",
            today=TODAY,
            prefix="visitors.2.",
        )
    assert (caught.value.code, caught.value.field) == (
        "id_number_check_digit",
        "visitors.2.id_number",
    )


def test_a_visitor_without_an_id_card_photo_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        Visitor.validated(
            name="张三",
            id_number=id_number(),
            phone="13800138000",
            relationship="配偶",
            id_photo_ref="",
            today=TODAY,
        )
    assert caught.value.code == "id_photo_missing"


def test_a_valid_visitor_is_stored_normalised() -> None:
    v = Visitor.validated(
        name=" 张  三 ",
        id_number="11010519491231002x",
        phone="+86 138-0013-8000",
        relationship="父母",
        id_photo_ref="p.jpg",
        today=TODAY,
    )
    assert v == Visitor("张 三", "11010519491231002X", "13800138000", Relationship.PARENT, "p.jpg")


# --- submission -----------------------------------------------------------------------------------


def test_submitting_records_the_application_and_a_submitted_event() -> None:
    app = submit([visitor(0), visitor(1)])
    assert app.state is S.SUBMITTED
    assert app.applicant == visitor(0)
    assert app.deadline == DEADLINE
    [event] = app.events
    assert event.name is EventName.APPLICATION_SUBMITTED
    assert event.actor == f"applicant:{visitor(0).id_number[-4:]}"
    assert event.data["visitors"] == 2
    assert event.data["deadline"] == "2026-03-09"
    assert event.data["deadline_estimate"] is False
    assert visitor(0).id_number not in str(event.data)


def test_three_visitors_are_allowed_and_a_fourth_is_rejected_when_max_people_is_3() -> None:
    assert len(submit([visitor(i) for i in range(3)]).visitors) == 3
    with pytest.raises(ValidationError) as caught:
        submit([visitor(i) for i in range(4)])
    assert caught.value.code == "visitors_too_many"
    assert "3" in caught.value.zh and "3" in caught.value.en


def test_no_facility_rule_lets_more_than_six_people_apply() -> None:
    with pytest.raises(ValidationError) as caught:
        submit([visitor(i) for i in range(7)], max_people=10)
    assert caught.value.code == "visitors_too_many"
    assert "6" in caught.value.zh


def test_an_application_without_visitors_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        submit([])
    assert caught.value.code == "visitors_missing"


def test_the_same_id_number_twice_is_rejected() -> None:
    twin = Visitor.validated(
        name="李四",
        id_number=visitor(0).id_number,
        phone="13900139000",
        relationship="子女",
        id_photo_ref="other.jpg",
        today=TODAY,
    )
    with pytest.raises(ValidationError) as caught:
        submit([visitor(0), twin])
    assert caught.value.code == "visitors_duplicate"


# --- the review, its roles and its states ---------------------------------------------------------


def test_the_full_review_records_each_step_with_the_officer_who_took_it() -> None:
    app = in_state(S.SCHEDULED)
    assert names(app) == [
        EventName.APPLICATION_SUBMITTED,
        EventName.APPLICATION_ACCEPTED,
        EventName.APPLICATION_APPROVED,
        EventName.APPLICATION_SCHEDULED,
    ]
    assert [e.actor for e in app.events[1:]] == [
        "officer:intake",
        "officer:reviewer",
        "officer:duty",
    ]
    assert app.events[-1].data["appointment_id"] == "appt1"
    assert app.decided_by == "reviewer"


def test_approval_records_the_warnings_the_reviewer_acknowledged() -> None:
    app = in_state(S.ACCEPTED)
    app.approve(REVIEWER, LATER, warnings=["截止日期为估算"])
    assert app.events[-1].data["acknowledged_warnings"] == ["截止日期为估算"]
    assert (app.decided_by, app.decided_at, app.decision_reason) == ("reviewer", LATER, None)


def test_a_rejection_needs_a_reason_and_keeps_it() -> None:
    app = in_state(S.ACCEPTED)
    with pytest.raises(ValidationError) as caught:
        app.reject(REVIEWER, "  ", LATER)
    assert caught.value.code == "decision_reason_missing"
    assert app.state is S.ACCEPTED
    app.reject(REVIEWER, " 被会见人拒绝会见 ", LATER)
    assert app.state is S.REJECTED
    assert app.decision_reason == "被会见人拒绝会见"
    assert app.events[-1].name is EventName.APPLICATION_REJECTED
    assert app.events[-1].data["reason"] == "被会见人拒绝会见"


def test_returning_for_missing_material_and_resubmitting_goes_back_to_submitted() -> None:
    app = submit()
    with pytest.raises(ValidationError):
        app.return_incomplete(INTAKE, "", NOW)
    app.return_incomplete(INTAKE, "身份证照片不清晰", NOW)
    assert (app.state, app.decision_reason) == (S.RETURNED, "身份证照片不清晰")
    app.resubmit([visitor(0), visitor(1)], 3, LATER)
    assert (app.state, app.decision_reason) == (S.SUBMITTED, None)
    assert len(app.visitors) == 2
    assert names(app)[-2:] == [EventName.APPLICATION_RETURNED, EventName.APPLICATION_RESUBMITTED]


def test_resubmitting_may_use_people_granted_by_a_more_people_exception() -> None:
    app = submit()
    app.grant_exception(
        LeaderException.grant(
            ExceptionKind.MORE_PEOPLE,
            granted_by="leader",
            reason="子女众多",
            at=NOW,
            extra_people=1,
        ),
        LEADER,
    )
    app.return_incomplete(INTAKE, "补充材料", NOW)
    app.resubmit([visitor(i) for i in range(4)], 3, LATER)
    assert len(app.visitors) == 4
    app.return_incomplete(INTAKE, "补充材料", LATER)
    with pytest.raises(ValidationError):
        app.resubmit([visitor(i) for i in range(5)], 3, LATER)


STEPS = {
    "accept": (Role.INTAKE, lambda app, o: app.accept(o, LATER)),
    "return": (Role.INTAKE, lambda app, o: app.return_incomplete(o, "材料不全", LATER)),
    "approve": (Role.REVIEWER, lambda app, o: app.approve(o, LATER)),
    "reject": (Role.REVIEWER, lambda app, o: app.reject(o, "不符合条件", LATER)),
    "schedule": (Role.DUTY, lambda app, o: app.mark_scheduled(o, "appt9", LATER)),
}
STATE_BEFORE = {
    "accept": S.SUBMITTED,
    "return": S.SUBMITTED,
    "approve": S.ACCEPTED,
    "reject": S.ACCEPTED,
    "schedule": S.APPROVED,
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_is_refused_to_every_role_but_its_own(step: str) -> None:
    needed, do = STEPS[step]
    for role in Role:
        if role is needed:
            continue
        app = in_state(STATE_BEFORE[step])
        before = len(app.events)
        with pytest.raises(PermissionDenied) as caught:
            do(app, officer(role, id="other"))
        assert caught.value.code == "role_required"
        assert needed.label_zh in caught.value.zh
        assert app.state is STATE_BEFORE[step]
        assert len(app.events) == before


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_is_refused_to_an_inactive_officer_with_the_right_role(step: str) -> None:
    needed, do = STEPS[step]
    app = in_state(STATE_BEFORE[step])
    with pytest.raises(PermissionDenied):
        do(app, officer(needed, id="retired", active=False))
    assert app.state is STATE_BEFORE[step]


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_is_refused_to_an_officer_of_another_facility(step: str) -> None:
    needed, do = STEPS[step]
    app = in_state(STATE_BEFORE[step])
    before = len(app.events)
    with pytest.raises(PermissionDenied) as caught:
        do(app, officer(needed, id="elsewhere", facility_id="f2"))
    assert caught.value.code == "other_facility"
    assert app.state is STATE_BEFORE[step]
    assert len(app.events) == before


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_from_any_other_state_is_an_invalid_transition(step: str) -> None:
    needed, do = STEPS[step]
    for state in S:
        if state is STATE_BEFORE[step]:
            continue
        app = in_state(state)
        before = len(app.events)
        with pytest.raises(InvalidTransition) as caught:
            do(app, officer(needed, id="right-role"))
        assert caught.value.code == "application_state"
        assert state.label_zh in caught.value.zh
        assert app.state is state
        assert len(app.events) == before


@pytest.mark.parametrize("state", [s for s in S if s is not S.RETURNED])
def test_only_a_returned_application_can_be_resubmitted(state: ApplicationState) -> None:
    app = in_state(state)
    with pytest.raises(InvalidTransition):
        app.resubmit([visitor(0)], 3, LATER)
    assert app.state is state


# --- leaders' exceptions --------------------------------------------------------------------------


def exception(kind: ExceptionKind = ExceptionKind.LONGER_VISIT) -> LeaderException:
    return LeaderException.grant(
        kind, granted_by="leader", reason="路途遥远", at=LATER, extra_minutes=20
    )


@pytest.mark.parametrize("state", [S.SUBMITTED, S.RETURNED, S.ACCEPTED, S.APPROVED])
def test_a_leader_may_grant_an_exception_until_the_application_is_closed(
    state: ApplicationState,
) -> None:
    app = in_state(state)
    app.grant_exception(exception(), LEADER)
    assert app.has_exception(ExceptionKind.LONGER_VISIT)
    assert not app.has_exception(ExceptionKind.EXTRA_VISIT)
    assert app.extra_minutes() == 20
    event = app.events[-1]
    assert event.name is EventName.EXCEPTION_GRANTED
    assert event.actor == "officer:leader"
    assert event.data["kind"] == "longer_visit" and event.data["extra_minutes"] == 20


@pytest.mark.parametrize("state", [S.REJECTED, S.SCHEDULED])
def test_no_exception_can_be_granted_once_the_application_is_closed(
    state: ApplicationState,
) -> None:
    app = in_state(state)
    with pytest.raises(InvalidTransition) as caught:
        app.grant_exception(exception(), LEADER)
    assert caught.value.code == "exception_too_late"
    assert app.exceptions == []


def test_only_a_leader_may_grant_an_exception() -> None:
    app = in_state(S.ACCEPTED)
    for role in (Role.INTAKE, Role.REVIEWER, Role.DUTY, Role.ADMIN):
        with pytest.raises(PermissionDenied):
            app.grant_exception(exception(), officer(role))
    assert app.exceptions == []


def test_a_leader_of_another_facility_may_not_grant_an_exception() -> None:
    app = in_state(S.ACCEPTED)
    with pytest.raises(PermissionDenied) as caught:
        app.grant_exception(exception(), officer(Role.LEADER, facility_id="f2"))
    assert caught.value.code == "other_facility"
    assert app.exceptions == []


def test_extra_minutes_and_people_add_up_across_exceptions_of_their_kind() -> None:
    app = in_state(S.ACCEPTED)
    app.grant_exception(exception(), LEADER)
    app.grant_exception(exception(), LEADER)
    app.grant_exception(
        LeaderException.grant(
            ExceptionKind.MORE_PEOPLE, granted_by="leader", reason="子女", at=LATER, extra_people=2
        ),
        LEADER,
    )
    assert (app.extra_minutes(), app.extra_people()) == (40, 2)


def test_every_application_state_has_a_chinese_label() -> None:
    assert all(has_cjk(s.label_zh) for s in S)
    assert all(has_cjk(r.label_zh) for r in VisitReason)
