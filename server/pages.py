"""The public pages that exist so far: home, the relative's visit link (code
entry → waiting room) and the kiosk's day view. Rendering only: every decision
is the service's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from sessions.errors import DomainError, Language, NotFound
from sessions.visits import Visit, VisitState

from .i18n import pick_language, translator
from .keys import CLOCK, SERVICE, SETTINGS

MAX_CODE_LENGTH = 32


def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    lang = pick_language(request, request.app[SETTINGS].language)
    return {
        "lang": lang,
        "t": translator(lang),
        "other_lang": "en" if lang == "zh" else "zh",
        **extra,
    }


def _render(request: web.Request, template: str, status: int = 200, **extra: Any) -> web.Response:
    response = aiohttp_jinja2.render_template(
        template, request, _context(request, **extra), status=status
    )
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    # same-origin, not no-referrer: the link token never leaves the site, and browsers
    # send "Origin: null" on form posts from no-referrer pages, which the CSRF check refuses.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    lang = request.query.get("lang")
    if lang in ("zh", "en"):
        response.set_cookie("lang", lang, max_age=365 * 86400, httponly=True, samesite="Lax")
    return response


def _error(request: web.Request, error: DomainError) -> web.Response:
    lang: Language = pick_language(request, request.app[SETTINGS].language)
    return _render(request, "error.html", status=error.status, message=error.message(lang))


async def home(request: web.Request) -> web.Response:
    return _render(request, "home.html")


async def _visit_view(request: web.Request, visit: Visit) -> dict[str, Any]:
    service = request.app[SERVICE]
    facility, appointment = await service.visit_context(visit)
    now = request.app[CLOCK].now()
    return {
        "visit": visit,
        "facility": facility,
        "starts_at": _local(appointment.starts_at, facility.tz),
        "ends_at": _local(appointment.ends_at, facility.tz),
        "remaining_minutes": int(visit.remaining(now) / timedelta(minutes=1)),
    }


def _local(when: datetime, tz: Any) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


async def visit_link(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        visit, _credential = await request.app[SERVICE].visit_for_token(token)
        view = await _visit_view(request, visit)
    except DomainError as error:
        return _error(request, error)
    return _render(request, "visit_join.html", token=token, **view)


async def visit_join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    form = await request.post()
    code = str(form.get("code", ""))[:MAX_CODE_LENGTH]
    service = request.app[SERVICE]
    try:
        visit = await service.join_visit(token, code)
        view = await _visit_view(request, visit)
    except DomainError as error:
        lang: Language = pick_language(request, request.app[SETTINGS].language)
        try:
            visit, _credential = await service.visit_for_token(token)
            view = await _visit_view(request, visit)
        except DomainError:
            return _error(request, error)
        return _render(
            request,
            "visit_join.html",
            status=error.status,
            token=token,
            error=error.message(lang),
            **view,
        )
    # The page keeps the code to say hello on the visit's WebSocket (and to
    # rejoin after a network switch); it is no-store and same-origin only.
    return _render(request, "visit_lobby.html", token=token, code=code, **view)


async def kiosk(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        kiosk_, facility, day = await service.kiosk_day(request.query.get("token", ""))
    except DomainError as error:
        return _error(request, error)
    rows = [
        {
            "starts_at": _local(item.appointment.starts_at, facility.tz),
            "ends_at": _local(item.appointment.ends_at, facility.tz),
            "detainee": item.detainee_name,
            "visitors": item.visitors,
            "state": item.visit.state.label_zh if item.visit else "",
            "visit_id": item.visit.id if item.visit else None,
            "open": bool(item.visit and item.visit.state is not VisitState.ENDED),
        }
        for item in day
    ]
    return _render(
        request,
        "kiosk.html",
        kiosk=kiosk_,
        facility=facility,
        rows=rows,
        token=request.query["token"],
    )


async def kiosk_visit(request: web.Request) -> web.Response:
    """The kiosk's page for one visit: only a visit booked on this kiosk."""
    token = request.query.get("token", "")
    service = request.app[SERVICE]
    try:
        kiosk_, _facility, day = await service.kiosk_day(token)
    except DomainError as error:
        return _error(request, error)
    wanted = request.match_info["visit_id"]
    slot = next((item for item in day if item.visit and item.visit.id == wanted), None)
    if slot is None or slot.visit is None:
        return _error(
            request,
            NotFound(
                "visit_not_on_kiosk",
                "该会见不在本终端今日的安排中",
                "That visit is not on this kiosk today",
            ),
        )
    return _render(
        request,
        "kiosk_room.html",
        kiosk=kiosk_,
        visit=slot.visit,
        visitors=slot.visitors,
        device_token=token,
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", home, name="home")
    app.router.add_get("/v/{token}", visit_link, name="visit_link")
    app.router.add_post("/v/{token}", visit_join, name="visit_join")
    app.router.add_get("/kiosk", kiosk, name="kiosk")
    app.router.add_get("/kiosk/visits/{visit_id}", kiosk_visit, name="kiosk_visit")
