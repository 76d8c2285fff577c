"""Face checks on live visits, per app: the recognition pool, one :class:`VisitFaces` per
visit whose media is up and whose state is ``identity_check`` or ``live``, and the metrics.

Owns: the pool (``settings.workers`` processes, started on first use and stopped with the
app; with ``settings.redis_url``, a ``StreamPool`` feeding ``visitgate recognition-worker``
processes over a Redis stream instead; its back-pressure exported on ``app[REGISTRY]``), the enrolments of a visit's visitors
(stored encodings; else enrolled once from the stored ID photo in a thread), and the
settings the visits share (sampling interval, re-verification timeout, the gate's rules and
the random source of its challenge direction).

Lawyer meetings are not monitored, so they get no face checks. A visit whose visitors cannot
be enrolled gets no gate (the officer checks the card and admits with a reason); a kiosk
side whose detainee has no enrolled photo is not watched.

Must never: run recognition, decoding or JPEG encoding on the event loop, or block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recognition.analysis import FrameAnalysis
from recognition.enrolment import encoding_from_bytes, enrol
from recognition.gate import GateRules
from recognition.stream import StreamPool
from recognition.verify import Enrolled
from recognition.worker import RecognitionPool
from sessions.applications import Application
from sessions.errors import DomainError
from sessions.visits import VisitKind, VisitState

from ..keys import REGISTRY, SETTINGS
from ..live.rooms import LIVE, LiveRegistry, LiveVisit
from ..media.tap import FrameTap
from ..snapshots import SNAPSHOTS, SnapshotStore
from ..uploads import PHOTOS
from .visit import VisitFaces, system_rng, visitor_person

log = logging.getLogger(__name__)

_CHECKED_STATES = frozenset({VisitState.IDENTITY_CHECK, VisitState.LIVE})


class LiveRecognition:
    """The app's face checks: the pool, the per-visit sessions, the metrics."""

    def __init__(
        self,
        app: web.Application,
        *,
        workers: int,
        interval: float = 1.0,
        presence_timeout: float = 20.0,
        gate_rules: GateRules | None = None,
        rng: random.Random | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.app = app
        self.workers = workers
        #: With a Redis URL the frames go to ``recognition-worker`` processes (on this or
        #: other machines) over a Redis stream; without, to this server's own processes.
        self.redis_url = redis_url
        self.interval = interval
        self.presence_timeout = presence_timeout
        self.gate_rules = gate_rules or GateRules()
        #: Which way the gate asks to turn (tests fix it; otherwise unpredictable).
        self.rng = rng or system_rng()
        self.pool: RecognitionPool | StreamPool | None = None
        self.sessions: dict[str, VisitFaces] = {}
        self.alerts = 0
        self._starting: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def registry(self) -> LiveRegistry:
        return self.app[LIVE]

    @property
    def snapshots(self) -> SnapshotStore | None:
        return self.app.get(SNAPSHOTS)

    # -- the pool --

    async def pool_started(self) -> None:
        """Start the pool on first use (spawned processes load the models) and wait."""
        if self._closed:
            return
        if self._starting is None:
            pool: RecognitionPool | StreamPool = (
                StreamPool(self.redis_url, self.workers, on_result=self._dispatch)
                if self.redis_url
                else RecognitionPool(self.workers, on_result=self._dispatch)
            )
            self._starting = asyncio.get_running_loop().create_task(
                self._start(pool), name="recognition-pool-start"
            )
        await asyncio.shield(self._starting)

    async def _start(self, pool: RecognitionPool | StreamPool) -> None:
        await pool.start()
        self.pool = pool

    def _dispatch(self, result: FrameAnalysis) -> None:
        session = self.sessions.get(result.visit_id)
        if session is not None:
            session.on_result(result)

    async def enrolments(self, application: Application) -> list[Enrolled]:
        """The approved visitors' encodings: stored ones, else enrolled once from the
        stored ID photo in a thread. A visitor who cannot be enrolled is left out."""
        photos = self.app.get(PHOTOS)
        enrolled = []
        for index, visitor in enumerate(application.visitors, start=1):
            person = visitor_person(index)
            stored = getattr(visitor, "face_encoding", None)
            try:
                if isinstance(stored, bytes | bytearray):
                    enrolled.append(Enrolled(person, encoding_from_bytes(bytes(stored))))
                    continue
                if photos is None:
                    continue
                data = await photos.read(visitor.id_photo_ref)
                enrolment = await asyncio.to_thread(enrol, data)
                enrolled.append(Enrolled(person, enrolment.encoding))
            except (OSError, ValueError, DomainError) as error:
                log.warning("visit enrolment of %s failed: %s", person, error)
        return enrolled

    # -- the live registry's watcher --

    def room_changed(self, room: LiveVisit) -> None:
        visit = room.visit
        if self._closed or room.closed or visit is None or room.media is None:
            return
        if visit.state not in _CHECKED_STATES or visit.kind is VisitKind.LAWYER:
            return
        current = self.sessions.get(room.visit_id)
        if current is not None and current.room is room:
            return
        session = self.sessions[room.visit_id] = VisitFaces(self, room)
        session.start()

    async def room_closing(self, room: LiveVisit) -> None:
        session = self.sessions.get(room.visit_id)
        if session is None or session.room is not room:
            return
        del self.sessions[room.visit_id]
        await session.stop()
        if self.pool is not None:
            self.pool.forget(room.visit_id)

    # -- the app's life --

    async def close(self) -> None:
        self._closed = True
        sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            await session.stop()
        starting, self._starting = self._starting, None
        if starting is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await starting
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.stop()

    def taps(self) -> Iterable[FrameTap]:
        return [
            side.tap
            for session in list(self.sessions.values())
            for side in session.sides.values()
            if side.tap is not None
        ]


class _Collector(Collector):
    """Pool and tap back-pressure, read when /metrics is scraped."""

    def __init__(self, recognition: LiveRecognition) -> None:
        self.recognition = recognition

    def collect(self) -> Iterable[Metric]:
        pool = self.recognition.pool
        stats = pool.stats() if pool is not None else None
        counters = {
            "submitted": "Sampled frames offered to the recognition pool",
            "processed": "Frames the recognition workers analysed",
            "dropped": "Frames replaced by a newer one before a worker took them",
            "failed": "Frames whose analysis failed",
        }
        for name, help_text in counters.items():
            yield CounterMetricFamily(
                f"visitgate_recognition_frames_{name}",
                help_text,
                value=getattr(stats, name) if stats else 0,
            )
        gauges = {
            "waiting": ("visitgate_recognition_frames_waiting", "Frames waiting for a worker"),
            "in_flight": ("visitgate_recognition_frames_in_flight", "Frames being analysed"),
            "oldest_waiting_s": (
                "visitgate_recognition_queue_age_seconds",
                "Age of the oldest frame waiting for a worker",
            ),
        }
        for attr, (name, help_text) in gauges.items():
            yield GaugeMetricFamily(name, help_text, value=getattr(stats, attr) if stats else 0)
        taps = list(self.recognition.taps())
        yield GaugeMetricFamily(
            "visitgate_recognition_taps", "Decoding taps running", value=len(taps)
        )
        yield CounterMetricFamily(
            "visitgate_recognition_face_alerts",
            "Unexpected-face alerts raised",
            value=self.recognition.alerts,
        )


RECOGNITION = web.AppKey("recognition", LiveRecognition)


def setup(app: web.Application) -> None:
    """After ``live.setup``: the face checks watch the live registry's rooms."""
    settings = app[SETTINGS]
    recognition = LiveRecognition(
        app,
        workers=settings.workers,
        interval=settings.face_interval,
        presence_timeout=settings.presence_timeout,
        redis_url=settings.redis_url,
    )
    app[RECOGNITION] = recognition
    app[LIVE].watcher = recognition
    app[REGISTRY].register(_Collector(recognition))

    async def running(app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await recognition.close()

    app.cleanup_ctx.append(running)
