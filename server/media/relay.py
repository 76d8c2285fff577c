"""Fan-out of encoded packets from one upstream track to its subscribers, without decoding.

A :class:`PacketRelay` owns one reader task that drains its remote track from the moment the
track is published, whether or not anyone subscribes, so nothing piles up in aiortc's own
queues and a late subscriber never receives a stale burst. Each subscriber is a
:class:`ForwardedTrack` (an aiortc ``MediaStreamTrack`` whose ``recv()`` returns an
``av.Packet``) with a small bounded queue:

- audio drops its oldest packet when full; video, where dropping one frame breaks every later
  one, empties the queue, waits for a keyframe and asks upstream for one;
- a video subscriber starts only on a keyframe, and subscribing asks upstream for one; requests
  to one upstream are throttled (``keyframe_interval``, default 0.5 s) and a request that falls
  inside the interval is deferred, not lost;
- every subscriber gets its own ``av.Packet`` built from the relayed bytes, with its own
  timestamps, so a muxer (the recorder) that rewrites pts/time base cannot disturb others;
- timestamps are rebased per subscriber so that they keep increasing when its source is
  replaced (a participant who rejoins arrives with a new track whose timestamps restart at 0).

The relay's ``gate`` drops everything at once when closed (an officer's cut) and ``muted``
drops audio for every subscriber except monitors (officers, recorder), which keep hearing
the muted side.

Unrecoverable loss is detected in the receiver's jitter buffer (see ``hooks.OwnedReceiver``):
the relay is told through :meth:`PacketRelay.on_loss` and holds its video subscribers until
the keyframe that the receiver's immediate PLI brings.

Forwarding gives no per-subscriber bitrate adaptation: every subscriber receives exactly what
the sender sends, so a subscriber on a poor link cannot get a lower rate than the others (its
PLIs and the sender's own congestion control are the only levers).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..tasks import log_failure as _log_failure

if TYPE_CHECKING:
    from server.media.hooks import OwnedReceiver
    from server.media.transcode import Transcoder

logger = logging.getLogger(__name__)

VIDEO_QUEUE = 60  # about 2 s at 30 fps
AUDIO_QUEUE = 50  # 1 s of 20 ms Opus frames


@dataclass(frozen=True, slots=True)
class RelayedFrame:
    """One encoded frame as it left the upstream receiver; immutable, shared by subscribers."""

    data: bytes
    pts: int
    time_base: fractions.Fraction
    keyframe: bool
    mime_type: str
    source: int  # identifies the relay, for rebasing timestamps when the source changes


@dataclass
class RelayStats:
    received: int = 0
    dropped_gate: int = 0
    dropped_muted: int = 0
    keyframe_requests: int = 0
    keyframe_requests_deferred: int = 0
    losses: int = 0


class PacketRelay:
    """Reads one upstream track and hands each encoded frame to its subscribers."""

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        name: str,
        receiver: OwnedReceiver | None = None,
        keyframe_interval: float = 0.5,
        gate_open: bool = True,
    ) -> None:
        self.track = track
        self.kind = track.kind
        self.name = name
        self.receiver = receiver
        self.keyframe_interval = keyframe_interval
        self.gate_open = gate_open
        self.muted = False
        self.mime_type: str | None = None
        self.stats = RelayStats()
        self.ended = False
        self._subscribers: list[ForwardedTrack] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_request = -1e9
        self._deferred: asyncio.Task[Any] | None = None
        self._reader: asyncio.Task[None] | None = None

    # -- lifecycle --

    def start(self) -> None:
        """Start draining the track; call as soon as the track is published."""
        if self._reader is None:
            self._reader = self._spawn(self._run(), f"relay-{self.name}")

    async def stop(self) -> None:
        """Cancel and await every task of this relay; subscribers stay (they may move)."""
        self.gate_open = False
        tasks = [t for t in (self._reader, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for sub in list(self._subscribers):
            self.detach(sub)
        if self.receiver is not None:
            self.receiver.release()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        return [t for t in (self._reader, *self._tasks) if t is not None and not t.done()]

    # -- subscribers --

    def attach(self, sub: ForwardedTrack) -> None:
        if sub._relay is not None and sub._relay is not self:
            sub._relay.detach(sub)
        if sub not in self._subscribers:
            self._subscribers.append(sub)
        sub._attached(self)
        if self.kind == "video":
            self.request_keyframe()

    def detach(self, sub: ForwardedTrack) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
        if sub._relay is self:
            sub._relay = None

    @property
    def subscribers(self) -> list[ForwardedTrack]:
        return list(self._subscribers)

    def close_gate(self) -> None:
        """Drop every packet from now on, including those already queued to subscribers."""
        self.gate_open = False
        for sub in self._subscribers:
            sub.close_gate()

    # -- keyframes --

    def request_keyframe(self) -> None:
        """Ask upstream for a keyframe, at most once per ``keyframe_interval``."""
        if self.kind != "video" or self.receiver is None or self.ended:
            return
        wait = self._last_request + self.keyframe_interval - time.monotonic()
        if wait <= 0:
            self._last_request = time.monotonic()
            self._spawn(self._send_pli(), f"pli-{self.name}")
        elif self._deferred is None:
            self.stats.keyframe_requests_deferred += 1
            self._deferred = self._spawn(self._send_pli_later(wait), f"pli-later-{self.name}")

    async def _send_pli(self) -> None:
        assert self.receiver is not None
        if await self.receiver.send_pli():
            self.stats.keyframe_requests += 1

    async def _send_pli_later(self, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
        finally:
            self._deferred = None
        self._last_request = time.monotonic()
        await self._send_pli()

    def on_loss(self) -> None:
        """The receiver flushed an unrecoverable hole and sent a PLI: hold until a keyframe."""
        self.stats.losses += 1
        self.stats.keyframe_requests += 1
        self._last_request = time.monotonic()
        for sub in self._subscribers:
            sub._hold_for_keyframe()

    # -- the reader --

    async def _run(self) -> None:
        try:
            while True:
                try:
                    packet = await self.track.recv()
                except MediaStreamError:
                    return
                self.stats.received += 1
                if not self.gate_open:
                    self.stats.dropped_gate += 1
                    continue
                if not isinstance(packet, av.Packet) or packet.pts is None:
                    continue  # a decoded frame would mean the pass-through hook is missing
                mime = self.receiver.mime_type if self.receiver is not None else ""
                self.mime_type = mime
                item = RelayedFrame(
                    data=bytes(packet),
                    pts=packet.pts,
                    time_base=fractions.Fraction(
                        packet.time_base.numerator, packet.time_base.denominator
                    )
                    if packet.time_base is not None
                    else fractions.Fraction(1, 90000),
                    keyframe=packet.is_keyframe,
                    mime_type=mime,
                    source=id(self),
                )
                for sub in self._subscribers:
                    if self.muted and self.kind == "audio" and not sub.monitor:
                        self.stats.dropped_muted += 1
                        continue
                    sub._offer(item)
        finally:
            self.ended = True


@dataclass
class TrackStats:
    forwarded: int = 0
    dropped_waiting_keyframe: int = 0
    dropped_overflow: int = 0
    dropped_gate: int = 0
    keyframe_requests_from_downstream: int = 0
    transcoded: int = 0
    first_keyframe: bool | None = None
    last_forward: float | None = None
    extra: dict[str, int] = field(default_factory=dict)


class ForwardedTrack(MediaStreamTrack):
    """One consumer of a relay: a sender's track, an officer's view, the recorder, a tap.

    ``recv()`` returns an ``av.Packet`` of the source's codec. If ``out_mime`` (the codec the
    consumer negotiated) differs from the source's codec, it returns decoded frames instead so
    that aiortc's sender encodes them: the transcoding fallback (``transcode.py``).
    """

    def __init__(self, kind: str, *, name: str, monitor: bool = False) -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        self.monitor = monitor
        self.out_mime: str | None = None
        self.stats = TrackStats()
        self._maxsize = VIDEO_QUEUE if kind == "video" else AUDIO_QUEUE
        self._items: deque[RelayedFrame] = deque()
        self._ready = asyncio.Event()
        self._waiting_keyframe = kind == "video"
        self._gate_open = True
        self._relay: PacketRelay | None = None
        self._source: int | None = None
        self._offset = 0
        self._last_out: int | None = None
        self._transcoder: Transcoder | None = None
        self._pending_frames: deque[Any] = deque()

    # -- called by the relay, on the loop --

    def _attached(self, relay: PacketRelay) -> None:
        self._relay = relay
        self._hold_for_keyframe()

    def _hold_for_keyframe(self) -> None:
        if self.kind == "video":
            self._waiting_keyframe = True

    def _offer(self, item: RelayedFrame) -> None:
        if not self._gate_open:
            self.stats.dropped_gate += 1
            return
        if self._waiting_keyframe:
            if not item.keyframe:
                self.stats.dropped_waiting_keyframe += 1
                return
            self._waiting_keyframe = False
        if len(self._items) >= self._maxsize:
            if self.kind == "video":
                # A gap in video breaks every later frame: start again from a keyframe.
                self.stats.dropped_overflow += len(self._items)
                self._items.clear()
                if not item.keyframe:
                    self.stats.dropped_overflow += 1
                    self._waiting_keyframe = True
                    self.request_keyframe()
                    return
            else:
                self._items.popleft()
                self.stats.dropped_overflow += 1
        self._items.append(item)
        self._ready.set()

    # -- controls --

    def close_gate(self) -> None:
        """Forward nothing more, not even what is already queued."""
        self._gate_open = False
        self.stats.dropped_gate += len(self._items)
        self._items.clear()
        self._pending_frames.clear()

    def request_keyframe(self) -> None:
        if self._relay is not None:
            self._relay.request_keyframe()

    def downstream_keyframe_request(self) -> None:
        """The consumer's peer sent a PLI/FIR."""
        self.stats.keyframe_requests_from_downstream += 1
        self.request_keyframe()

    @property
    def queued(self) -> int:
        return len(self._items)

    # -- MediaStreamTrack --

    async def recv(self) -> Any:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._gate_open and self._pending_frames:
                return self._forwarded(self._pending_frames.popleft())
            if self._gate_open and self._items:
                item = self._items.popleft()
                packet = self._packet(item)
                if self.out_mime is None or self.out_mime.lower() == item.mime_type.lower():
                    if self.stats.first_keyframe is None:
                        self.stats.first_keyframe = item.keyframe
                    return self._forwarded(packet)
                frames = await self._transcode(item, packet)
                if not self._gate_open:
                    continue
                self._pending_frames.extend(frames)
                continue
            self._ready.clear()
            await self._ready.wait()

    def _forwarded(self, out: Any) -> Any:
        self.stats.forwarded += 1
        self.stats.last_forward = time.monotonic()
        return out

    def _packet(self, item: RelayedFrame) -> av.Packet:
        if item.source != self._source:
            # New source (first packet or a rejoin): continue our own timeline.
            step = item.time_base.denominator // (30 if self.kind == "video" else 50)
            start = 0 if self._last_out is None else self._last_out + step
            self._offset = start - item.pts
            self._source = item.source
        pts = item.pts + self._offset
        self._last_out = pts
        packet = av.Packet(item.data)
        packet.pts = pts
        packet.dts = pts
        packet.time_base = item.time_base
        packet.is_keyframe = item.keyframe
        return packet

    async def _transcode(self, item: RelayedFrame, packet: av.Packet) -> list[Any]:
        from server.media.transcode import Transcoder

        if self._transcoder is None or self._transcoder.mime_type != item.mime_type:
            if self._transcoder is not None:
                self._transcoder.close()
            self._transcoder = Transcoder(item.mime_type, item.time_base)
        frames = await self._transcoder.decode(packet)
        self.stats.transcoded += len(frames)
        return frames

    def stop(self) -> None:
        super().stop()
        if self._relay is not None:
            self._relay.detach(self)
        self._items.clear()
        self._pending_frames.clear()
        if self._transcoder is not None:
            self._transcoder.close()
            self._transcoder = None
        self._ready.set()
