"""The face checks of one visit's room: the identity gate on the relative's side, and
during the visit the unexpected-face watch and the re-verification of approved people on
both sides.

Owns, per side with someone enrolled (the visitors on the relative side; the detainee,
from the facility's photo, on the kiosk side): a decoding tap on that side's forwarded
video, whose sampling interval follows what is being judged (``interval_for``), the
frames in flight, the ``UnexpectedFaceWatch`` and the ``PresenceWatch``; for the visit,
the ``IdentityGate``. The decisions are in ``recognition/`` (pure); this class moves
frames, results and verdicts between the tap, the pool, the service and the sockets.

Flow: the tap hands a sampled frame to ``_sample`` (on the loop, never blocking), which
submits it to the pool in the mode the side needs now; the result comes back to
``on_result`` and is judged here, cheaply; what people should know goes out as frames
(``identity`` to the relative and officers; ``gate``, ``alert`` and ``presence`` to
officers only), what the ledger should keep goes through the service (with a stored
snapshot's reference, never the picture itself).

Must never: run recognition, decoding, JPEG encoding or file writes on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from recognition.analysis import FrameAnalysis, Mode, Side
from recognition.enrolment import encoding_from_bytes
from recognition.gate import GateUpdate, IdentityGate
from recognition.models import Box, Image
from recognition.presence import PresenceChange, PresenceWatch
from recognition.unexpected import UnexpectedFaceAlert, UnexpectedFaceWatch
from recognition.verify import Enrolled
from sessions.errors import DomainError, Language
from sessions.events import FACE_WATCH
from sessions.facilities import UnexpectedFacePolicy
from sessions.visits import EndReason, VisitState

from ..live.protocol import Frame, event_frame
from ..live.rooms import LiveVisit
from ..media.relay import ForwardedTrack
from ..media.tap import FrameTap, SampledFrame
from ..tasks import log_failure
from .messages import box_list, data_url, finite, notice, snapshot_jpeg, step_message

if TYPE_CHECKING:
    from .live import LiveRecognition

log = logging.getLogger(__name__)

#: Seconds between samples of a side while a new face there is still being judged.
FAST_INTERVAL = 0.25
_RELATIVE_AND_OFFICERS = frozenset({"relative", "officer"})
_OFFICERS = frozenset({"officer"})


def visitor_person(index: int) -> str:
    """How the face checks name the application's ``index``-th visitor (from 1) in frames
    and the ledger: no personal data, stable for the visit."""
    return f"visitor-{index}"


class _Tappable(Protocol):
    def add_consumer(self, side: Any, kind: Any, name: str) -> ForwardedTrack: ...


@dataclass
class _Pending:
    image: Image
    mode: Mode
    at: float


@dataclass(eq=False)
class _Side:
    name: Side
    approved: list[Enrolled]
    names: dict[str, str]
    watch: UnexpectedFaceWatch
    tap: FrameTap | None = None
    presence: PresenceWatch | None = None
    pending: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)


class VisitFaces:
    def __init__(self, owner: LiveRecognition, room: LiveVisit) -> None:
        self.owner = owner
        self.room = room
        self.visit_id = room.visit_id
        self.facility_id = ""
        self.policy = UnexpectedFacePolicy.ALERT_ONLY
        self.sides: dict[Side, _Side] = {}
        self.gate: IdentityGate | None = None
        self.gate_recorded = False
        self.alerts = 0
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
        for side in self.sides.values():
            tap, side.tap = side.tap, None
            if tap is not None:
                await tap.stop()
            side.pending.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._stopped:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_failure)

    async def _prepare(self) -> None:
        visit = self.room.visit
        assert visit is not None
        service = self.owner.registry.service
        facility, application = await service.visit_application(visit)
        self.facility_id = facility.id
        self.policy = facility.rules.unexpected_face_policy
        visitors = await self.owner.enrolments(application)
        names = {visitor_person(i): v.name for i, v in enumerate(application.visitors, start=1)}
        if visitors:
            self.sides["relative"] = _Side(
                "relative", visitors, names, UnexpectedFaceWatch(visitors)
            )
            self.gate = IdentityGate(visitors, self.owner.gate_rules, rng=self.owner.rng)
        else:
            log.warning("visit %s: no visitor could be enrolled; the officer checks", visit.id)
        detainee = await self._detainee(application.detainee_id)
        if detainee is not None:
            names = {detainee.person_id: "被会见人"}
            self.sides["kiosk"] = _Side("kiosk", [detainee], names, UnexpectedFaceWatch([detainee]))
        if not self.sides:
            return
        await self.owner.pool_started()
        media = self.room.media
        if self._stopped or self.owner.pool is None or not hasattr(media, "add_consumer"):
            return
        tappable: _Tappable = media  # type: ignore[assignment]
        for side in self.sides.values():
            consumer = tappable.add_consumer(side.name, "video", f"tap-{self.visit_id}-{side.name}")
            side.tap = FrameTap(
                consumer,
                name=f"{self.visit_id[:8]}-{side.name}",
                interval=self.interval_for(side),
                on_frame=functools.partial(self._sample, side),
            )
            side.tap.start()

    async def _detainee(self, detainee_id: str) -> Enrolled | None:
        """The detainee's enrolment from the facility's photo, if there is one."""
        try:
            stored = await self.owner.registry.service.detainee_encoding(detainee_id)
        except DomainError as error:
            log.warning("visit %s: detainee not enrolled: %s", self.visit_id, error)
            return None
        if not stored:
            return None
        return Enrolled("detainee", encoding_from_bytes(bytes(stored)))

    # -- what each side needs now --

    def mode_for(self, side: _Side) -> Mode | None:
        visit = self.room.visit
        if visit is None or self.room.closed:
            return None
        if visit.state is VisitState.LIVE:
            return "watch"
        if (
            visit.state is VisitState.IDENTITY_CHECK
            and side.name == "relative"
            and self.gate is not None
        ):
            return self.gate.mode
        return None

    def interval_for(self, side: _Side) -> float:
        if self.mode_for(side) in ("card", "liveness") and self.gate is not None:
            return self.gate.interval or self.owner.interval
        judging = any(t.vote.verdict == "undecided" for t in side.watch.tracker.tracks)
        return FAST_INTERVAL if judging else self.owner.interval

    # -- frames out (on the loop, never blocking) --

    def _sample(self, side: _Side, frame: SampledFrame) -> None:
        mode = self.mode_for(side)
        pool = self.owner.pool
        if mode is None or pool is None or self._stopped:
            return
        fields: dict[str, Any] = {}
        if mode == "watch":
            fields["skip"] = tuple(side.watch.skippable())
        elif self.gate is not None:
            fields.update(card_hint=self.gate.card_hint, track=self.gate.track)
            fields["encode"] = self.gate.encode
        seq = pool.submit(self.visit_id, side.name, frame.image, mode=mode, **fields)
        side.pending[seq] = _Pending(frame.image, mode, frame.at)
        while len(side.pending) > 4:
            side.pending.popitem(last=False)

    # -- results in --

    def on_result(self, result: FrameAnalysis) -> None:
        side = self.sides.get(result.side)
        if side is None:
            return
        pending = side.pending.pop(result.seq, None)
        for seq in [s for s in side.pending if s < result.seq]:
            del side.pending[seq]
        if pending is None or self._stopped or pending.mode != self.mode_for(side):
            return  # the visit moved on (gate passed, admitted, ended) since it was sent
        if pending.mode == "watch":
            self._watch(side, result, pending)
        else:
            self._gate(result, pending)
        if side.tap is not None:
            side.tap.interval = self.interval_for(side)

    # -- the gate --

    def _gate(self, result: FrameAnalysis, pending: _Pending) -> None:
        assert self.gate is not None
        update = self.gate.on_result(pending.at, result)
        self._progress(update)
        if update.outcome != "pending" and not self.gate_recorded:
            self.gate_recorded = True
            boxes = [f.box for f in result.faces] + ([result.card.box] if result.card else [])
            self._spawn(
                self._decide(update.outcome == "passed", pending.image, boxes),
                f"gate-{self.visit_id}",
            )

    def _progress(self, update: GateUpdate) -> None:
        names = self.sides["relative"].names

        def build(lang: Language) -> Frame:
            return event_frame(
                "identity",
                step=update.step,
                message=step_message(update.step, lang),
                person=update.person,
                person_name=names.get(update.person or ""),
                votes=update.votes,
                needed=update.needed,
                passed_people=update.passed_people,
                people=update.people,
                attempts_left=update.attempts_left,
                challenge=update.challenge,
                progress=update.progress,
            )

        self.room.broadcast(build, roles=_RELATIVE_AND_OFFICERS)

    async def _decide(self, passed: bool, image: Image, boxes: list[Box]) -> None:
        assert self.gate is not None
        registry = self.owner.registry
        jpeg, ref = await self._snapshot(image, boxes)
        names = self.sides["relative"].names
        persons = [dict(p, name=names.get(str(p["person"]))) for p in self.gate.evidence()]
        try:
            visit = await registry.service.record_identity_result(
                self.visit_id, passed=passed, persons=persons, snapshot_ref=ref
            )
        except DomainError as error:  # the officer admitted or cut first
            log.info("visit %s: gate decision not recorded: %s", self.visit_id, error)
            return

        def build(lang: Language) -> Frame:
            return event_frame(
                "gate",
                passed=passed,
                message=notice("gate_passed" if passed else "gate_failed", lang),
                persons=persons,
                snapshot=data_url(jpeg),
                snapshot_ref=ref,
            )

        self.room.broadcast(build, roles=_OFFICERS)
        await registry.apply(visit)

    async def _snapshot(self, image: Image, boxes: list[Box]) -> tuple[bytes, str | None]:
        """The JPEG (in a thread) and, when the app stores snapshots, its reference."""
        jpeg = await asyncio.to_thread(snapshot_jpeg, image, boxes)
        store = self.owner.snapshots
        if store is None or not self.facility_id:
            return jpeg, None
        try:
            return jpeg, await store.save_async(self.facility_id, self.visit_id, jpeg)
        except OSError as error:
            log.error("visit %s: snapshot not stored: %s", self.visit_id, error)
            return jpeg, None

    # -- during the visit --

    def _watch(self, side: _Side, result: FrameAnalysis, pending: _Pending) -> None:
        for alert in side.watch.observe(result.faces):
            self._spawn(self._alert(side, alert, pending.image), f"alert-{self.visit_id}")
        tracker = side.watch.tracker
        seen = [t for t in tracker.tracks if t.last_seen == tracker.sample]
        if side.presence is None:
            people = [e.person_id for e in side.approved]
            side.presence = PresenceWatch(
                people, timeout_s=self.owner.presence_timeout, started_at=pending.at
            )
        for change in side.presence.observe(pending.at, seen):
            self._spawn(self._presence(side, change, pending.image), f"presence-{self.visit_id}")

    async def _alert(self, side: _Side, alert: UnexpectedFaceAlert, image: Image) -> None:
        registry = self.owner.registry
        jpeg, ref = await self._snapshot(image, [alert.box])
        distances = {person: finite(d) for person, d in alert.distances}
        try:
            event = await registry.service.raise_face_alert(
                self.visit_id,
                side.name,
                box=box_list(alert.box),
                distance=finite(alert.distance),
                distances=distances,
                votes=alert.votes,
                window=alert.window,
                policy=self.policy.value,
                snapshot_ref=ref,
            )
        except DomainError as error:
            log.info("visit %s: face alert not recorded: %s", self.visit_id, error)
            return
        self.alerts += 1
        self.owner.alerts += 1
        auto_cut = self.policy is UnexpectedFacePolicy.AUTO_CUT

        def build(lang: Language) -> Frame:
            return event_frame(
                "alert",
                side=side.name,
                at=event.at.isoformat(),
                message=notice("alert", lang),
                box=box_list(alert.box),
                distance=finite(alert.distance),
                distances=distances,
                votes=alert.votes,
                window=alert.window,
                auto_cut=auto_cut,
                snapshot=data_url(jpeg),
                snapshot_ref=ref,
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

    async def _presence(self, side: _Side, change: PresenceChange, image: Image) -> None:
        registry = self.owner.registry
        jpeg, ref = await self._snapshot(image, [])
        name = side.names.get(change.person_id)
        try:
            event = await registry.service.record_presence(
                self.visit_id,
                side.name,
                person=change.person_id,
                status=change.status,
                seconds=change.seconds,
                snapshot_ref=ref,
            )
        except DomainError as error:
            log.info("visit %s: presence not recorded: %s", self.visit_id, error)
            return

        def build(lang: Language) -> Frame:
            return event_frame(
                "reverify",
                side=side.name,
                person=change.person_id,
                name=name,
                status=change.status,
                seconds=change.seconds,
                message=notice(change.status, lang),
                snapshot=data_url(jpeg),
                snapshot_ref=ref,
                at=event.at.isoformat(),
            )

        self.room.broadcast(build, roles=_OFFICERS)


def system_rng() -> random.Random:
    """Which way the gate asks to turn: unpredictable to a prepared clip."""
    return random.SystemRandom()
