"""The relative's public side: the application form (with ID-card photos), the
"submitted" page and the status look-up.

The browser gets hints (required fields, patterns, accepted file types); the
server is the judge. Every field error comes from the domain's validators and
is shown next to its field. Photos are read from a streamed multipart body
with a hard per-file limit, checked by content and enrolled (exactly one face,
big and sharp enough; the dlib work runs in a thread, never on the event loop,
and its 128-d encoding goes into the ``Visitor``). They are stored only once
every field of every visitor is valid; if the service then refuses the
application they are deleted again, so nothing is stored half-way.

CSRF: a double-submit cookie (``csrf_public``, HttpOnly, SameSite=Strict) whose
value must come back in the form's hidden ``csrf`` field.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiohttp import BodyPartReader, web

from sessions.applications import (
    MAX_REASON_DETAIL,
    Relationship,
    Visitor,
    VisitReason,
    check_visitor_count,
    parse_reason,
    parse_relationship,
)
from sessions.errors import DomainError, Language, NotFound, ValidationError
from sessions.facilities import Facility
from sessions.identity import validate_id_number, validate_name, validate_phone
from sessions.services import ApplicationStatus, VisitorInput

from .i18n import pick_language, translator
from .keys import CLOCK, SERVICE, SETTINGS
from .pages import _local, _render
from .ratelimit import SlidingWindowLimiter
from .secrets import load_or_create_key
from .uploads import MAX_PHOTO_BYTES, PHOTOS, PhotoStore

CSRF_COOKIE = "csrf_public"
CSRF_FIELD = "csrf"
DONE_COOKIE = "apply_done"
#: Fieldsets on the form: the applicant plus two more (a facility's max_people is 3).
FORM_VISITORS = 3
VISITOR_TEXT_FIELDS = ("name", "id_number", "phone", "relationship")
TEXT_FIELDS = frozenset(
    {CSRF_FIELD, "facility_id", "detainee_name", "reason", "reason_detail"}
    | {f"visitors.{i}.{name}" for i in range(FORM_VISITORS) for name in VISITOR_TEXT_FIELDS}
)
_PHOTO_FIELD = re.compile(r"^visitors\.(\d)\.id_photo$")
_VISITOR_FIELD = re.compile(r"^visitors\.(\d+)\.(.+)$")
MAX_TEXT_BYTES = 4096
MAX_PARTS = 64
#: Everything read from one body, drained parts included: three full photos
#: plus room to read past an oversized one and still see the other fields.
MAX_BODY_BYTES = FORM_VISITORS * MAX_PHOTO_BYTES + 16 * 1024 * 1024
CHUNK = 64 * 1024
MAX_LOOKUP_FIELD = 64

#: At most 5 failed look-ups per client per 10 minutes, 10 per application number.
FAILED_LOOKUPS = web.AppKey("public_failed_lookups", SlidingWindowLimiter)
NUMBER_LOOKUPS = web.AppKey("public_number_lookups", SlidingWindowLimiter)
DONE_KEY = web.AppKey("public_done_key", bytes)


# -- helpers ----------------------------------------------------------------------
def _lang(request: web.Request) -> Language:
    return pick_language(request, request.app[SETTINGS].language)


def _text(request: web.Request, key: str) -> str:
    return translator(_lang(request))[key]


def _csrf_token(request: web.Request) -> str:
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 100 else secrets.token_urlsafe(32)


def _with_csrf(request: web.Request, response: web.Response, token: str) -> web.Response:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/"
        )
    return response


def _csrf_ok(request: web.Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


def _csrf_refused(request: web.Request) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = _render(request, "error.html", status=403, message=_text(request, "csrf_failed"))
    return _with_csrf(request, response, token)


async def _facilities(request: web.Request) -> list[Facility]:
    async with request.app[SERVICE].uow() as uow:
        found = await uow.facilities.list()
    return sorted(found, key=lambda f: f.name)


# -- the application form -------------------------------------------------------------
@dataclass
class _Form:
    fields: dict[str, str] = field(default_factory=dict)
    photos: dict[int, bytes] = field(default_factory=dict)
    #: Errors found while reading (a photo over the limit, a field too long).
    errors: dict[str, DomainError] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class _BadForm(Exception):
    pass


def _photo_too_large(name: str) -> ValidationError:
    return ValidationError(
        "photo_too_large",
        "照片不能超过8MB，请压缩后重新上传",
        "The photo must not exceed 8 MB",
        field=name,
    )


async def _read_form(request: web.Request) -> _Form:
    """Stream the multipart body: text fields up to 4 KiB, photos up to 8 MiB
    each (an oversized one is drained, not kept), 40 MiB in all. The app's
    client_max_size does not apply to ``request.multipart()``, hence these limits."""
    if request.content_type != "multipart/form-data":
        raise _BadForm
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise _BadForm from None
    form = _Form()
    total = 0
    parts = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise _BadForm
            parts += 1
            if parts > MAX_PARTS:
                raise _TooLarge
            name = part.name or ""
            photo = _PHOTO_FIELD.match(name)
            limit = MAX_PHOTO_BYTES if photo else MAX_TEXT_BYTES
            buffer = bytearray()
            over = False
            while chunk := await part.read_chunk(CHUNK):
                total += len(chunk)
                if total > MAX_BODY_BYTES:
                    raise _TooLarge
                if over:
                    continue  # drain without keeping
                if len(buffer) + len(chunk) > limit:
                    over = True
                    buffer.clear()
                    continue
                buffer.extend(chunk)
            if photo and int(photo.group(1)) < FORM_VISITORS:
                index = int(photo.group(1))
                if over:
                    form.errors[name] = _photo_too_large(name)
                elif buffer:
                    form.photos[index] = bytes(buffer)
            elif name in TEXT_FIELDS:
                if over:
                    form.errors[name] = ValidationError(
                        "field_too_long", "内容过长", "Too long", field=name
                    )
                else:
                    form.fields[name] = buffer.decode("utf-8", errors="replace")
    except (AssertionError, ValueError):  # a malformed body
        raise _BadForm from None
    return form


def _empty_values() -> dict[str, str]:
    return {name: "" for name in TEXT_FIELDS if name != CSRF_FIELD}


def _form_view(
    request: web.Request,
    facilities: list[Facility],
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
) -> dict[str, Any]:
    lang = _lang(request)
    values = {**_empty_values(), **(values or {})}
    if not values["facility_id"] and len(facilities) == 1:
        values["facility_id"] = facilities[0].id
    return {
        "facilities": facilities,
        "relationships": [
            (r.value, r.label_zh if lang == "zh" else r.label_en) for r in Relationship
        ],
        "reasons": [(r.value, r.label_zh if lang == "zh" else r.label_en) for r in VisitReason],
        "visitor_indexes": list(range(FORM_VISITORS)),
        "values": values,
        "errors": errors or {},
        "general_errors": general or [],
        "max_reason_detail": MAX_REASON_DETAIL,
    }


async def apply_form(request: web.Request) -> web.Response:
    token = _csrf_token(request)
    facilities = await _facilities(request)
    response = _render(
        request, "apply.html", csrf=token, **_form_view(request, facilities, values={})
    )
    return _with_csrf(request, response, token)


class _Collector:
    """Field errors by field name, first message wins."""

    def __init__(self, lang: Language) -> None:
        self.lang = lang
        self.by_field: dict[str, str] = {}
        self.general: list[str] = []

    def add(self, error: DomainError, field_name: str | None = None) -> None:
        name = field_name or error.field
        if name is None:
            self.general.append(error.message(self.lang))
        else:
            self.by_field.setdefault(name, error.message(self.lang))

    def has(self, prefix: str) -> bool:
        return any(name.startswith(prefix) for name in self.by_field)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)


async def _check_visitor(
    store: PhotoStore,
    form: _Form,
    index: int,
    today: date,
    errors: _Collector,
) -> Visitor | None:
    prefix = f"visitors.{index}."
    raw = {name: form.fields.get(prefix + name, "") for name in VISITOR_TEXT_FIELDS}
    encoding: bytes | None = None
    checks = (
        lambda: validate_name(raw["name"], field=prefix + "name"),
        lambda: validate_id_number(raw["id_number"], today=today, field=prefix + "id_number"),
        lambda: validate_phone(raw["phone"], field=prefix + "phone"),
        lambda: parse_relationship(raw["relationship"], field=prefix + "relationship"),
    )
    for check in checks:
        try:
            check()
        except ValidationError as error:
            errors.add(error)
    photo_field = prefix + "id_photo"
    if photo_field in form.errors:
        errors.add(form.errors[photo_field])
    elif index not in form.photos:
        errors.add(
            ValidationError(
                "id_photo_missing",
                "请上传清晰的身份证照片",
                "Please upload a clear photo of the ID card",
                field=photo_field,
            )
        )
    else:
        try:
            await store.check(form.photos[index])
            # Only a readable photo is enrolled; its face errors (none, several,
            # too small, blurred) are shown next to the photo like any other.
            encoding = await store.enrol(form.photos[index], photo_field)
        except ValidationError as error:
            errors.add(error, photo_field)
    if errors.has(prefix):
        return None
    try:  # the domain's own composite check, with the photo still to be stored
        return Visitor.validated(
            name=raw["name"],
            id_number=raw["id_number"],
            phone=raw["phone"],
            relationship=raw["relationship"],
            id_photo_ref="pending",
            today=today,
            prefix=prefix,
            face_encoding=encoding,
        )
    except ValidationError as error:
        errors.add(error)
        return None


def _is_blank(form: _Form, index: int) -> bool:
    prefix = f"visitors.{index}."
    return (
        all(not form.fields.get(prefix + name, "").strip() for name in VISITOR_TEXT_FIELDS)
        and index not in form.photos
        and prefix + "id_photo" not in form.errors
    )


async def apply_submit(request: web.Request) -> web.StreamResponse:
    if not request.cookies.get(CSRF_COOKIE):
        return _csrf_refused(request)  # refused before reading any of the body
    lang = _lang(request)
    try:
        form = await _read_form(request)
    except _TooLarge:
        return _render(request, "error.html", status=413, message=_text(request, "form_too_large"))
    except _BadForm:
        return _render(request, "error.html", status=400, message=_text(request, "form_invalid"))
    if not _csrf_ok(request, form.fields.get(CSRF_FIELD)):
        return _csrf_refused(request)

    service = request.app[SERVICE]
    store = request.app[PHOTOS]
    facilities = await _facilities(request)
    errors = _Collector(lang)
    for name, error in form.errors.items():
        if not _PHOTO_FIELD.match(name):
            errors.add(error)

    facility_id = form.fields.get("facility_id", "").strip()
    facility = next((f for f in facilities if f.id == facility_id), None)
    if facility is None:
        errors.add(
            ValidationError(
                "facility_missing", "请选择监所", "Please choose the facility", field="facility_id"
            )
        )
    now = request.app[CLOCK].now()
    today = facility.local_date(now) if facility else now.date()

    included = [i for i in range(FORM_VISITORS) if i == 0 or not _is_blank(form, i)]
    visitors: list[Visitor] = []
    for index in included:
        visitor = await _check_visitor(store, form, index, today, errors)
        if visitor is not None:
            visitors.append(visitor)

    detainee_name = " ".join(form.fields.get("detainee_name", "").split())
    if not detainee_name:
        errors.add(
            ValidationError(
                "detainee_name_missing",
                "请填写被会见人姓名",
                "Please enter the name of the person held",
                field="detainee_name",
            )
        )
    elif facility is not None:
        async with service.uow() as uow:  # a hint now; the service decides on submit
            matches = await uow.detainees.find_by_name(facility.id, detainee_name)
        if not [d for d in matches if d.released_on is None or d.released_on > today]:
            errors.add(
                ValidationError(
                    "detainee_not_found",
                    "未找到该被会见人，请核对姓名和监所",
                    "No such detainee in this facility; check the name and the facility",
                    field="detainee_name",
                )
            )
    reason = None
    try:
        reason = parse_reason(form.fields.get("reason", ""))
    except ValidationError as error:
        errors.add(error)
    detail = form.fields.get("reason_detail", "").strip()
    if reason is VisitReason.OTHER and not detail:
        errors.add(
            ValidationError(
                "reason_detail_missing",
                "选择“其他”时请说明具体原因",
                "Please describe the reason when choosing 'other'",
                field="reason_detail",
            )
        )
    elif len(detail) > MAX_REASON_DETAIL:
        errors.add(
            ValidationError(
                "reason_detail_too_long",
                f"原因说明不能超过{MAX_REASON_DETAIL}个字",
                f"The explanation is limited to {MAX_REASON_DETAIL} characters",
                field="reason_detail",
            )
        )
    if facility is not None and len(visitors) == len(included):
        try:
            check_visitor_count(visitors, facility.rules.max_people)
        except ValidationError as error:
            errors.add(error)

    if errors or facility is None:
        return _form_again(request, facilities, form, errors, 422)

    # Every field is valid: store the photos, then submit. Undo the photos if
    # the service refuses, so nothing is left half-way.
    refs: list[str] = []
    try:
        for index in included:
            refs.append(await store.save(facility.id, form.photos[index]))
        application = await service.submit_application(
            facility_id=facility.id,
            detainee_name=detainee_name,
            visitors=[
                VisitorInput(
                    name=form.fields.get(f"visitors.{index}.name", ""),
                    id_number=form.fields.get(f"visitors.{index}.id_number", ""),
                    phone=form.fields.get(f"visitors.{index}.phone", ""),
                    relationship=form.fields.get(f"visitors.{index}.relationship", ""),
                    id_photo_ref=ref,
                    face_encoding=visitor.face_encoding,
                )
                for index, ref, visitor in zip(included, refs, visitors, strict=True)
            ],
            reason=form.fields.get("reason", ""),
            reason_detail=detail,
        )
    except DomainError as error:
        await _delete_all(store, refs)
        errors.add(error, _form_field(error.field, included))
        status = error.status if 400 <= error.status < 500 else 422
        return _form_again(request, facilities, form, errors, status)
    except BaseException:
        await asyncio.shield(_delete_all(store, refs))
        raise

    redirect = web.HTTPSeeOther(f"/apply/done/{application.number}")
    redirect.headers["Cache-Control"] = "no-store"
    redirect.set_cookie(
        DONE_COOKIE,
        _done_mac(request.app, application.number),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/apply/done/",
        max_age=3600,
    )
    raise redirect


async def _delete_all(store: PhotoStore, refs: list[str]) -> None:
    for ref in refs:
        await store.delete(ref)


def _form_field(name: str | None, included: list[int]) -> str | None:
    """The service numbers visitors by their place in the list it got; map that
    back to the form's fieldset (an empty middle fieldset is skipped)."""
    if name is None:
        return None
    match = _VISITOR_FIELD.match(name)
    if match is None or int(match.group(1)) >= len(included):
        return name
    return f"visitors.{included[int(match.group(1))]}.{match.group(2)}"


def _form_again(
    request: web.Request,
    facilities: list[Facility],
    form: _Form,
    errors: _Collector,
    status: int,
) -> web.Response:
    token = _csrf_token(request)
    values = {k: v for k, v in form.fields.items() if k != CSRF_FIELD}
    view = _form_view(
        request, facilities, values=values, errors=errors.by_field, general=errors.general
    )
    response = _render(request, "apply.html", status=status, csrf=token, failed=True, **view)
    return _with_csrf(request, response, token)


# -- after submitting -------------------------------------------------------------------
def _done_mac(app: web.Application, number: str) -> str:
    return hmac.new(app[DONE_KEY], number.encode(), hashlib.sha256).hexdigest()


async def apply_done(request: web.Request) -> web.Response:
    number = request.match_info["number"][:MAX_LOOKUP_FIELD]
    cookie = request.cookies.get(DONE_COOKIE, "")
    application = None
    if hmac.compare_digest(cookie.encode(), _done_mac(request.app, number).encode()):
        async with request.app[SERVICE].uow() as uow:
            application = await uow.applications.get_by_number(number)
            facility = await uow.facilities.get(application.facility_id) if application else None
    if application is None or facility is None:
        return _render(request, "error.html", status=404, message=_text(request, "done_missing"))
    lang = _lang(request)
    return _render(
        request,
        "apply_done.html",
        application=application,
        facility=facility,
        deadline=application.deadline.due.isoformat(),
        deadline_warning=application.deadline.warning(lang),
    )


# -- the status look-up -----------------------------------------------------------------
async def status_form(request: web.Request) -> web.Response:
    token = _csrf_token(request)
    response = _render(request, "status.html", csrf=token, values={}, errors={})
    return _with_csrf(request, response, token)


def _status_again(
    request: web.Request,
    status: int,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    general: str | None = None,
) -> web.Response:
    token = _csrf_token(request)
    response = _render(
        request,
        "status.html",
        status=status,
        csrf=token,
        values=values,
        errors=errors or {},
        general_error=general,
    )
    return _with_csrf(request, response, token)


async def status_lookup(request: web.Request) -> web.Response:
    if not request.cookies.get(CSRF_COOKIE):
        return _csrf_refused(request)
    posted = await request.post()
    if not _csrf_ok(request, str(posted.get(CSRF_FIELD, ""))):
        return _csrf_refused(request)
    number = str(posted.get("number", "")).strip()[:MAX_LOOKUP_FIELD]
    id_number = str(posted.get("id_number", "")).strip()[:MAX_LOOKUP_FIELD]
    values = {"number": number, "id_number": id_number}
    missing = {}
    if not number:
        missing["number"] = _text(request, "status_missing_number")
    if not id_number:
        missing["id_number"] = _text(request, "status_missing_id")
    if missing:
        return _status_again(request, 422, values, missing)

    client = request.remote or "unknown"
    failures = request.app[FAILED_LOOKUPS]
    if failures.blocked(client) or not request.app[NUMBER_LOOKUPS].attempt(number.upper()):
        return _status_again(request, 429, values, general=_text(request, "status_rate_limited"))
    try:
        status = await request.app[SERVICE].application_status(number, id_number)
    except NotFound as error:
        failures.hit(client)
        return _status_again(request, 404, values, general=error.message(_lang(request)))
    except DomainError as error:
        return _status_again(request, error.status, values, general=error.message(_lang(request)))
    return _render(request, "status_result.html", **_status_view(request, status))


def _status_view(request: web.Request, status: ApplicationStatus) -> dict[str, Any]:
    lang = _lang(request)
    application = status.application
    facility = status.facility
    view: dict[str, Any] = {
        "application": application,
        "facility": facility,
        "state_label": _text(request, f"app_state_{application.state.value}")
        if lang == "en"
        else application.state.label_zh,
        "submitted_on": _local(application.submitted_at, facility.tz)[:10],
        "deadline": application.deadline.due.isoformat(),
        "deadline_warning": application.deadline.warning(lang),
        "decision_reason": application.decision_reason
        if application.state.value in ("returned", "rejected")
        else None,
        "appointment": None,
    }
    if status.appointment is not None:
        view["appointment"] = {
            "starts_at": _local(status.appointment.starts_at, facility.tz),
            "ends_at": _local(status.appointment.ends_at, facility.tz),
        }
    if status.visit is not None:
        view["visit_state"] = (
            status.visit.state.label_zh if lang == "zh" else status.visit.state.value
        )
    if status.secrets is not None:
        base = request.app[SETTINGS].base_url().rstrip("/")
        view["link"] = f"{base}/v/{status.secrets.token}"
        view["code"] = status.secrets.code
    return view


# -- wiring -----------------------------------------------------------------------------
async def _load_done_key(app: web.Application) -> None:
    settings = app[SETTINGS]
    server_key = load_or_create_key(settings.data_dir, settings.secret_key)
    app[DONE_KEY] = hmac.new(server_key, b"visitgate/apply-done", hashlib.sha256).digest()


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[PHOTOS] = PhotoStore(settings.data_dir / "photos")
    app[FAILED_LOOKUPS] = SlidingWindowLimiter(5, 600, max_keys=20_000)
    app[NUMBER_LOOKUPS] = SlidingWindowLimiter(10, 600, max_keys=20_000)
    app.on_startup.append(_load_done_key)
    app.router.add_get("/apply", apply_form, name="apply_form")
    app.router.add_post("/apply", apply_submit, name="apply_submit")
    app.router.add_get("/apply/done/{number}", apply_done, name="apply_done")
    app.router.add_get("/status", status_form, name="status_form")
    app.router.add_post("/status", status_lookup, name="status_lookup")
