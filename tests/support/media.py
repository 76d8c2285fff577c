"""Media test material and real aiortc client peers for the media-plane tests.

- :func:`build_source` turns ``short_hamilton_clip.mp4`` into a pre-encoded VP8 (640x480,
  ~1 Mbit/s, a keyframe every 2 s) + Opus WebM, looped so that its timestamps never restart
  (``MediaPlayer(loop=True, decode=False)`` would restart them on each loop). Every frame
  carries its number drawn as 12 black/white blocks (:func:`read_marker`), and
  :func:`reference_thumbnails` gives, per frame number, a tiny greyscale picture of the frame
  as decoded from the file, to compare with what a client decodes.
- :class:`MarkedVideoTrack` is a live source that aiortc encodes (so it answers PLIs), with
  the same marker and a flat colour per frame.
- :class:`Client` is a relative, kiosk or officer browser stand-in: a real
  ``RTCPeerConnection`` that offers, gets the answer from ``VisitMedia``, and records what it
  receives.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from server.media import hooks

CLIP = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "testdata"
    / "video"
    / "short_hamilton_clip.mp4"
)
WIDTH, HEIGHT, FPS = 640, 480, 30
GOP = 60
BITS = 12
BLOCK, PITCH, TOP, LEFT = 24, 32, 8, 8
THUMB = (16, 12)


def _draw_marker(frame: av.VideoFrame, number: int) -> None:
    plane = frame.planes[0]
    data = bytearray(bytes(plane))
    stride = plane.line_size
    for bit in range(BITS):
        value = 235 if number >> bit & 1 else 16
        x0 = LEFT + bit * PITCH
        for y in range(TOP, TOP + BLOCK):
            row = y * stride
            data[row + x0 : row + x0 + BLOCK] = bytes([value]) * BLOCK
    plane.update(bytes(data))


def read_marker(frame: av.VideoFrame) -> int:
    """The frame number drawn by the test sources (scaled to 640x480 first)."""
    if frame.width != WIDTH or frame.height != HEIGHT:
        frame = frame.reformat(width=WIDTH, height=HEIGHT)
    plane = (
        frame.planes[0]
        if frame.format.name == "yuv420p"
        else frame.reformat(format="yuv420p").planes[0]
    )
    data = bytes(plane)
    stride = plane.line_size
    centre = TOP + BLOCK // 2
    number = 0
    for bit in range(BITS):
        x = LEFT + bit * PITCH + BLOCK // 2
        if data[centre * stride + x] > 128:
            number |= 1 << bit
    return number


def thumbnail(frame: av.VideoFrame) -> bytes:
    small = frame.reformat(width=THUMB[0], height=THUMB[1], format="gray")
    plane = small.planes[0]
    raw = bytes(plane)
    return b"".join(
        raw[y * plane.line_size : y * plane.line_size + THUMB[0]] for y in range(THUMB[1])
    )


def thumb_distance(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def build_source(directory: Path, seconds: float = 24.0) -> Path:
    """Write the looped, marked VP8 + Opus WebM test source and return its path."""
    out_path = directory / "source_vp8_opus.webm"
    out = av.open(str(out_path), "w", format="webm")
    vstream = out.add_stream("libvpx", rate=FPS)
    vstream.width, vstream.height, vstream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    vstream.bit_rate = 1_000_000
    vstream.gop_size = GOP
    vstream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    astream = out.add_stream("libopus", rate=48000)
    astream.layout = "stereo"
    astream.bit_rate = 64_000
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000, frame_size=960)
    frames_wanted = int(seconds * FPS)
    samples_wanted = int(seconds * 48000)
    video_n = 0
    samples = 0
    while video_n < frames_wanted or samples < samples_wanted:
        with av.open(str(CLIP)) as src:
            for frame in src.decode(src.streams.video[0], src.streams.audio[0]):
                if isinstance(frame, av.VideoFrame):
                    if video_n >= frames_wanted:
                        continue
                    vf = frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
                    _draw_marker(vf, video_n)
                    vf.pts = video_n
                    vf.time_base = fractions.Fraction(1, FPS)
                    out.mux(vstream.encode(vf))
                    video_n += 1
                elif isinstance(frame, av.AudioFrame):
                    if samples >= samples_wanted:
                        continue
                    frame.pts = None
                    for af in resampler.resample(frame):
                        af.pts = samples
                        af.time_base = fractions.Fraction(1, 48000)
                        samples += af.samples
                        out.mux(astream.encode(af))
    out.mux(vstream.encode(None))
    out.mux(astream.encode(None))
    out.close()
    return out_path


def reference_thumbnails(path: Path) -> dict[int, bytes]:
    """Frame number -> thumbnail of the frame decoded straight from the source file."""
    refs: dict[int, bytes] = {}
    with av.open(str(path)) as src:
        for frame in src.decode(video=0):
            refs[read_marker(frame)] = thumbnail(frame)
    return refs


def source_player(path: Path) -> MediaPlayer:
    return MediaPlayer(str(path), decode=False)


class MarkedVideoTrack(MediaStreamTrack):
    """A live 320x240 source encoded by aiortc: flat colour per frame plus the marker."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.number = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self.number / FPS - time.monotonic()))
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for i, plane in enumerate(frame.planes):
            value = (40 + self.number * 3) % 200 + 20 if i == 0 else 128
            plane.update(bytes([value]) * plane.buffer_size)
        _draw_marker(frame, self.number)
        frame = frame.reformat(width=320, height=240)
        frame.pts = self.number * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self.number += 1
        return frame


@dataclass
class Received:
    """What one client got on one incoming track."""

    kind: str
    arrivals: list[float] = field(default_factory=list)
    markers: list[int] = field(default_factory=list)
    thumbs: list[bytes] = field(default_factory=list)
    keyframes: list[bool] = field(default_factory=list)

    def after(self, instant: float) -> int:
        return sum(1 for t in self.arrivals if t > instant)

    def max_gap(self, since: float, until: float) -> float:
        """Longest time without an arrival between ``since`` and ``until``."""
        times = [since, *(t for t in self.arrivals if since <= t <= until), until]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


class Client:
    """A browser stand-in: one real peer connection with the server's VisitMedia."""

    def __init__(
        self,
        name: str,
        *,
        send: list[MediaStreamTrack] | None = None,
        receive: int = 2,
        packets: bool = False,
        analyse: bool = False,
    ) -> None:
        self.name = name
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.received: list[Received] = []
        self._send = send or []
        self._receive = receive
        self._packets = packets
        self._analyse = analyse
        self._tasks: list[asyncio.Task[None]] = []
        self.owned: list[hooks.OwnedReceiver] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            record = Received(track.kind)
            self.received.append(record)
            if self._packets:
                receiver = next(
                    t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track
                )
                self.owned.append(hooks.OwnedReceiver(receiver, track.kind))
            self._tasks.append(asyncio.ensure_future(self._drain(track, record)))

    async def connect(self, visit: Any, role: str, participant_id: str | None = None) -> None:
        for track in self._send:
            self.pc.addTransceiver(track, direction="sendrecv")
        for kind in ["audio", "video"] * (self._receive // 2 if not self._send else 0):
            self.pc.addTransceiver(kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await visit.accept_offer(
            participant_id or self.name, role, self.pc.localDescription.sdp
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _drain(self, track: MediaStreamTrack, record: Received) -> None:
        while True:
            try:
                item = await track.recv()
            except MediaStreamError:
                return
            record.arrivals.append(time.monotonic())
            if isinstance(item, av.Packet):
                record.keyframes.append(bool(item.is_keyframe))
            elif isinstance(item, av.VideoFrame) and self._analyse:
                record.markers.append(read_marker(item))
                record.thumbs.append(thumbnail(item))

    def track(self, kind: str, index: int = 0) -> Received:
        return [r for r in self.received if r.kind == kind][index]

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for owned in self.owned:
            owned.release()


async def wait_until(predicate: Any, within: float = 8.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within:.1f} s")
        await asyncio.sleep(interval)


def silence() -> AudioStreamTrack:
    return AudioStreamTrack()
