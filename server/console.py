"""The officers' console: work queues, one application with its review brief
and history, the decisions each post makes, the ledger (台账) with its CSV
export, ID-card and detainee photos, and the admin's facility set-up (with each
detainee's page, where the facility's photo of them is uploaded and enrolled).

Rendering and form parsing only. Every page needs a signed-in officer and
every action its post (``require_roles``), but the service checks the role
and the facility again: this module must never be the only guard. After a
successful POST the browser is redirected (303) with a flash message; a
refused one re-renders the page with the domain error's Chinese message and
its status.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from typing import Any

from aiohttp import web
from aiohttp_session import get_session
from multidict import MultiDictProxy

from sessions.applications import ApplicationState
from sessions.audit import AuditRecord
from sessions.detainees import Detainee
from sessions.errors import DomainError, Language, NotFound, PermissionDenied, ValidationError
from sessions.events import officer_actor
from sessions.facilities import (
    Facility,
    FacilityRules,
    OpeningHours,
    QuotaPeriod,
    UnexpectedFacePolicy,
)
from sessions.identity import validate_name
from sessions.ids import new_id
from sessions.notifications import Notice, NoticeKind
from sessions.officers import Officer, Role, parse_roles
from sessions.queries import ApplicationRow
from sessions.quotas import ExceptionKind
from sessions.services import IDENTITY_REASON_MAX_CHARS
from sessions.workdays import CalendarOverride

from . import auth
from .auth import csrf_token, flash, pop_flash, require_roles
from .console_faces import face_rows
from .i18n import pick_language
from .keys import CLOCK, QUERIES, SERVICE, SETTINGS
from .pages import _render
from .snapshots import SNAPSHOTS, snapshot_ref
from .uploads import DETAINEE_PHOTO_FIELD, PHOTOS, posted_photo, replace_detainee_photo

FormData = MultiDictProxy[str | bytes | Any]
_REVEAL = "reveal_secrets_for"  # session: show the visit's link + code once, on this page
MAX_FIELD = 500
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

EVENT_LABELS = {
    "facility.created": "监所创建",
    "facility.rules_changed": "会见规则变更",
    "detainee.registered": "登记被羁押人员",
    "detainee.updated": "更新被羁押人员情况",
    "officer.created": "创建民警账号",
    "officer.password_changed": "修改密码",
    "officer.updated": "更新民警账号",
    "kiosk.registered": "登记会见终端",
    "application.submitted": "提交申请",
    "application.returned": "材料不全退回",
    "application.resubmitted": "重新提交",
    "application.accepted": "受理",
    "application.approved": "审核通过",
    "application.rejected": "不予会见",
    "application.scheduled": "预约会见",
    "application.exception_granted": "所领导批准例外",
    "appointment.booked": "预约终端时段",
    "credential.issued": "发放会见链接和会见码",
    "credential.failed_attempt": "会见码输入错误",
    "credential.locked": "会见码已锁定",
    "credential.revoked": "会见码作废",
    "visit.lobby_entered": "家属进入等候室",
    "visit.rejoined": "家属重新进入",
    "visit.connecting": "民警开机联线",
    "visit.identity_check_started": "开始身份核验",
    "visit.went_live": "会见开始",
    "visit.ended": "会见结束",
    "visit.warned": "民警提醒",
    "visit.mute_changed": "静音变更",
    "visit.chat_sent": "文字消息",
    "visit.identity_checked": "人脸身份核验",
    "visit.face_alert": "陌生人脸告警",
    "visit.presence_changed": "会见人在场核验",
    "calendar.override_set": "设置工作日安排",
    "calendar.override_removed": "删除工作日安排",
}
NOTICE_LABELS = {
    NoticeKind.APPLICATION_RECEIVED: "申请已收到",
    NoticeKind.APPLICATION_RETURNED: "材料不全退回",
    NoticeKind.APPLICATION_APPROVED: "审核通过",
    NoticeKind.APPLICATION_REJECTED: "不予会见",
    NoticeKind.VISIT_SCHEDULED: "会见已预约（含链接和会见码）",
}
PERIOD_LABELS = {
    QuotaPeriod.CALENDAR_MONTH: "每自然月",
    QuotaPeriod.WHOLE_DETENTION: "整个羁押期间",
}
FACE_POLICY_LABELS = {
    UnexpectedFacePolicy.ALERT_ONLY: "仅提醒民警",
    UnexpectedFacePolicy.AUTO_CUT: "自动中止会见",
}
#: Who the ledger names for the automatic face checks.
FACE_ACTORS = {"system:face_gate": "自动身份核验", "system:face_watch": "人脸监测"}
#: What the officer's override says unless they write something else.
ADMIT_REASON = "民警人工核验身份证件与本人一致"
ELIGIBILITY_FACTS = (
    ("refuses_video_visits", "本人拒绝会见"),
    ("strict_management", "严管"),
    ("serious_violation", "严重违反监管规定"),
    ("foreign_national", "外国籍"),
    ("in_detox_treatment", "药物脱毒治疗中"),
    ("pending_criminal_transfer", "拟转刑事拘留、逮捕"),
)


# -- helpers -----------------------------------------------------------------------
def _lang(request: web.Request) -> Language:
    return pick_language(request, request.app[SETTINGS].language)


def _officer(request: web.Request) -> Officer:
    officer: Officer = request["officer"]
    return officer


def _local(when: datetime | None, facility: Facility, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return when.astimezone(facility.tz).strftime(fmt) if when else ""


def mask_id_number(number: str) -> str:
    return number[:6] + "*" * 8 + number[-4:] if len(number) >= 10 else "*" * len(number)


async def _page(
    request: web.Request, template: str, *, status: int = 200, **extra: Any
) -> web.Response:
    officer = _officer(request)
    facility = extra.pop("facility", None) or await request.app[QUERIES].facility_of(officer.id)
    return _render(
        request,
        template,
        status=status,
        officer=officer,
        officer_roles="、".join(r.label_zh for r in sorted(officer.roles)),
        facility=facility,
        csrf=csrf_token(request),
        flash=await pop_flash(request),
        local=lambda when, fmt="%Y-%m-%d %H:%M": _local(when, facility, fmt),
        Role=Role,
        has=lambda role: role in officer.roles,
        **extra,
    )


def _error_page(request: web.Request, error: DomainError) -> web.Response:
    return _render(
        request, "error.html", status=error.status, message=error.message(_lang(request))
    )


def _text(form: FormData, name: str, *, limit: int = MAX_FIELD) -> str:
    value = form.get(name, "")
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise ValidationError(
            f"{name}_too_long",
            f"内容不能超过{limit}个字",
            f"At most {limit} characters",
            field=name,
        )
    return text


def _int(form: FormData, name: str, label: str, default: int | None = None) -> int:
    raw = _text(form, name, limit=10)
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(
            f"{name}_format", f"{label}须填写整数", f"{label}: a whole number", field=name
        ) from None


def _date(raw: str, name: str, label: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"{name}_format",
            f"{label}格式应为 YYYY-MM-DD",
            f"{label}: use YYYY-MM-DD",
            field=name,
        ) from None


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("1", "on", "yes", "true")


def _actor_label(actor: str, names: dict[str, str]) -> str:
    kind, _, rest = actor.partition(":")
    if kind == "officer":
        return names.get(rest, "民警")
    if kind == "applicant":
        return f"申请人（身份证尾号{rest}）"
    if kind == "relative":
        return "家属"
    return {"system": "系统", "demo": "演示数据", "cli": "命令行"}.get(actor, actor)


def _data_text(record: AuditRecord) -> str:
    return "；".join(f"{k}: {v}" for k, v in record.data.items() if k != "facility_id")


def _notice_state(notice: Notice, facility: Facility) -> str:
    if notice.sent_at:
        return f"已发送 {_local(notice.sent_at, facility)}"
    if notice.failed_at:
        return f"发送失败（{notice.attempts}次）：{notice.last_error or ''}"
    if notice.attempts:
        return f"重试中（已尝试{notice.attempts}次）：{notice.last_error or ''}"
    return "待发送"


# -- dashboard ------------------------------------------------------------------------
@require_roles()
async def dashboard(request: web.Request) -> web.StreamResponse:
    officer = _officer(request)
    queries = request.app[QUERIES]
    queues = await queries.queues(officer.id)
    _officers, kiosks, _detainees = await queries.staff(officer.id)
    sections = [
        ("overdue", "已超期", queues.overdue),
        ("to_accept", "待受理", queues.to_accept),
        ("to_review", "待审核", queues.to_review),
        ("to_schedule", "待预约", queues.to_schedule),
        ("due_soon", "即将到期", queues.due_soon),
    ]
    return await _page(
        request,
        "console/dashboard.html",
        sections=sections,
        today=queues.today,
        kiosk_names={k.id: k.name for k in kiosks},
    )


# -- one application ------------------------------------------------------------------
async def _application_page(
    request: web.Request, application_id: str, *, status: int = 200, error: str | None = None
) -> web.Response:
    officer = _officer(request)
    queries = request.app[QUERIES]
    service = request.app[SERVICE]
    try:
        detail = await queries.application(officer.id, application_id)
        brief = await service.review_brief(officer.id, application_id)
        officers, _kiosks, _detainees = await queries.staff(officer.id)
    except DomainError as failure:
        return _error_page(request, failure)
    facility = detail.facility
    names = {o.id: o.display_name for o in officers}
    history = [
        {
            "at": _local(r.at, facility, "%Y-%m-%d %H:%M:%S"),
            "actor": _actor_label(r.actor, names),
            "event": EVENT_LABELS.get(r.event, r.event),
            "data": _data_text(r),
        }
        for r in detail.history
    ]
    notices = [
        {
            "kind": NOTICE_LABELS.get(n.kind, n.kind.value),
            "created": _local(n.created_at, facility),
            "state": _notice_state(n, facility),
        }
        for n in detail.notices
    ]
    secrets = None
    session = await get_session(request)
    if session.get(_REVEAL) == application_id:
        del session[_REVEAL]
        issued = (await service.status_of(application_id)).secrets
        if issued is not None:
            secrets = {
                "link": f"{request.app[SETTINGS].base_url()}/v/{issued.token}",
                "code": issued.code,
            }
    application = detail.row.application
    return await _page(
        request,
        "console/application.html",
        status=status,
        facility=facility,
        error=error,
        row=detail.row,
        application=application,
        brief=brief,
        history=history,
        notices=notices,
        kiosks=[k for k in detail.kiosks if k.active],
        kiosk_names={k.id: k.name for k in detail.kiosks},
        secrets=secrets,
        names=names,
        exception_kinds=list(ExceptionKind),
        deadline_warning=application.deadline.warning("zh"),
        States=ApplicationState,
        can_grant=application.state not in (ApplicationState.REJECTED, ApplicationState.SCHEDULED),
        default_date=request.app[CLOCK].now().astimezone(facility.tz).date().isoformat(),
    )


@require_roles()
async def application_page(request: web.Request) -> web.StreamResponse:
    return await _application_page(request, request.match_info["id"])


@require_roles(Role.DUTY, Role.LEADER)
async def watch_page(request: web.Request) -> web.StreamResponse:
    """The duty officer's live view of one visit (the page talks to /ws/visit), with
    the visit's face checks so far read back from the ledger."""
    officer = _officer(request)
    service = request.app[SERVICE]
    try:
        visit = await service.get_visit(request.match_info["visit_id"])
        officer.require_facility(visit.facility_id)
        if visit.application_id is None:
            raise NotFound("visit_not_found", "会见不存在", "No such visit")
        detail = await request.app[QUERIES].application(officer.id, visit.application_id)
        officers, _kiosks, _detainees = await request.app[QUERIES].staff(officer.id)
    except DomainError as failure:
        return _error_page(request, failure)
    application = detail.row.application
    facility = detail.facility
    # The gate names visitors by their place in the application (server.faces).
    people = [
        {"person": f"visitor-{index}", "name": v.name, "relationship": v.relationship.label_zh}
        for index, v in enumerate(application.visitors, start=1)
    ]
    staff = {o.id: o.display_name for o in officers}
    face_history = face_rows(
        detail.history,
        visit.id,
        names={p["person"]: p["name"] for p in people},
        actor_label=lambda actor: FACE_ACTORS.get(actor) or _actor_label(actor, staff),
        local_time=lambda record: _local(record.at, facility, "%H:%M:%S"),
    )
    response = await _page(
        request,
        "console/watch.html",
        facility=facility,
        visit=visit,
        visitors=[f"{v.name}（{v.relationship.label_zh}）" for v in application.visitors],
        people=people,
        face_history=face_history,
        admit_reason=ADMIT_REASON,
        reason_max=IDENTITY_REASON_MAX_CHARS,
        detainee_name=detail.row.detainee.name if detail.row.detainee else "",
    )
    # Live snapshots arrive in the frames as data: URLs (stored ones come from the route below).
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    return response


@require_roles()
async def snapshot(request: web.Request) -> web.StreamResponse:
    """One face-check snapshot of a visit, to officers of the visit's facility only;
    never cached (it is a picture of a person, kept as evidence)."""
    officer = _officer(request)
    store = request.app.get(SNAPSHOTS)
    not_found = NotFound("snapshot_not_found", "抓拍图片不存在", "No such snapshot")
    visit_id = request.match_info["visit_id"]
    if store is None:
        return _error_page(request, not_found)
    try:
        visit = await request.app[SERVICE].get_visit(visit_id)
    except DomainError as failure:
        return _error_page(request, failure)
    if visit.facility_id != officer.facility_id:
        return _error_page(
            request,
            PermissionDenied(
                "other_facility", "无权查看其他监所的抓拍图片", "Another facility's snapshot"
            ),
        )
    try:
        data = await store.read_async(
            visit.facility_id, snapshot_ref(visit.id, request.match_info["name"])
        )
    except (ValueError, OSError):
        return _error_page(request, not_found)
    response = web.Response(body=data, content_type="image/jpeg")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


Action = Callable[[web.Request, Officer, str, FormData], Awaitable[str]]


def _action(role: Role, act: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """POST handler: run ``act`` (returns the flash message), then redirect back;
    on a domain error re-render the application with the message."""

    @require_roles(role)
    async def handler(request: web.Request) -> web.StreamResponse:
        application_id = request.match_info["id"]
        form = await request.post()
        try:
            message = await act(request, _officer(request), application_id, form)
        except DomainError as error:
            return await _application_page(
                request, application_id, status=error.status, error=error.message(_lang(request))
            )
        await flash(request, message)
        raise web.HTTPSeeOther(f"/console/applications/{application_id}")

    return handler


async def _accept(request: web.Request, officer: Officer, app_id: str, form: FormData) -> str:
    await request.app[SERVICE].accept(officer.id, app_id)
    return "已受理"


async def _return(request: web.Request, officer: Officer, app_id: str, form: FormData) -> str:
    await request.app[SERVICE].return_incomplete(officer.id, app_id, _text(form, "reason"))
    return "已退回申请人补充材料"


async def _approve(request: web.Request, officer: Officer, app_id: str, form: FormData) -> str:
    await request.app[SERVICE].approve(officer.id, app_id)
    return "审核通过"


async def _reject(request: web.Request, officer: Officer, app_id: str, form: FormData) -> str:
    await request.app[SERVICE].reject(officer.id, app_id, _text(form, "reason"))
    return "已决定不予会见"


async def _grant(request: web.Request, officer: Officer, app_id: str, form: FormData) -> str:
    raw_kind = _text(form, "kind", limit=40)
    try:
        kind = ExceptionKind(raw_kind)
    except ValueError:
        raise ValidationError(
            "exception_kind", "请选择例外类型", "Choose the kind of exception", field="kind"
        ) from None
    await request.app[SERVICE].grant_exception(
        officer.id,
        app_id,
        kind,
        _text(form, "reason"),
        extra_minutes=_int(form, "extra_minutes", "延长分钟数", 0),
        extra_people=_int(form, "extra_people", "增加人数", 0),
    )
    return f"已批准例外：{kind.label_zh}"


async def _schedule(request: web.Request, officer: Officer, app_id: str, form: FormData) -> str:
    facility = await request.app[QUERIES].facility_of(officer.id)
    day_text, time_text = _text(form, "date", limit=10), _text(form, "time", limit=8)
    try:
        starts_at = datetime.combine(
            date.fromisoformat(day_text), time.fromisoformat(time_text), facility.tz
        )
    except ValueError:
        raise ValidationError(
            "starts_at_format",
            "请填写预约日期和时间（如 2026-03-02 和 10:00）",
            "Give the date and time (e.g. 2026-03-02 and 10:00)",
            field="starts_at",
        ) from None
    await request.app[SERVICE].schedule(officer.id, app_id, _text(form, "kiosk_id"), starts_at)
    (await get_session(request))[_REVEAL] = app_id
    return "已预约。会见链接和会见码只显示这一次，请告知申请人"


# -- photos ---------------------------------------------------------------------------
@require_roles()
async def photo(request: web.Request) -> web.StreamResponse:
    officer = _officer(request)
    store = request.app.get(PHOTOS)
    ref = request.match_info["ref"]
    not_found = NotFound("photo_not_found", "照片不存在", "No such photo")
    if store is None:
        return _error_page(request, not_found)
    try:
        facility_id = store.facility_of(ref)
        path = store.path_of(ref)
    except ValueError:
        return _error_page(request, not_found)
    if facility_id != officer.facility_id:
        return _error_page(
            request,
            PermissionDenied(
                "other_facility", "无权查看其他监所的照片", "Another facility's photo"
            ),
        )
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:
        return _error_page(request, not_found)
    content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
    response = web.Response(body=data, content_type=content_type)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# -- the ledger ------------------------------------------------------------------------
def _ledger_filters(
    request: web.Request,
) -> tuple[date | None, date | None, frozenset[ApplicationState] | None, dict[str, str]]:
    raw = {k: request.query.get(k, "").strip()[:20] for k in ("date_from", "date_to", "state")}
    date_from = _date(raw["date_from"], "date_from", "开始日期") if raw["date_from"] else None
    date_to = _date(raw["date_to"], "date_to", "结束日期") if raw["date_to"] else None
    states = None
    if raw["state"]:
        try:
            states = frozenset({ApplicationState(raw["state"])})
        except ValueError:
            raise ValidationError(
                "state_invalid", "请选择有效的申请状态", "Unknown state", field="state"
            ) from None
    return date_from, date_to, states, raw


def _ledger_cells(row: ApplicationRow, facility: Facility) -> list[str]:
    application = row.application
    visit = row.visit
    return [
        application.number,
        _local(application.submitted_at, facility),
        row.detainee.name if row.detainee else "",
        application.applicant.name,
        application.applicant.relationship.label_zh,
        str(len(application.visitors)),
        application.state.label_zh,
        application.deadline.due.isoformat(),
        _local(row.appointment.starts_at, facility) if row.appointment else "",
        visit.state.label_zh if visit else "",
        visit.end_reason.label_zh if visit and visit.end_reason else "",
    ]


LEDGER_HEADER = [
    "申请编号",
    "提交时间",
    "被会见人",
    "申请人",
    "关系",
    "会见人数",
    "申请状态",
    "审核截止日期",
    "预约时间",
    "会见状态",
    "结束原因",
]


@require_roles()
async def ledger(request: web.Request) -> web.StreamResponse:
    officer = _officer(request)
    queries = request.app[QUERIES]
    facility = await queries.facility_of(officer.id)
    try:
        date_from, date_to, states, raw = _ledger_filters(request)
    except DomainError as error:
        return await _page(
            request,
            "console/ledger.html",
            status=error.status,
            error=error.message(_lang(request)),
            rows=[],
            filters={},
            states=list(ApplicationState),
            verdict=None,
            query="",
        )
    rows = await queries.ledger(officer.id, date_from=date_from, date_to=date_to, states=states)
    verdict = await request.app[SERVICE].verify_ledger() if request.query.get("verify") else None
    return await _page(
        request,
        "console/ledger.html",
        facility=facility,
        rows=[_ledger_cells(r, facility) + [r.application.id] for r in rows],
        filters=raw,
        states=list(ApplicationState),
        verdict=verdict,
        query=request.query_string,
    )


def csv_safe(cell: str) -> str:
    """Spreadsheets run a cell starting with = + - @ as a formula: quote it."""
    return "'" + cell if cell.startswith(CSV_FORMULA_PREFIXES) else cell


@require_roles()
async def ledger_csv(request: web.Request) -> web.StreamResponse:
    officer = _officer(request)
    queries = request.app[QUERIES]
    facility = await queries.facility_of(officer.id)
    try:
        date_from, date_to, states, _raw = _ledger_filters(request)
    except DomainError as error:
        return _error_page(request, error)
    rows = await queries.ledger(officer.id, date_from=date_from, date_to=date_to, states=states)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LEDGER_HEADER)
    for row in rows:
        writer.writerow([csv_safe(c) for c in _ledger_cells(row, facility)])
    today = request.app[CLOCK].now().astimezone(facility.tz)
    response = web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="ledger-{today:%Y%m%d}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# -- admin ---------------------------------------------------------------------------
async def _admin_page(
    request: web.Request, *, status: int = 200, error: str | None = None, **extra: Any
) -> web.Response:
    officer = _officer(request)
    queries = request.app[QUERIES]
    facility = await queries.facility_of(officer.id)
    officers, kiosks, detainees = await queries.staff(officer.id)
    async with request.app[SERVICE].uow() as uow:
        overrides = sorted(await uow.calendar.list(), key=lambda o: o.day, reverse=True)
    return await _page(
        request,
        "console/admin.html",
        status=status,
        error=error,
        facility=facility,
        rules=facility.rules,
        officers=officers,
        kiosks=kiosks,
        detainees=detainees,
        overrides=overrides[:60],
        roles=list(Role),
        periods=PERIOD_LABELS,
        face_policies=FACE_POLICY_LABELS,
        facts=ELIGIBILITY_FACTS,
        **extra,
    )


@require_roles(Role.ADMIN)
async def admin_page(request: web.Request) -> web.StreamResponse:
    return await _admin_page(request)


AdminAction = Callable[[web.Request, Officer, FormData], Awaitable[str | dict[str, Any]]]


def _admin_action(act: AdminAction) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Run ``act``: a string is flashed before redirecting back to the admin
    page; a dict is rendered at once (what must be shown only once)."""

    @require_roles(Role.ADMIN)
    async def handler(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            result = await act(request, _officer(request), form)
        except DomainError as error:
            return await _admin_page(
                request, status=error.status, error=error.message(_lang(request))
            )
        if isinstance(result, dict):
            return await _admin_page(request, **result)
        await flash(request, result)
        raise web.HTTPSeeOther("/console/admin")

    return handler


async def _update_rules(request: web.Request, admin: Officer, form: FormData) -> str:
    try:
        period = QuotaPeriod(_text(form, "period", limit=40))
        policy = UnexpectedFacePolicy(_text(form, "unexpected_face_policy", limit=40))
    except ValueError:
        raise ValidationError("choice_invalid", "请从列表中选择", "Choose from the list") from None
    rules = FacilityRules(
        visits_per_period=_int(form, "visits_per_period", "会见次数"),
        period=period,
        max_visit_minutes=_int(form, "max_visit_minutes", "会见时长"),
        max_people=_int(form, "max_people", "会见人数"),
        unexpected_face_policy=policy,
        opening_hours=OpeningHours.parse(_text(form, "opening_hours", limit=200)),
    )
    await request.app[SERVICE].update_facility_rules(admin.id, rules)
    return "会见规则已保存"


async def _add_kiosk(request: web.Request, admin: Officer, form: FormData) -> dict[str, Any]:
    name = _text(form, "name", limit=60)
    if not name:
        raise ValidationError(
            "kiosk_name_missing", "请填写终端名称", "Name the kiosk", field="name"
        )
    kiosk, token = await request.app[SERVICE].register_kiosk(
        admin.facility_id, name, actor=officer_actor(admin.id)
    )
    return {
        "new_kiosk": {
            "name": kiosk.name,
            "token": token,
            "link": f"{request.app[SETTINGS].base_url()}/kiosk?token={token}",
        }
    }


async def _add_officer(request: web.Request, admin: Officer, form: FormData) -> str:
    display_name = _text(form, "display_name", limit=40)
    if not display_name:
        raise ValidationError(
            "display_name_missing", "请填写姓名", "Give the name", field="display_name"
        )
    roles = parse_roles([v for v in form.getall("roles", []) if isinstance(v, str)])
    password = form.get("password", "")
    officer = await request.app[SERVICE].create_officer(
        facility_id=admin.facility_id,
        username=_text(form, "username", limit=40),
        display_name=display_name,
        password=password if isinstance(password, str) else "",
        roles=roles,
        actor=officer_actor(admin.id),
    )
    return f"已创建民警账号 {officer.username}"


async def _officer_active(request: web.Request, admin: Officer, form: FormData) -> str:
    active = _text(form, "active", limit=1) == "1"
    officer = await request.app[SERVICE].set_officer_active(
        admin.id, request.match_info["officer_id"], active
    )
    return f"已{'启用' if active else '停用'}账号 {officer.username}"


async def _add_detainee(request: web.Request, admin: Officer, form: FormData) -> str:
    admitted = _text(form, "admitted_on", limit=10)
    if not admitted:
        raise ValidationError(
            "admitted_on_missing", "请填写入所日期", "Give the admission date", field="admitted_on"
        )
    # The photo is uploaded on the detainee's own page, where it is enrolled.
    detainee = await request.app[SERVICE].register_detainee(
        Detainee(
            new_id(),
            admin.facility_id,
            validate_name(_text(form, "name", limit=40)),
            admitted_on=_date(admitted, "admitted_on", "入所日期"),
        ),
        actor=officer_actor(admin.id),
    )
    return f"已登记 {detainee.name}，请在其页面上传照片"


async def _update_detainee(request: web.Request, admin: Officer, form: FormData) -> str:
    _officers, _kiosks, detainees = await request.app[QUERIES].staff(admin.id)
    detainee_id = request.match_info["detainee_id"]
    stored = next((d for d in detainees if d.id == detainee_id), None)
    if stored is None:
        raise NotFound("detainee_not_found", "被羁押人员不存在", "No such detainee")
    released = _text(form, "released_on", limit=10)
    facts = {name: _checked(form, name) for name, _label in ELIGIBILITY_FACTS}
    updated = Detainee(
        stored.id,
        stored.facility_id,
        stored.name,
        stored.admitted_on,
        released_on=_date(released, "released_on", "离所日期") if released else None,
        photo_ref=stored.photo_ref,
        face_encoding=stored.face_encoding,
        **facts,
    )
    await request.app[SERVICE].update_detainee(admin.id, updated)
    return f"已更新 {stored.name} 的情况"


async def _own_detainee(request: web.Request, officer: Officer) -> Detainee:
    """The detainee named in the path, if the officer's facility holds them;
    another facility's detainee is ``NotFound`` like one that does not exist."""
    detainee = await request.app[SERVICE].detainee(request.match_info["detainee_id"])
    if detainee.facility_id != officer.facility_id:
        raise NotFound("detainee_not_found", "被羁押人员不存在", "No such detainee")
    return detainee


async def _detainee_page(
    request: web.Request,
    detainee: Detainee,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> web.Response:
    return await _page(
        request,
        "console/detainee.html",
        status=status,
        detainee=detainee,
        facts=ELIGIBILITY_FACTS,
        photo_field=DETAINEE_PHOTO_FIELD,
        errors=errors or {},
    )


@require_roles(Role.ADMIN)
async def detainee_page(request: web.Request) -> web.StreamResponse:
    """One detainee: the facts, the facility's photo (served by ``photo``) and
    whether its face is enrolled, and the form to upload a new one."""
    try:
        detainee = await _own_detainee(request, _officer(request))
    except DomainError as error:
        return _error_page(request, error)
    return await _detainee_page(request, detainee)


@require_roles(Role.ADMIN)
async def detainee_photo(request: web.Request) -> web.StreamResponse:
    """Upload the facility's photo of a detainee: judged and enrolled off the
    event loop (``replace_detainee_photo``); a refusal is shown next to the
    file field, with nothing stored."""
    admin = _officer(request)
    try:
        detainee = await _own_detainee(request, admin)
    except DomainError as error:
        return _error_page(request, error)
    data = await posted_photo(await request.post())
    try:
        await replace_detainee_photo(
            request.app[SERVICE], request.app[PHOTOS], admin, detainee.id, data
        )
    except ValidationError as error:
        message = error.message(_lang(request))
        return await _detainee_page(
            request,
            detainee,
            status=error.status,
            errors={error.field or DETAINEE_PHOTO_FIELD: message},
        )
    except DomainError as error:
        return _error_page(request, error)
    await flash(request, f"已录入 {detainee.name} 的照片")
    raise web.HTTPSeeOther(f"/console/admin/detainees/{detainee.id}")


async def _calendar(request: web.Request, admin: Officer, form: FormData) -> str:
    day = _date(_text(form, "day", limit=10), "day", "日期")
    workday = _text(form, "is_workday", limit=1) == "1"
    note = _text(form, "note", limit=100)
    await request.app[SERVICE].set_calendar_override(admin.id, CalendarOverride(day, workday, note))
    return f"已设置 {day.isoformat()} 为{'工作日' if workday else '休息日'}"


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


# -- wiring ---------------------------------------------------------------------------
def setup(app: web.Application) -> None:
    """Sign-in (``server.auth``) and the console's pages."""
    auth.setup(app)
    router = app.router
    router.add_get("/console", _to_dashboard)
    router.add_get("/console/", dashboard, name="console")
    router.add_get("/console/applications/{id}", application_page, name="console_application")
    for name, role, act in (
        ("accept", Role.INTAKE, _accept),
        ("return", Role.INTAKE, _return),
        ("approve", Role.REVIEWER, _approve),
        ("reject", Role.REVIEWER, _reject),
        ("exception", Role.LEADER, _grant),
        ("schedule", Role.DUTY, _schedule),
    ):
        router.add_post(
            f"/console/applications/{{id}}/{name}", _action(role, act), name=f"console_{name}"
        )
    router.add_get("/console/photos/{ref:.+}", photo, name="console_photo")
    router.add_get("/console/visits/{visit_id}", watch_page, name="console_watch")
    router.add_get("/console/visits/{visit_id}/snapshots/{name}", snapshot, name="console_snapshot")
    router.add_get("/console/ledger", ledger, name="console_ledger")
    router.add_get("/console/ledger.csv", ledger_csv, name="console_ledger_csv")
    router.add_get("/console/admin", admin_page, name="console_admin")
    router.add_get("/console/admin/detainees/{detainee_id}", detainee_page, name="console_detainee")
    router.add_post(
        "/console/admin/detainees/{detainee_id}/photo",
        detainee_photo,
        name="console_detainee_photo",
    )
    admin_routes: list[tuple[str, AdminAction]] = [
        ("rules", _update_rules),
        ("kiosks", _add_kiosk),
        ("officers", _add_officer),
        ("officers/{officer_id}/active", _officer_active),
        ("detainees", _add_detainee),
        ("detainees/{detainee_id}", _update_detainee),
        ("calendar", _calendar),
    ]
    for path, admin_act in admin_routes:
        router.add_post(f"/console/admin/{path}", _admin_action(admin_act))
