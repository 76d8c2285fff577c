"""Every touch of aiortc and aioice internals, in one place.

aiortc 1.16 has no forwarding API. The media plane needs five small hooks, all here and each
covered by a test in ``tests/unit/test_media_hooks.py`` that fails loudly if an upgrade moves
the thing it relies on. Nothing else in ``server/media`` may import a private name from aiortc
or aioice.

1. **Pass-through "decoder" per receiver.** ``RTCRtpReceiver`` decodes on its own thread
   (``decoder_worker``) with a decoder from the module-level
   ``aiortc.rtcrtpreceiver.get_decoder(codec)``. :func:`install` replaces that name with a
   dispatcher that returns a :class:`PassthroughDecoder` only when the calling thread is the
   decoder thread (``RTCRtpReceiver._RTCRtpReceiver__decoder_thread``) of a receiver registered
   with :class:`OwnedReceiver`; every other receiver in the process (test clients, a future
   transcoder) still gets aiortc's real decoder. The decision is per receiver, not per process
   or per peer connection, because ``get_decoder`` is only ever given the codec. The thread
   attribute is assigned before the thread starts, so there is no race. The pass-through
   returns the re-assembled encoded frame as an ``av.Packet``: pts = RTP timestamp (mapped to
   start at 0 by the receiver), time base 1/clock rate, ``is_keyframe`` parsed from the payload;
   the codec's MIME type is recorded on the :class:`OwnedReceiver` (``av.Packet.opaque`` does
   not survive reliably in PyAV 18, so it is not used).
2. **Unrecoverable-loss watchdog.** The receiver's ``JitterBuffer`` (private attribute
   ``_RTCRtpReceiver__jitter_buffer``) only emits a frame once all its packets are in; a packet
   that never arrives (NACK retransmission lost too) froze the stream until the 512-slot buffer
   overflowed (~4.6 s at 1 Mbit/s). :class:`OwnedReceiver` wraps that buffer's ``add``: when
   packets of two newer frames have arrived and still no frame came out for ``loss_deadline``
   seconds, the hole is declared unrecoverable, the buffer is flushed (``_origin`` reset so the
   next packet starts afresh), ``add`` reports ``pli_flag=True`` so the receiver sends a PLI
   itself at once, and ``on_loss`` tells the relay to hold subscribers until the keyframe.
3. **PLI upstream.** :meth:`OwnedReceiver.send_pli` calls ``RTCRtpReceiver._send_rtcp_pli``
   with the media SSRC seen by the jitter buffer.
4. **Forwarding senders.** ``RTCRtpSender._next_encoded_frame`` calls ``encoder.pack(packet)``
   for an ``av.Packet`` and ``encoder.encode(frame)`` for a frame, with the encoder stored in
   ``_RTCRtpSender__encoder`` (created by ``get_encoder`` only if it is still ``None``).
   :func:`install_forwarding_encoder` stores a :class:`ForwardingEncoder` there: ``pack`` uses
   aiortc's own packetizers, ``encode`` (transcoding fallback only) creates the real encoder on
   first use and counts it. A downstream PLI/FIR calls ``RTCRtpSender._send_keyframe()``;
   :func:`on_keyframe_request` wraps it on the instance so the relay can ask upstream.
   :func:`negotiated_codec` reads ``RTCRtpTransceiver._codecs[0]``, the codec a sender uses.
5. **ICE host addresses.** aioice gathers host candidates from the module-level
   ``aioice.ice.get_host_addresses`` (which drops 127.0.0.1); :func:`set_host_addresses`
   replaces it with the configured list.

On an aiortc/aioice upgrade re-check, then run the hook tests: ``decoder_worker`` still calls
the module-level ``get_decoder(codec)`` from a thread stored in ``__decoder_thread`` before
``start()``; ``JitterBuffer.add`` still returns ``(pli_flag, frame)`` and uses ``_origin`` /
``remove``; ``_send_rtcp_pli(media_ssrc)`` still exists; ``_next_encoded_frame`` still packs
``av.Packet`` through ``__encoder.pack`` and honours a pre-set ``__encoder``; ``_send_keyframe``
is still what PLI/FIR call; ``_codecs`` still holds the negotiated codecs; and aioice's
``Connection.gather_candidates`` still calls ``get_host_addresses(use_ipv4=, use_ipv6=)``.
pyproject pins ``aiortc==1.16.0`` for that reason.
"""

from __future__ import annotations

import fractions
import ipaddress
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import aioice.ice
import aiortc.rtcrtpreceiver
import av
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Decoder, Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

logger = logging.getLogger(__name__)

_original_get_decoder = aiortc.rtcrtpreceiver.get_decoder
_original_get_host_addresses = aioice.ice.get_host_addresses

_lock = threading.Lock()
_owned: weakref.WeakKeyDictionary[RTCRtpReceiver, OwnedReceiver] = weakref.WeakKeyDictionary()

#: How many real encoders forwarding senders created (only the transcoding fallback does).
encoders_created = 0


# --- 1. pass-through decoder ------------------------------------------------------------------


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame can be decoded on its own."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame.
        return len(data) > 0 and data[0] & 0x01 == 0
    if mime == "video/h264":
        # Annex B as re-assembled by aiortc's depayloader: look for an IDR slice (type 5).
        i = data.find(b"\x00\x00\x01")
        while i != -1 and i + 3 < len(data):
            if data[i + 3] & 0x1F == 5:
                return True
            i = data.find(b"\x00\x00\x01", i + 3)
        return False
    return True  # audio frames are all independent


class PassthroughDecoder(Decoder):
    """Returns the encoded frame as an ``av.Packet`` instead of decoding it."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.mime_type = codec.mimeType
        self.time_base = fractions.Fraction(1, codec.clockRate)

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.dts = encoded_frame.timestamp
        packet.time_base = self.time_base
        packet.is_keyframe = is_keyframe(self.mime_type, encoded_frame.data)
        return [packet]


def _decoder_thread(receiver: RTCRtpReceiver) -> threading.Thread | None:
    thread: threading.Thread | None = getattr(receiver, "_RTCRtpReceiver__decoder_thread", None)
    return thread


def _dispatching_get_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    current = threading.current_thread()
    with _lock:
        owned = list(_owned.items())
    for receiver, handle in owned:
        if _decoder_thread(receiver) is current:
            handle.mime_type = codec.mimeType
            return PassthroughDecoder(codec)
    return _original_get_decoder(codec)


def install() -> None:
    """Put the per-receiver dispatcher in place (idempotent; harmless to other receivers)."""
    aiortc.rtcrtpreceiver.get_decoder = _dispatching_get_decoder  # type: ignore[attr-defined]


def uninstall() -> None:
    """Restore aiortc's own ``get_decoder`` and aioice's ``get_host_addresses``."""
    aiortc.rtcrtpreceiver.get_decoder = _original_get_decoder  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = _original_get_host_addresses


# --- 2 + 3. owned receivers: loss watchdog and PLI --------------------------------------------


class OwnedReceiver:
    """A receiver whose frames are passed through, watched for loss, and can be sent a PLI."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        kind: str,
        *,
        on_loss: Callable[[], None] | None = None,
        loss_deadline: float = 0.25,
    ) -> None:
        install()
        self.receiver = receiver
        self.kind = kind
        self.media_ssrc: int | None = None
        self.losses = 0
        self._on_loss = on_loss
        self._deadline = loss_deadline
        self.mime_type = ""  # set by the decoder thread when it picks the codec
        with _lock:
            _owned[receiver] = self
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        self._buffer = buffer
        self._original_add = buffer.add
        # per-stream loss state
        self._last_ts: int | None = None
        self._new_frames = 0
        self._stalled_since: float | None = None
        buffer.add = self._add

    def _add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        self.media_ssrc = packet.ssrc
        pli_flag, frame = self._original_add(packet)
        if self.kind != "video":
            return pli_flag, frame
        if self._last_ts is None or 0 < (packet.timestamp - self._last_ts) % (1 << 32) < (1 << 31):
            # a newer frame has started (retransmissions of older frames do not count)
            self._last_ts = packet.timestamp
            self._new_frames += 1
        if frame is not None or pli_flag:
            self._new_frames = 0
            self._stalled_since = None
        elif self._new_frames >= 2:
            # Packets of two later frames are in and nothing came out: a hole at the head.
            now = time.monotonic()
            if self._stalled_since is None:
                self._stalled_since = now
            elif now - self._stalled_since >= self._deadline:
                self._flush()
                pli_flag = True
        return pli_flag, frame

    def _flush(self) -> None:
        self.losses += 1
        self._buffer.remove(self._buffer.capacity)
        self._buffer._origin = None
        self._new_frames = 0
        self._stalled_since = None
        self._last_ts = None
        logger.info("unrecoverable video loss: jitter buffer flushed, PLI sent upstream")
        if self._on_loss is not None:
            self._on_loss()

    async def send_pli(self) -> bool:
        """Ask the remote sender for a keyframe; False if nothing was received yet."""
        if self.media_ssrc is None:
            return False
        await self.receiver._send_rtcp_pli(self.media_ssrc)
        return True

    def release(self) -> None:
        with _lock:
            _owned.pop(self.receiver, None)
        self._buffer.add = self._original_add


# --- 4. forwarding senders --------------------------------------------------------------------


class _OpusPacker:
    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        assert packet.pts is not None and packet.time_base is not None
        return [bytes(packet)], convert_timebase(
            packet.pts, packet.time_base, fractions.Fraction(1, 48000)
        )


class ForwardingEncoder(Encoder):
    """Packs forwarded packets with aiortc's packetizers; encodes only as a fallback."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.codec = codec
        self.encode_calls = 0
        self._real: Encoder | None = None
        mime = codec.mimeType.lower()
        self._packer: Any
        if mime == "video/vp8":
            self._packer = Vp8Encoder()  # its pack() needs no codec context
        elif mime == "video/h264":
            self._packer = H264Encoder()
        elif mime == "audio/opus":
            self._packer = _OpusPacker()  # OpusEncoder() would open a libopus context
        else:
            self._packer = None

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        if self._packer is None:
            raise ValueError(f"cannot forward {self.codec.mimeType}")
        result: tuple[list[bytes], int] = self._packer.pack(packet)
        return result

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        global encoders_created
        if self._real is None:
            self._real = get_encoder(self.codec)
            encoders_created += 1
        self.encode_calls += 1
        return self._real.encode(frame, force_keyframe)


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver's sender will use (first negotiated one), once negotiated."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return codecs[0] if codecs else None


def install_forwarding_encoder(
    sender: RTCRtpSender, codec: RTCRtpCodecParameters
) -> ForwardingEncoder:
    """Make ``sender`` pack ``av.Packet`` input without ever creating an encoder for it."""
    encoder = ForwardingEncoder(codec)
    sender._RTCRtpSender__encoder = encoder  # type: ignore[attr-defined]
    return encoder


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote side of ``sender`` sends a PLI or FIR."""
    original = sender._send_keyframe

    def _send_keyframe() -> None:
        original()  # keeps the fallback encoder's force-keyframe behaviour
        callback()

    sender._send_keyframe = _send_keyframe  # type: ignore[method-assign]


# --- 5. ICE host addresses --------------------------------------------------------------------


def set_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather ICE host candidates only on ``addresses`` (None restores aioice's own scan)."""
    if addresses is None:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    fixed = [str(ipaddress.ip_address(a)) for a in addresses]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in fixed
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    aioice.ice.get_host_addresses = get_host_addresses
