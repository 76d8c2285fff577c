"""The JSON API under ``/api/v1``: the console's operations for tests and
integrations, documented in ``server/openapi.json`` (linked from docs/) (a test keeps the two in step).

Officer endpoints use the console's session cookie; unsafe methods need the
``X-CSRF-Token`` header that ``POST /api/v1/session`` returns. Errors always
have the shape ``{"code", "message", "field"}`` with the message in the
caller's language (``?lang=en`` or ``Accept-Language: en``), Chinese by default.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from sessions.applications import Application, ApplicationState
from sessions.appointments import Appointment
from sessions.audit import AuditRecord
from sessions.detainees import Detainee
from sessions.errors import DomainError, Language, ValidationError
from sessions.events import officer_actor
from sessions.facilities import FacilityRules, OpeningHours, QuotaPeriod, UnexpectedFacePolicy
from sessions.ids import new_id
from sessions.officers import Officer, Role, parse_roles
from sessions.queries import ApplicationRow
from sessions.quotas import ExceptionKind
from sessions.visits import Visit
from sessions.workdays import CalendarOverride

from .auth import csrf_token, log_in, log_out, require_roles
from .keys import QUERIES, SERVICE, SETTINGS
from .uploads import MAX_PHOTO_BYTES, PHOTOS, posted_photo, replace_detainee_photo

# Shipped inside the package (docs/openapi.json links here) so an installed server serves it.
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
MAX_JSON_BYTES = 64 * 1024
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- plumbing -------------------------------------------------------------------
def language(request: web.Request) -> Language:
    wanted = request.query.get("lang") or request.headers.get("Accept-Language") or ""
    return "en" if wanted.lower().startswith("en") else request.app[SETTINGS].language


def error_response(request: web.Request, error: DomainError) -> web.Response:
    return web.json_response(error.as_dict(language(request)), status=error.status)


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn a domain error raised anywhere under /api/ into its JSON shape."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except DomainError as error:
        return error_response(request, error)


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ValidationError("body_too_large", "请求内容过大", "The request body is too large")
    try:
        data = json.loads(await request.content.read(MAX_JSON_BYTES + 1) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(
            "json_invalid", "请求内容不是有效的JSON", "The body is not valid JSON"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(
            "json_object", "请求内容应为JSON对象", "The body must be a JSON object"
        )
    return data


def field(data: Mapping[str, Any], name: str, kind: type[T], *, required: bool = True) -> T:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(
                "field_missing", f"缺少字段：{name}", f"Missing field: {name}", field=name
            )
        return None  # type: ignore[return-value]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ValidationError(
            "field_type", f"字段格式不正确：{name}", f"Field {name} has the wrong type", field=name
        )
    return value


def parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            "date_format",
            f"日期格式应为YYYY-MM-DD：{name}",
            f"{name} must be YYYY-MM-DD",
            field=name,
        ) from None


def parse_instant(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValidationError(
            "datetime_format",
            f"时间须为带时区的ISO 8601格式，如2026-03-02T10:00+08:00：{name}",
            f"{name} must be ISO 8601 with a UTC offset, e.g. 2026-03-02T10:00+08:00",
            field=name,
        )
    return when


def choice(enum: type[Any], value: str, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ValidationError(
            "choice_invalid",
            f"{name} 应为：{allowed}",
            f"{name} must be one of: {allowed}",
            field=name,
        ) from None


def officer_of(request: web.Request) -> Officer:
    officer: Officer = request["officer"]
    return officer


# -- serialisers ------------------------------------------------------------------
def officer_json(officer: Officer) -> dict[str, Any]:
    return {
        "id": officer.id,
        "username": officer.username,
        "display_name": officer.display_name,
        "roles": sorted(r.value for r in officer.roles),
        "active": officer.active,
        "facility_id": officer.facility_id,
    }


def application_json(application: Application) -> dict[str, Any]:
    return {
        "id": application.id,
        "number": application.number,
        "state": application.state.value,
        "state_label": application.state.label_zh,
        "facility_id": application.facility_id,
        "detainee_id": application.detainee_id,
        "reason": application.reason.value,
        "reason_detail": application.reason_detail,
        "submitted_at": application.submitted_at.isoformat(),
        "deadline": application.deadline.due.isoformat(),
        "deadline_warning": application.deadline.warning("zh"),
        "decision_reason": application.decision_reason,
        "visitors": [
            {
                "name": v.name,
                "id_number": v.id_number,
                "phone": v.phone,
                "relationship": v.relationship.value,
                "id_photo_ref": v.id_photo_ref,
            }
            for v in application.visitors
        ],
        "exceptions": [
            {
                "kind": e.kind.value,
                "granted_by": e.granted_by,
                "reason": e.reason,
                "granted_at": e.granted_at.isoformat(),
                "extra_minutes": e.extra_minutes,
                "extra_people": e.extra_people,
            }
            for e in application.exceptions
        ],
    }


def appointment_json(appointment: Appointment | None) -> dict[str, Any] | None:
    if appointment is None:
        return None
    return {
        "id": appointment.id,
        "kiosk_id": appointment.kiosk_id,
        "starts_at": appointment.starts_at.isoformat(),
        "ends_at": appointment.ends_at.isoformat(),
    }


def visit_json(visit: Visit | None) -> dict[str, Any] | None:
    if visit is None:
        return None
    return {
        "id": visit.id,
        "state": visit.state.value,
        "limit_minutes": visit.limit_minutes,
        "live_at": visit.live_at.isoformat() if visit.live_at else None,
        "ended_at": visit.ended_at.isoformat() if visit.ended_at else None,
        "end_reason": visit.end_reason.value if visit.end_reason else None,
    }


def row_json(row: ApplicationRow) -> dict[str, Any]:
    return {
        "application": application_json(row.application),
        "detainee_name": row.detainee.name if row.detainee else None,
        "appointment": appointment_json(row.appointment),
        "visit": visit_json(row.visit),
        "working_days_left": row.working_days_left,
    }


def audit_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.at.isoformat(),
        "actor": record.actor,
        "event": record.event,
        "subject_type": record.subject_type,
        "subject_id": record.subject_id,
        "data": record.data,
        "hash": record.hash,
    }


def detainee_json(d: Detainee) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "admitted_on": d.admitted_on.isoformat(),
        "released_on": d.released_on.isoformat() if d.released_on else None,
        "refuses_video_visits": d.refuses_video_visits,
        "strict_management": d.strict_management,
        "serious_violation": d.serious_violation,
        "foreign_national": d.foreign_national,
        "in_detox_treatment": d.in_detox_treatment,
        "pending_criminal_transfer": d.pending_criminal_transfer,
        # The reference only (the console serves the photo); never the encoding.
        "photo_ref": d.photo_ref,
        "face_enrolled": d.face_encoding is not None,
    }


# -- session ------------------------------------------------------------------------
async def create_session(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        raise ValidationError(
            "json_required", "请以JSON格式提交", "Send the credentials as application/json"
        )
    data = await json_body(request)
    officer = await log_in(request, field(data, "username", str), field(data, "password", str))
    return web.json_response({"officer": officer_json(officer), "csrf_token": csrf_token(request)})


@require_roles()
async def get_session(request: web.Request) -> web.Response:
    return web.json_response(
        {"officer": officer_json(officer_of(request)), "csrf_token": csrf_token(request)}
    )


@require_roles()
async def delete_session(request: web.Request) -> web.Response:
    await log_out(request)
    return web.json_response({"ok": True})


# -- queues, ledger, applications ----------------------------------------------------------
@require_roles()
async def queues(request: web.Request) -> web.Response:
    q = await request.app[QUERIES].queues(officer_of(request).id)
    return web.json_response(
        {
            name: [row_json(r) for r in getattr(q, name)]
            for name in ("to_accept", "to_review", "to_schedule", "due_soon", "overdue", "today")
        }
    )


@require_roles()
async def list_applications(request: web.Request) -> web.Response:
    query = request.query
    states = (
        frozenset(choice(ApplicationState, s, "state") for s in query.getall("state"))
        if "state" in query
        else None
    )
    rows = await request.app[QUERIES].ledger(
        officer_of(request).id,
        date_from=parse_date(query["from"], "from") if "from" in query else None,
        date_to=parse_date(query["to"], "to") if "to" in query else None,
        states=states,
    )
    return web.json_response({"applications": [row_json(r) for r in rows]})


@require_roles()
async def get_application(request: web.Request) -> web.Response:
    officer = officer_of(request)
    app_id = request.match_info["id"]
    detail = await request.app[QUERIES].application(officer.id, app_id)
    brief = await request.app[SERVICE].review_brief(officer.id, app_id)
    return web.json_response(
        {
            **row_json(detail.row),
            "ineligible": [{"code": r.value, "message": r.zh} for r in brief.ineligible],
            "quota_issues": [{"needs": i.needs.value, "message": i.zh} for i in brief.quota_issues],
            "history": [audit_json(r) for r in detail.history],
            "notices": [
                {
                    "kind": n.kind.value,
                    "sent_at": n.sent_at.isoformat() if n.sent_at else None,
                    "attempts": n.attempts,
                    "failed": n.failed_at is not None,
                }
                for n in detail.notices
            ],
        }
    )


def decision(
    act: Callable[[web.Request, str, str, dict[str, Any]], Awaitable[Application]],
) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        data = await json_body(request)
        application = await act(request, officer_of(request).id, request.match_info["id"], data)
        return web.json_response({"application": application_json(application)})

    return handler


accept = require_roles(Role.INTAKE)(decision(lambda r, o, a, d: r.app[SERVICE].accept(o, a)))
return_incomplete = require_roles(Role.INTAKE)(
    decision(lambda r, o, a, d: r.app[SERVICE].return_incomplete(o, a, field(d, "reason", str)))
)
approve = require_roles(Role.REVIEWER)(decision(lambda r, o, a, d: r.app[SERVICE].approve(o, a)))
reject = require_roles(Role.REVIEWER)(
    decision(lambda r, o, a, d: r.app[SERVICE].reject(o, a, field(d, "reason", str)))
)
grant_exception = require_roles(Role.LEADER)(
    decision(
        lambda r, o, a, d: r.app[SERVICE].grant_exception(
            o,
            a,
            choice(ExceptionKind, field(d, "kind", str), "kind"),
            field(d, "reason", str),
            extra_minutes=field(d, "extra_minutes", int, required=False) or 0,
            extra_people=field(d, "extra_people", int, required=False) or 0,
        )
    )
)


@require_roles(Role.DUTY)
async def schedule(request: web.Request) -> web.Response:
    data = await json_body(request)
    service = request.app[SERVICE]
    scheduled = await service.schedule(
        officer_of(request).id,
        request.match_info["id"],
        field(data, "kiosk_id", str),
        parse_instant(field(data, "starts_at", str), "starts_at"),
    )
    base = request.app[SETTINGS].base_url()
    return web.json_response(
        {
            "appointment": appointment_json(scheduled.appointment),
            "visit": visit_json(scheduled.visit),
            "link": f"{base}/v/{scheduled.secrets.token}",
            "code": scheduled.secrets.code,
        },
        status=201,
    )


@require_roles()
async def verify_ledger(request: web.Request) -> web.Response:
    verdict = await request.app[SERVICE].verify_ledger()
    return web.json_response(
        {
            "ok": verdict.ok,
            "checked": verdict.checked,
            "broken_at": verdict.broken_at,
            "problem": verdict.problem,
        }
    )


# -- admin ---------------------------------------------------------------------------
@require_roles(Role.ADMIN)
async def put_rules(request: web.Request) -> web.Response:
    data = await json_body(request)
    rules = FacilityRules(
        visits_per_period=field(data, "visits_per_period", int),
        period=choice(QuotaPeriod, field(data, "period", str), "period"),
        max_visit_minutes=field(data, "max_visit_minutes", int),
        max_people=field(data, "max_people", int),
        unexpected_face_policy=choice(
            UnexpectedFacePolicy,
            field(data, "unexpected_face_policy", str),
            "unexpected_face_policy",
        ),
        opening_hours=OpeningHours.parse(field(data, "opening_hours", str)),
    )
    facility = await request.app[SERVICE].update_facility_rules(officer_of(request).id, rules)
    return web.json_response(
        {"facility_id": facility.id, "max_visit_minutes": facility.rules.max_visit_minutes}
    )


@require_roles(Role.ADMIN)
async def add_kiosk(request: web.Request) -> web.Response:
    data = await json_body(request)
    officer = officer_of(request)
    kiosk, token = await request.app[SERVICE].register_kiosk(
        officer.facility_id, field(data, "name", str), actor=officer_actor(officer.id)
    )
    base = request.app[SETTINGS].base_url()
    return web.json_response(
        {
            "id": kiosk.id,
            "name": kiosk.name,
            "device_token": token,
            "link": f"{base}/kiosk?token={token}",
        },
        status=201,
    )


@require_roles(Role.ADMIN)
async def add_officer(request: web.Request) -> web.Response:
    data = await json_body(request)
    admin = officer_of(request)
    roles = field(data, "roles", list)
    officer = await request.app[SERVICE].create_officer(
        facility_id=admin.facility_id,
        username=field(data, "username", str),
        display_name=field(data, "display_name", str),
        password=field(data, "password", str),
        roles=parse_roles([str(r) for r in roles]),
        actor=officer_actor(admin.id),
    )
    return web.json_response(officer_json(officer), status=201)


@require_roles(Role.ADMIN)
async def patch_officer(request: web.Request) -> web.Response:
    data = await json_body(request)
    officer = await request.app[SERVICE].set_officer_active(
        officer_of(request).id, request.match_info["id"], field(data, "active", bool)
    )
    return web.json_response(officer_json(officer))


def _detainee_from(data: Mapping[str, Any], *, id: str, facility_id: str) -> Detainee:
    released = field(data, "released_on", str, required=False)
    return Detainee(
        id=id,
        facility_id=facility_id,
        name=field(data, "name", str).strip(),
        admitted_on=parse_date(field(data, "admitted_on", str), "admitted_on"),
        released_on=parse_date(released, "released_on") if released else None,
        refuses_video_visits=bool(field(data, "refuses_video_visits", bool, required=False)),
        strict_management=bool(field(data, "strict_management", bool, required=False)),
        serious_violation=bool(field(data, "serious_violation", bool, required=False)),
        foreign_national=bool(field(data, "foreign_national", bool, required=False)),
        in_detox_treatment=bool(field(data, "in_detox_treatment", bool, required=False)),
        pending_criminal_transfer=bool(
            field(data, "pending_criminal_transfer", bool, required=False)
        ),
    )


@require_roles(Role.ADMIN)
async def add_detainee(request: web.Request) -> web.Response:
    admin = officer_of(request)
    detainee = _detainee_from(await json_body(request), id=new_id(), facility_id=admin.facility_id)
    await request.app[SERVICE].register_detainee(detainee, actor=officer_actor(admin.id))
    return web.json_response(detainee_json(detainee), status=201)


@require_roles(Role.ADMIN)
async def put_detainee(request: web.Request) -> web.Response:
    admin = officer_of(request)
    detainee = _detainee_from(
        await json_body(request), id=request.match_info["id"], facility_id=admin.facility_id
    )
    updated = await request.app[SERVICE].update_detainee(admin.id, detainee)
    return web.json_response(detainee_json(updated))


@require_roles(Role.ADMIN)
async def post_detainee_photo(request: web.Request) -> web.Response:
    """The console's photo upload as an endpoint: a ``multipart/form-data`` body
    with the image in the part ``photo``; the same checks, enrolment and
    refusals (``replace_detainee_photo``)."""
    if request.content_type != "multipart/form-data":
        raise ValidationError(
            "multipart_required",
            "请以multipart/form-data格式上传照片（字段名photo）",
            "Upload the photo as multipart/form-data (part name: photo)",
            field="photo",
        )
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        limit = MAX_PHOTO_BYTES // (1024 * 1024)
        raise ValidationError(
            "photo_too_large",
            f"照片不能超过{limit}MB，请压缩后重新上传",
            f"The photo must not exceed {limit} MB",
            field="photo",
        ) from None
    except (AssertionError, ValueError):  # a malformed multipart body
        raise ValidationError(
            "form_invalid", "上传内容格式不正确", "The upload is malformed", field="photo"
        ) from None
    updated = await replace_detainee_photo(
        request.app[SERVICE],
        request.app[PHOTOS],
        officer_of(request),
        request.match_info["id"],
        await posted_photo(form),
    )
    return web.json_response(detainee_json(updated))


@require_roles(Role.ADMIN)
async def put_calendar_day(request: web.Request) -> web.Response:
    data = await json_body(request)
    day = parse_date(request.match_info["day"], "day")
    override = CalendarOverride(
        day, field(data, "is_workday", bool), field(data, "note", str, required=False) or ""
    )
    await request.app[SERVICE].set_calendar_override(officer_of(request).id, override)
    return web.json_response({"day": day.isoformat(), "is_workday": override.is_workday})


async def openapi(request: web.Request) -> web.FileResponse:
    return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})


async def not_found(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(
        text=json.dumps({"code": "not_found", "message": "接口不存在", "field": None}),
        content_type="application/json",
    )


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v1/openapi.json", openapi),
    ("POST", "/api/v1/session", create_session),
    ("GET", "/api/v1/session", get_session),
    ("DELETE", "/api/v1/session", delete_session),
    ("GET", "/api/v1/queues", queues),
    ("GET", "/api/v1/applications", list_applications),
    ("GET", "/api/v1/applications/{id}", get_application),
    ("POST", "/api/v1/applications/{id}/accept", accept),
    ("POST", "/api/v1/applications/{id}/return", return_incomplete),
    ("POST", "/api/v1/applications/{id}/approve", approve),
    ("POST", "/api/v1/applications/{id}/reject", reject),
    ("POST", "/api/v1/applications/{id}/exceptions", grant_exception),
    ("POST", "/api/v1/applications/{id}/schedule", schedule),
    ("GET", "/api/v1/ledger/verify", verify_ledger),
    ("PUT", "/api/v1/facility/rules", put_rules),
    ("POST", "/api/v1/kiosks", add_kiosk),
    ("POST", "/api/v1/officers", add_officer),
    ("PATCH", "/api/v1/officers/{id}", patch_officer),
    ("POST", "/api/v1/detainees", add_detainee),
    ("PUT", "/api/v1/detainees/{id}", put_detainee),
    ("POST", "/api/v1/detainees/{id}/photo", post_detainee_photo),
    ("PUT", "/api/v1/calendar/{day}", put_calendar_day),
]


def setup(app: web.Application) -> None:
    app.middlewares.append(domain_errors)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
