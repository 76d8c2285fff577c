"""The transcoding fallback, used only when a consumer shares no codec with its source.

Forwarding is the rule (DESIGN decision 2): this path decodes the forwarded packets with
aiortc's own decoders on a dedicated thread and hands the frames to the consumer's
``RTCRtpSender``, which encodes them through aiortc's normal path (the ``ForwardingEncoder``
creates the real encoder on first use and counts it in ``hooks.encoders_created``). It costs
about eight times as much CPU per stream as forwarding (≈ 0.24 vs 0.03 cores at 30 fps in the
prototype), which ``bench/`` measures.

It never runs on the event loop and never queues without bound: one decode at a time per
consumer, awaited by the consumer's ``recv()``; the consumer's own bounded queue absorbs the
rest.
"""

from __future__ import annotations

import asyncio
import fractions
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


class Transcoder:
    """Decodes one consumer's packets of ``mime_type`` to frames, on its own thread."""

    def __init__(self, mime_type: str, time_base: fractions.Fraction) -> None:
        self.mime_type = mime_type
        kind = mime_type.split("/")[0]
        codec = RTCRtpCodecParameters(
            mimeType=mime_type,
            clockRate=time_base.denominator,
            channels=2 if kind == "audio" else None,
        )
        self._decoder = get_decoder(codec)  # aiortc.codecs: the real one, never the hook
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcode")

    def _decode(self, packet: av.Packet) -> list[Any]:
        assert packet.pts is not None
        try:
            return list(self._decoder.decode(JitterFrame(bytes(packet), packet.pts)))
        except av.FFmpegError:
            return []

    async def decode(self, packet: av.Packet) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._decode, packet)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
