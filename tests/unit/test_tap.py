"""The decoding tap: real VP8 packets (the media tests' source) in, the latest
downscaled RGB frame out, decoded off the loop, never more than one kept."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from server.media.tap import FrameTap, SampledFrame, fit, sniff_codec
from tests.support.media import build_source


@pytest.fixture(scope="module")
def vp8_packets(tmp_path_factory: pytest.TempPathFactory) -> list[av.Packet]:
    path = build_source(tmp_path_factory.mktemp("tap"), seconds=3.0)
    packets = []
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                copy = av.Packet(bytes(packet))
                copy.is_keyframe = packet.is_keyframe
                packets.append(copy)
    return packets


class Source:
    """Stands in for a ForwardedTrack: hands out the packets, then ends (or waits)."""

    def __init__(self, packets: list[av.Packet], *, end: bool = True) -> None:
        self.packets = list(packets)
        self.end = end
        self.stopped = False
        self.loop_thread = threading.get_ident()
        self.recv_threads: set[int] = set()

    async def recv(self) -> Any:
        self.recv_threads.add(threading.get_ident())
        await asyncio.sleep(0)
        if self.packets and not self.stopped:
            return self.packets.pop(0)
        if self.end or self.stopped:
            raise MediaStreamError
        await asyncio.Event().wait()

    def stop(self) -> None:
        self.stopped = True


def test_codec_sniffing_and_fitting() -> None:
    assert sniff_codec(b"\x10\x02\x00\x9d\x01\x2a\x80\x02") == "vp8"
    assert sniff_codec(b"\x00\x00\x00\x01\x67") == "h264"
    assert sniff_codec(b"\x11\x02\x00\x00") is None
    assert fit(1280, 720) == (640, 360)
    assert fit(320, 240) == (320, 240)
    assert fit(480, 640) == (360, 480)


async def test_the_tap_decodes_real_vp8_on_its_own_thread_and_keeps_only_the_latest(
    vp8_packets: list[av.Packet],
) -> None:
    seen: list[SampledFrame] = []
    pendings: list[int] = []
    decode_threads: set[str] = set()
    source = Source(vp8_packets)
    tap = FrameTap(source, name="t", interval=0.0, on_frame=seen.append)
    original = tap._decoder.decode

    def spy(*args: Any) -> Any:
        decode_threads.add(threading.current_thread().name)
        return original(*args)

    tap._decoder.decode = spy  # type: ignore[method-assign,assignment]
    tap.start()
    while tap.running:
        pendings.append(tap.pending)
        await asyncio.sleep(0.001)
    assert tap.stats.packets == len(vp8_packets)
    assert tap.stats.decoded == len(vp8_packets) and tap.stats.errors == 0
    assert len(seen) == tap.stats.sampled == len(vp8_packets)
    assert max(pendings) <= 1 and tap.pending == 1
    assert tap.stats.replaced == tap.stats.sampled - 1  # nobody took them
    latest = tap.take()
    assert latest is seen[-1] and tap.pending == 0
    assert latest.image.shape == (480, 640, 3) and latest.image.dtype == np.uint8
    assert latest.image.std() > 5  # a real picture, not a blank
    assert decode_threads and all(name.startswith("tap-t") for name in decode_threads)
    assert threading.main_thread().name not in decode_threads
    await tap.stop()


async def test_one_frame_per_interval_and_stop_ends_everything(
    vp8_packets: list[av.Packet],
) -> None:
    now = [0.0]
    source = Source(vp8_packets, end=False)
    tap = FrameTap(source, name="slow", interval=1.0, clock=lambda: now[0])

    # 30 fps of packets with a fake clock advanced by 1/30 s per decoded frame.
    original = tap._decoder.decode

    def ticking(*args: Any) -> Any:
        now[0] += 1 / 30
        return original(*args)

    tap._decoder.decode = ticking  # type: ignore[method-assign,assignment]
    tap.start()
    first = await asyncio.wait_for(tap.next_frame(), 5)
    assert first is not None and first.number == 1
    while source.packets:  # noqa: ASYNC110 (polling a fake source)
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    # 90 packets at 30 fps = 3 s: one sample per second
    assert tap.stats.sampled == 3
    assert tap.running
    await tap.stop()
    assert not tap.running and source.stopped and tap.pending == 0
    assert await tap.next_frame() is None


async def test_the_tap_waits_for_a_keyframe(vp8_packets: list[av.Packet]) -> None:
    deltas = [p for p in vp8_packets if not p.is_keyframe][:10]
    tap = FrameTap(Source(deltas), name="k", interval=0.0)
    tap.start()
    while tap.running:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    assert tap.stats.packets == 10 and tap.stats.sampled == 0
    await tap.stop()
