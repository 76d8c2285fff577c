"""Sending the outbox's notices to relatives by SMS.

The service writes a ``Notice`` in the same transaction as the decision it
reports (``sessions.notifications``); the ``NoticeDispatcher`` here sends the
due ones in the background with back-off, so a gateway that is down loses
nothing. The text is built at send time from the application's current status,
so the 会见码 is never stored in the outbox, and it is never logged either
(only the notice kind and a masked phone number are).

Two notifiers: ``LogNotifier`` (no gateway configured, e.g. the demo: the
"SMS" goes to the log) and ``HttpSmsNotifier`` (``--sms-gateway-url``, bearer
token from ``VISITGATE_SMS_GATEWAY_TOKEN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from sessions.clock import Clock
from sessions.notifications import Notice, NoticeKind
from sessions.services import ApplicationStatus, VisitGateService

from .keys import CLOCK, REGISTRY, SERVICE, SETTINGS

log = logging.getLogger(__name__)

#: A gateway that has not answered within this many seconds has failed.
GATEWAY_TIMEOUT = 10.0
#: Notices handled per round, so one round never runs unbounded.
BATCH = 20
#: Seconds between rounds.
INTERVAL = 5.0
#: ``last_error`` of a notice that was not sent because it no longer applies.
OBSOLETE = "obsolete"

PREFIX = "【视频会见】"


class DeliveryFailed(Exception):
    """The notice was not delivered; ``reason`` is short and holds no notice text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Notifier(Protocol):
    async def send(self, phone: str, text: str) -> None:
        """Deliver ``text`` to ``phone``; raise ``DeliveryFailed`` otherwise."""
        ...


def mask_phone(phone: str) -> str:
    """``13800138000`` → ``138****8000``: enough to tell numbers apart in a log."""
    phone = phone.strip()
    if len(phone) > 7:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * max(len(phone) - 2, 0) + phone[-2:]


class LogNotifier:
    """No gateway configured: the SMS goes to the log, with the visit link's
    token and the 会见码 masked (logs are read by more people than should hold
    them; the officer sees them once in the console, the relative on the status page)."""

    async def send(self, phone: str, text: str) -> None:
        log.info("SMS to %s: %s", mask_phone(phone), mask_secrets(text))


_LINK_TOKEN = re.compile(r"(/v/)[A-Za-z0-9_-]{20,}")
_CODE = re.compile(r"(?<![\d-])\d{8}(?![\d-])")  # not the 20261124- of an application number


def mask_secrets(text: str) -> str:
    return _CODE.sub("********", _LINK_TOKEN.sub(r"\1…", text))


class HttpSmsNotifier:
    """POSTs ``{"phone": ..., "text": ...}`` as JSON to the gateway; any 2xx is delivered."""

    def __init__(
        self,
        url: str,
        token: str | None,
        session: aiohttp.ClientSession,
        *,
        timeout: float = GATEWAY_TIMEOUT,
    ) -> None:
        self.url = url
        self._token = token
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # keep the token out of logs
        return f"HttpSmsNotifier({self.url!r})"

    async def send(self, phone: str, text: str) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with self._session.post(
                self.url,
                json={"phone": phone, "text": text},
                headers=headers,
                timeout=self._timeout,
            ) as response:
                if not 200 <= response.status < 300:
                    # The body is not kept: a gateway may echo the text back.
                    raise DeliveryFailed(f"gateway answered HTTP {response.status}")
        except TimeoutError:
            raise DeliveryFailed("gateway timed out") from None
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(f"gateway unreachable ({type(exc).__name__})") from None


# --- the texts ---------------------------------------------------------------------------------


def render(kind: NoticeKind, status: ApplicationStatus, base_url: str) -> str | None:
    """The SMS for ``kind`` in Simplified Chinese, or None if it no longer applies
    (a "visit scheduled" notice whose link and code are gone: visit ended or revoked)."""
    base_url = base_url.rstrip("/")
    application = status.application
    ours = f"{PREFIX}您的会见申请（编号{application.number}）"
    lookup = f"查询：{base_url}/status"
    reason = (application.decision_reason or "").strip()
    because = f"，原因：{reason}" if reason else ""
    if kind is NoticeKind.APPLICATION_RECEIVED:
        due = application.deadline.due
        return f"{ours}已提交，监所将在{due.year}年{due.month}月{due.day}日前答复。{lookup}"
    if kind is NoticeKind.APPLICATION_RETURNED:
        return f"{ours}被退回补正{because}。请补正后重新提交。{lookup}"
    if kind is NoticeKind.APPLICATION_APPROVED:
        return f"{ours}已通过审核，监所将另行通知会见时间。{lookup}"
    if kind is NoticeKind.APPLICATION_REJECTED:
        return f"{ours}未获批准{because}。{lookup}"
    if kind is NoticeKind.VISIT_SCHEDULED:
        if status.secrets is None or status.appointment is None:
            return None
        local = status.appointment.starts_at.astimezone(status.facility.tz)
        length = status.appointment.ends_at - status.appointment.starts_at
        minutes = round(length.total_seconds() / 60)
        return (
            f"{ours}已安排：{status.facility.name}，{local.month}月{local.day}日 "
            f"{local:%H:%M}，{minutes}分钟。会见链接：{base_url}/v/{status.secrets.token} "
            f"会见码：{status.secrets.code}。请提前15分钟进入，"
            "会见时将身份证对准摄像头出示5至10秒。"
        )
    raise ValueError(f"no text for notice kind {kind!r}")


# --- the dispatcher ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeMetrics:
    sent: Counter
    failed: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NoticeMetrics:
        return cls(
            sent=Counter(
                "visitgate_notices_sent",
                "Notices delivered to the SMS gateway (or the log)",
                ["kind"],
                registry=registry,
            ),
            failed=Counter(
                "visitgate_notices_failed",
                "Failed delivery attempts of notices (each is retried with back-off)",
                ["kind"],
                registry=registry,
            ),
        )


class NoticeDispatcher:
    """Sends due notices: load them in one short transaction, send each outside any
    transaction, record the outcome of each in its own short transaction.

    Delivery is at least once: a process stopped between sending and recording
    sends that notice again after a restart.
    """

    def __init__(
        self,
        service: VisitGateService,
        notifier: Notifier,
        clock: Clock,
        base_url: str,
        metrics: NoticeMetrics | None = None,
    ) -> None:
        self.service = service
        self.notifier = notifier
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.metrics = metrics

    async def run_once(self, limit: int = BATCH) -> int:
        """Handle up to ``limit`` due notices; return how many were handled."""
        async with self.service.uow() as uow:
            notices = await uow.outbox.due(self.clock.now(), limit)
        for notice in notices:
            await self._handle(notice)
        return len(notices)

    async def run_forever(self, interval: float = INTERVAL) -> None:
        """Rounds until cancelled; a failed round is logged and the next one runs."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("notice dispatch round failed; retrying in %.0f s", interval)
            await asyncio.sleep(interval)

    async def _handle(self, notice: Notice) -> None:
        who = mask_phone(notice.phone)
        try:
            text = render(
                notice.kind, await self.service.status_of(notice.application_id), self.base_url
            )
        except Exception as exc:  # one bad notice must not block the others
            log.exception("notice %s (%s to %s) could not be built", notice.id, notice.kind, who)
            await self._failed(notice, f"cannot build the text ({type(exc).__name__})")
            return
        if text is None:
            log.info("notice %s (%s to %s) no longer applies", notice.id, notice.kind, who)
            notice.failed_at = self.clock.now()
            notice.last_error = OBSOLETE
            await self._save(notice)
            return
        try:
            await self.notifier.send(notice.phone, text)
        except DeliveryFailed as exc:
            log.warning("notice %s (%s to %s) failed: %s", notice.id, notice.kind, who, exc.reason)
            await self._failed(notice, exc.reason)
            return
        notice.delivered(self.clock.now())
        await self._save(notice)
        if self.metrics is not None:
            self.metrics.sent.labels(notice.kind.value).inc()
        log.info("notice %s (%s to %s) sent", notice.id, notice.kind, who)

    async def _failed(self, notice: Notice, reason: str) -> None:
        notice.attempt_failed(reason, self.clock.now())
        await self._save(notice)
        if self.metrics is not None:
            self.metrics.failed.labels(notice.kind.value).inc()
        if notice.failed_at is not None:
            log.error(
                "notice %s (%s to %s) given up after %d attempts",
                notice.id,
                notice.kind,
                mask_phone(notice.phone),
                notice.attempts,
            )

    async def _save(self, notice: Notice) -> None:
        async with self.service.uow() as uow:
            await uow.outbox.update(notice)
            await uow.commit()


DISPATCHER = web.AppKey("notice_dispatcher", NoticeDispatcher)


def setup(app: web.Application) -> None:
    """Run the dispatcher for the app's lifetime; must come after the database context."""
    app.cleanup_ctx.append(_dispatching)


async def _dispatching(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session: aiohttp.ClientSession | None = None
    notifier: Notifier
    if settings.sms_gateway_url:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GATEWAY_TIMEOUT))
        notifier = HttpSmsNotifier(settings.sms_gateway_url, settings.sms_gateway_token, session)
    else:
        notifier = LogNotifier()
    dispatcher = NoticeDispatcher(
        app[SERVICE],
        notifier,
        app[CLOCK],
        settings.base_url(),
        NoticeMetrics.create(app[REGISTRY]),
    )
    app[DISPATCHER] = dispatcher
    task = asyncio.create_task(dispatcher.run_forever(), name="notice-dispatcher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if session is not None:
            await session.close()
