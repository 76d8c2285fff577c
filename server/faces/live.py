"""Face checks during a live visit: the identity gate and the unexpected-face watch.

Owns, per app: one ``RecognitionPool`` (``settings.workers`` processes, started on first use
and stopped with the app; its back-pressure exported on ``app[REGISTRY]``); per visit whose
media is up and whose state is ``identity_check`` or ``live``: a :class:`VisitFaces` with a
decoding tap on the relative's video (``server.media.tap``), the approved people's
encodings (enrolled once per visit), the gate's votes and the unexpected-face watch.

Flow: the tap samples 1 frame/s off the loop and hands it to the pool (never blocking: the
pool keeps one waiting frame per visit side); results come back on the loop and are judged
here, cheaply (``card.judge``, ``verify.Vote``, ``unexpected.UnexpectedFaceWatch``).

- identity_check: card mode. Every approved visitor needs a passing vote of card + live face
  (3 of the last 5 samples). Progress goes to the relative (and officers) as ``identity``
  frames. When all pass, ``service.record_identity_result`` records ``visit.identity_checked``
  with the distances and takes the visit live (actor ``system:face_gate``). After
  ``GATE_ATTEMPTS`` failed votes the gate gives up and the officer decides (``admit`` or
  ``cut``). The officer's ``admit`` is always the override.
- live: watch mode. An unknown face agreed over several samples → ``visit.face_alert`` in
  the ledger (distances, box; no image) and an ``alert`` frame to the officers only, with a
  small JPEG snapshot (face box drawn). With the facility's ``auto_cut`` policy the media
  stops and the visit ends with ``identity_failed``.

Only the relative's side is watched for now (the kiosk side needs the detainee's
enrolment). Lawyer meetings are not monitored, so they get no face checks. Visits whose
visitors cannot be enrolled (no stored encoding, no readable photo) get none either; the
officer's manual check applies.

Must never: run recognition, decoding or JPEG encoding on the event loop, or block it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from PIL import Image as PILImage
from PIL import ImageDraw
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recognition.analysis import FrameAnalysis, Mode
from recognition.card import CardCheck, CardFaces, judge
from recognition.enrolment import encoding_from_bytes, enrol
from recognition.models import Box, Image
from recognition.unexpected import UnexpectedFaceAlert, UnexpectedFaceWatch
from recognition.verify import Enrolled, Vote
from recognition.worker import RecognitionPool
from sessions.applications import Application
from sessions.errors import DomainError, Language
from sessions.events import FACE_WATCH
from sessions.facilities import UnexpectedFacePolicy
from sessions.visits import EndReason, VisitKind, VisitState

from .keys import REGISTRY, SETTINGS
from .live.protocol import Frame, event_frame
from .live.rooms import LIVE, LiveRegistry, LiveVisit
from .media.relay import ForwardedTrack
from .media.tap import DEFAULT_INTERVAL, FrameTap, SampledFrame
from .tasks import log_failure as _log_failure
from .uploads import PHOTOS

log = logging.getLogger(__name__)

#: Passing samples needed among the last ``GATE_WINDOW`` for one visitor.
GATE_NEEDED, GATE_WINDOW = 3, 5
#: Failed votes (a visitor's face or card not matching) before the officer decides.
GATE_ATTEMPTS = 3
#: Snapshots sent to officers fit in this box.
SNAPSHOT_SIDE = 320
_CHECKED_STATES = frozenset({VisitState.IDENTITY_CHECK, VisitState.LIVE})
_RELATIVE_AND_OFFICERS = frozenset({"relative", "officer"})
_OFFICERS = frozenset({"officer"})


class _Tappable(Protocol):
    def add_consumer(self, side: Any, kind: Any, name: str) -> ForwardedTrack: ...


# --- what the relative is told during the gate -----------------------------------------------

_STEPS: dict[str, tuple[str, str]] = {
    "face": ("请正对摄像头，保持面部完整清晰", "Face the camera, with your whole face visible"),
    "card": ("请将身份证人像面举在脸旁，保持5至10秒", "Hold your ID card next to your face"),
    "hold_still": ("已检测到身份证，请保持不动", "ID card detected, hold still"),
    "mismatch": (
        "人脸与身份证或登记信息不符，请本人手持本人身份证重试",
        "The face does not match the ID card or the application; hold up your own card",
    ),
    "matched": ("人脸已核验，请下一位会见人持身份证", "Face matched; next visitor, please"),
    "passed": ("身份核验通过，会见即将开始", "Identity confirmed; the visit is starting"),
    "failed": ("身份核验未通过，请等待民警处理", "Identity not confirmed; the officer decides"),
}


def step_message(step: str, lang: Language) -> str:
    zh, en = _STEPS[step]
    return zh if lang == "zh" else en


def snapshot_jpeg(image: Image, box: Box) -> str:
    """A small JPEG of the frame with the face box drawn, as a data URL (CPU: use a thread)."""
    picture = PILImage.fromarray(image)
    ImageDraw.Draw(picture).rectangle(
        (box.left, box.top, box.right - 1, box.bottom - 1), outline=(255, 40, 40), width=3
    )
    picture.thumbnail((SNAPSHOT_SIDE, SNAPSHOT_SIDE))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def _box(box: Box | None) -> list[int] | None:
    return None if box is None else [box.left, box.top, box.right, box.bottom]


@dataclass
class _Pending:
    image: Image
    mode: Mode


class VisitFaces:
    """The face checks of one visit's room (relative side)."""

    def __init__(self, owner: LiveRecognition, room: LiveVisit) -> None:
        self.owner = owner
        self.room = room
        self.visit_id = room.visit_id
        self.approved: list[Enrolled] = []
        self.policy = UnexpectedFacePolicy.ALERT_ONLY
        self.tap: FrameTap | None = None
        self.votes: dict[str, Vote] = {}
        self.evidence: dict[str, list[dict[str, Any]]] = {}
        self.failures = 0
        self.gate_decided = False
        self.card_hint: Box | None = None
        self.watch: UnexpectedFaceWatch | None = None
        self.alerts = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    # -- lifecycle --

    def start(self) -> None:
        self._spawn(self._prepare(), f"faces-{self.visit_id}")

    async def stop(self) -> None:
        self._stopped = True
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tap, self.tap = self.tap, None
        if tap is not None:
            await tap.stop()
        self._pending.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._stopped:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _prepare(self) -> None:
        visit = self.room.visit
        assert visit is not None
        service = self.owner.registry.service
        facility, application = await service.visit_application(visit)
        self.policy = facility.rules.unexpected_face_policy
        self.approved = await self.owner.enrolments(application)
        if not self.approved:
            log.warning("visit %s: no visitor could be enrolled; no face checks", self.visit_id)
            return
        self.votes = {e.person_id: Vote(GATE_NEEDED, GATE_WINDOW) for e in self.approved}
        self.watch = UnexpectedFaceWatch(self.approved)
        await self.owner.pool_started()
        media = self.room.media
        if (
            self._stopped
            or self.owner.pool is None
            or media is None
            or not hasattr(media, "add_consumer")
        ):
            return
        consumer = media.add_consumer("relative", "video", f"tap-{self.visit_id}-relative")
        self.tap = FrameTap(
            consumer,
            name=f"{self.visit_id[:8]}-relative",
            interval=self.owner.interval,
            on_frame=self._sample,
        )
        self.tap.start()

    # -- frames out (on the loop, never blocking) --

    def _mode(self) -> Mode | None:
        visit = self.room.visit
        if visit is None or self.room.closed:
            return None
        if visit.state is VisitState.IDENTITY_CHECK and not self.gate_decided:
            return "card"
        if visit.state is VisitState.LIVE:
            return "watch"
        return None

    def _sample(self, frame: SampledFrame) -> None:
        mode = self._mode()
        pool = self.owner.pool
        if mode is None or pool is None or self._stopped:
            return
        skip = tuple(self.watch.skippable()) if mode == "watch" and self.watch else ()
        hint = self.card_hint if mode == "card" else None
        seq = pool.submit(
            self.visit_id, "relative", frame.image, mode=mode, skip=skip, card_hint=hint
        )
        self._pending[seq] = _Pending(frame.image, mode)
        while len(self._pending) > 4:
            self._pending.popitem(last=False)

    # -- results in --

    def on_result(self, result: FrameAnalysis) -> None:
        pending = self._pending.pop(result.seq, None)
        for seq in [s for s in self._pending if s < result.seq]:
            del self._pending[seq]
        if pending is None or self._stopped or pending.mode != self._mode():
            return  # the visit moved on (gate passed, admitted, ended) since it was sent
        if pending.mode == "card":
            self._gate(result)
        else:
            self._watch(result, pending.image)

    # -- the gate --

    def _gate(self, result: FrameAnalysis) -> None:
        live = result.faces[0] if result.faces else None
        check = judge(CardFaces(live, result.card, "none"), self.approved)
        if check.card_box is not None:
            self.card_hint = check.card_box
        person = check.person_id or (check.live.person_id if check.live else None)
        step: str
        if check.passed and person is not None:
            vote = self.votes[person]
            vote.add(True)
            self.evidence.setdefault(person, []).append(_evidence(check, result))
            del self.evidence[person][:-GATE_WINDOW]
            step = "matched" if vote.verdict == "passed" else "hold_still"
        elif check.reason == "no_live_face":
            step = "face"
        elif check.reason == "no_card_face":
            step = "card"
        else:
            step = "mismatch"
            if person is not None and self.votes[person].add(False) == "failed":
                self.failures += 1
                self.votes[person].reset()
        if all(v.verdict == "passed" for v in self.votes.values()):
            step = "passed"
            self.gate_decided = True
            self._spawn(self._decide(True), f"gate-{self.visit_id}")
        elif self.failures >= GATE_ATTEMPTS:
            step = "failed"
            self.gate_decided = True
            self._spawn(self._decide(False), f"gate-{self.visit_id}")
        self._progress(step, person)

    def _progress(self, step: str, person: str | None) -> None:
        done = sum(1 for v in self.votes.values() if v.verdict == "passed")
        vote = self.votes.get(person) if person else None

        def build(lang: Language) -> Frame:
            return event_frame(
                "identity",
                step=step,
                message=step_message(step, lang),
                person=person,
                votes=vote.yes if vote else 0,
                needed=GATE_NEEDED,
                passed_people=done,
                people=len(self.votes),
            )

        self.room.broadcast(build, roles=_RELATIVE_AND_OFFICERS)

    async def _decide(self, passed: bool) -> None:
        registry = self.owner.registry
        persons = [
            {
                "person": e.person_id,
                "passed": self.votes[e.person_id].verdict == "passed",
                "frames": self.evidence.get(e.person_id, []),
            }
            for e in self.approved
        ]
        try:
            visit = await registry.service.record_identity_result(
                self.visit_id, passed=passed, persons=persons
            )
        except DomainError as error:  # the officer admitted or cut first
            log.info("visit %s: gate decision not recorded: %s", self.visit_id, error)
            return
        await registry.apply(visit)

    # -- the watch --

    def _watch(self, result: FrameAnalysis, image: Image) -> None:
        assert self.watch is not None
        for alert in self.watch.observe(result.faces):
            self._spawn(self._alert(alert, image), f"alert-{self.visit_id}")

    async def _alert(self, alert: UnexpectedFaceAlert, image: Image) -> None:
        registry = self.owner.registry
        snapshot = await asyncio.to_thread(snapshot_jpeg, image, alert.box)
        distances = {person: _finite(d) for person, d in alert.distances}
        try:
            event = await registry.service.raise_face_alert(
                self.visit_id,
                "relative",
                box=_box(alert.box),
                distance=_finite(alert.distance),
                distances=distances,
                votes=alert.votes,
                window=alert.window,
                policy=self.policy.value,
            )
        except DomainError as error:
            log.info("visit %s: face alert not recorded: %s", self.visit_id, error)
            return
        self.alerts += 1
        self.owner.alerts += 1
        auto_cut = self.policy is UnexpectedFacePolicy.AUTO_CUT

        def build(lang: Language) -> Frame:
            message = (
                "画面中出现未经核准的人员" if lang == "zh" else "An unapproved person is in view"
            )
            return event_frame(
                "alert",
                side="relative",
                at=event.at.isoformat(),
                message=message,
                box=_box(alert.box),
                distance=_finite(alert.distance),
                distances=distances,
                votes=alert.votes,
                window=alert.window,
                auto_cut=auto_cut,
                snapshot=snapshot,
            )

        self.room.broadcast(build, roles=_OFFICERS)
        if auto_cut:
            self.room.stop_media()
            try:
                visit = await registry.service.end_visit(
                    self.visit_id,
                    EndReason.IDENTITY_FAILED,
                    FACE_WATCH,
                    "未经核准的人员出现在画面中",
                )
            except DomainError as error:
                log.info("visit %s: auto-cut not applied: %s", self.visit_id, error)
                return
            await registry.apply(visit)


def _evidence(check: CardCheck, result: FrameAnalysis) -> dict[str, Any]:
    return {
        "seq": result.seq,
        "live": _finite(check.live.distance) if check.live else None,
        "card": _finite(check.card.distance) if check.card else None,
    }


class LiveRecognition:
    """The app's face checks: the pool, the per-visit sessions, the metrics."""

    def __init__(
        self, app: web.Application, *, workers: int, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.app = app
        self.workers = workers
        self.interval = interval
        self.pool: RecognitionPool | None = None
        self.sessions: dict[str, VisitFaces] = {}
        self.alerts = 0
        self._starting: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def registry(self) -> LiveRegistry:
        return self.app[LIVE]

    # -- the pool --

    async def pool_started(self) -> None:
        """Start the pool on first use (spawned processes load the models) and wait."""
        if self._closed:
            return
        if self._starting is None:
            pool = RecognitionPool(self.workers, on_result=self._dispatch)
            self._starting = asyncio.get_running_loop().create_task(
                self._start(pool), name="recognition-pool-start"
            )
        await asyncio.shield(self._starting)

    async def _start(self, pool: RecognitionPool) -> None:
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
            person = f"visitor-{index}"
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
        return [s.tap for s in list(self.sessions.values()) if s.tap is not None]


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
    recognition = LiveRecognition(app, workers=app[SETTINGS].workers)
    app[RECOGNITION] = recognition
    app[LIVE].watcher = recognition
    app[REGISTRY].register(_Collector(recognition))

    async def running(app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await recognition.close()

    app.cleanup_ctx.append(running)
