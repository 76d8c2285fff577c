"""A decoding tap on one side's forwarded video: the sampled, downscaled frames recognition reads.

A :class:`FrameTap` subscribes like a monitor (``VisitMedia.add_consumer``) and gets the
side's encoded packets. Its reader task awaits each packet on the loop and hands it to the
tap's own decoder thread (one thread per tap, a single-worker executor), which decodes every
packet so the decoder's reference frames stay valid, and converts to RGB only one frame per
``interval`` (default 1 s), downscaled to fit ``MAX_WIDTH`` × ``MAX_HEIGHT``.

Bounded: the reader awaits the thread, so when decoding falls behind the packets pile up in
the consumer's own bounded queue, which empties itself and waits for a keyframe when full
(``relay.ForwardedTrack``). Only the latest sampled frame is kept (``latest``; a newer one
replaces it and counts as ``replaced``). The codec is sniffed from the first keyframe (VP8 or
H.264), so the tap needs nothing but the track.

``stop()`` cancels and awaits the reader, stops the consumer and shuts the thread down.

Must never: decode or convert on the event loop, or keep more than one sampled frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)

#: Sampled frames fit in this box (aspect ratio kept, never enlarged).
MAX_WIDTH, MAX_HEIGHT = 640, 480
#: Seconds between two sampled frames.
DEFAULT_INTERVAL = 1.0

Image = npt.NDArray[np.uint8]


class PacketSource(Protocol):
    """What the tap reads: ``relay.ForwardedTrack`` (``recv`` returns ``av.Packet``)."""

    async def recv(self) -> Any: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class SampledFrame:
    image: Image  # RGB, uint8, (height, width, 3)
    #: Monotonic time the frame was decoded.
    at: float
    #: Counts sampled frames of this tap from 1.
    number: int


@dataclass
class TapStats:
    packets: int = 0
    decoded: int = 0
    sampled: int = 0
    #: Sampled frames replaced by a newer one before anyone took them.
    replaced: int = 0
    errors: int = 0


def sniff_codec(data: bytes) -> str | None:
    """The PyAV decoder name for an encoded keyframe (``vp8`` or ``h264``), if recognisable."""
    if len(data) >= 6 and data[3:6] == b"\x9d\x01\x2a" and data[0] & 0x01 == 0:
        return "vp8"  # RFC 6386 9.1: key frame tag + start code
    if data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01"):
        return "h264"  # Annex B, as aiortc's depayloader re-assembles it
    return None


def fit(width: int, height: int) -> tuple[int, int]:
    """The size within MAX_WIDTH × MAX_HEIGHT with the same aspect ratio (even, ≥ 2)."""
    scale = min(1.0, MAX_WIDTH / width, MAX_HEIGHT / height)
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


class _Decoder:
    """Lives on the tap's thread only."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self.clock = clock
        self.codec: Any = None  # av.VideoCodecContext
        self.codec_name: str | None = None
        self.last_sample = -1e18

    def decode(self, data: bytes, keyframe: bool, stats: TapStats) -> Image | None:
        if self.codec is None or keyframe:
            name = sniff_codec(data) if keyframe or self.codec is None else None
            if name is not None and name != self.codec_name:
                self.codec = av.CodecContext.create(name, "r")
                self.codec_name = name
            if self.codec is None:
                return None  # wait for a keyframe we understand
        assert self.codec is not None
        try:
            frames = self.codec.decode(av.Packet(data))
        except av.FFmpegError as exc:
            stats.errors += 1
            log.debug("tap: undecodable packet: %s", exc)
            return None
        sampled: Image | None = None
        for frame in frames:
            stats.decoded += 1
            now = self.clock()
            if now - self.last_sample < self.interval:
                continue
            self.last_sample = now
            assert isinstance(frame, av.VideoFrame)
            width, height = fit(frame.width, frame.height)
            rgb = frame.reformat(width=width, height=height, format="rgb24")
            sampled = np.ascontiguousarray(rgb.to_ndarray(), dtype=np.uint8)
        return sampled

    def close(self) -> None:
        self.codec = None


class FrameTap:
    """Decoded, downscaled frames of one video track, one per ``interval``, latest only."""

    def __init__(
        self,
        source: PacketSource,
        *,
        name: str,
        interval: float = DEFAULT_INTERVAL,
        on_frame: Callable[[SampledFrame], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.name = name
        self.stats = TapStats()
        self._on_frame = on_frame
        self._clock = clock
        self._latest: SampledFrame | None = None
        self._ready = asyncio.Event()
        self._decoder = _Decoder(interval, clock)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tap-{name}")
        self._reader: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle --

    def start(self) -> None:
        if self._reader is None and not self._stopped:
            self._reader = asyncio.get_running_loop().create_task(
                self._run(), name=f"tap-{self.name}"
            )

    async def stop(self) -> None:
        """Cancel and await the reader, stop the subscription, end the thread."""
        self._stopped = True
        self.source.stop()
        task, self._reader = self._reader, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._latest = None
        self._ready.set()
        # The thread finishes the packet it may be decoding; then it is gone.
        await asyncio.to_thread(self._thread.shutdown, wait=True, cancel_futures=True)
        self._decoder.close()

    @property
    def interval(self) -> float:
        return self._decoder.interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        """Sample faster or slower from now on (the face checks change it as they go).
        A float assignment: the decoder thread reads it without a lock."""
        self._decoder.interval = seconds

    @property
    def running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    # -- the latest sampled frame --

    @property
    def latest(self) -> SampledFrame | None:
        """The newest sampled frame nobody has taken yet (at most one is ever kept)."""
        return self._latest

    @property
    def pending(self) -> int:
        return 0 if self._latest is None else 1

    def take(self) -> SampledFrame | None:
        frame, self._latest = self._latest, None
        self._ready.clear()
        return frame

    async def next_frame(self) -> SampledFrame | None:
        """Wait for a sampled frame and take it (None once the tap is stopped)."""
        while self._latest is None and not self._stopped:
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    # -- the reader, on the loop --

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        number = 0
        while True:
            try:
                packet = await self.source.recv()
            except MediaStreamError:
                return
            if not isinstance(packet, av.Packet):
                continue
            self.stats.packets += 1
            data, keyframe = bytes(packet), bool(packet.is_keyframe)
            image = await loop.run_in_executor(
                self._thread, self._decoder.decode, data, keyframe, self.stats
            )
            if image is None:
                continue
            number += 1
            self.stats.sampled += 1
            if self._latest is not None:
                self.stats.replaced += 1
            frame = SampledFrame(image, self._clock(), number)
            self._latest = frame
            self._ready.set()
            if self._on_frame is not None:
                try:
                    self._on_frame(frame)
                except Exception:
                    log.exception("tap %s: frame callback failed", self.name)
