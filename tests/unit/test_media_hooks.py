"""One test per aiortc/aioice assumption that server/media/hooks.py relies on.

If one of these fails after an upgrade, re-read the matching point in the hooks docstring.
"""

from __future__ import annotations

import asyncio
import fractions
import inspect
import queue
import threading
from collections.abc import Iterator

import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket

from server.media import hooks

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)


@pytest.fixture(autouse=True)
def restore_hooks() -> Iterator[None]:
    yield
    hooks.uninstall()


def _vp8_packets(count: int) -> list[av.Packet]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 48, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    packets: list[av.Packet] = []
    for i in range(count):
        frame = av.VideoFrame(64, 48, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 40) % 255]) * plane.buffer_size)
        frame.pts = i
        packets += codec.encode(frame)
    return packets + list(codec.encode(None))


async def _run_decoder_worker(receiver: RTCRtpReceiver | None, frame: JitterFrame) -> object:
    """Drive aiortc's own decoder_worker on a thread, as RTCRtpReceiver.receive() does."""
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[object] = asyncio.Queue()
    in_q: queue.Queue[object] = queue.Queue()
    thread = threading.Thread(
        target=aiortc.rtcrtpreceiver.decoder_worker, args=(loop, in_q, out, threading.Event())
    )
    if receiver is not None:
        receiver._RTCRtpReceiver__decoder_thread = thread  # type: ignore[attr-defined]
    thread.start()
    in_q.put((VP8, frame))
    in_q.put(None)

    result = await asyncio.wait_for(out.get(), 5)
    await asyncio.to_thread(thread.join)
    return result


async def test_receivers_get_their_decoder_from_the_module_level_get_decoder() -> None:
    assert "get_decoder" in aiortc.rtcrtpreceiver.decoder_worker.__code__.co_names
    source = inspect.getsource(RTCRtpReceiver.receive)
    # the thread is stored before it starts, so the hook can recognise it
    assert source.index("self.__decoder_thread = threading.Thread") < source.index(
        "self.__decoder_thread.start()"
    )


async def test_the_passthrough_applies_only_to_owned_receivers() -> None:
    hooks.install()
    keyframe = _vp8_packets(1)[0]
    frame = JitterFrame(bytes(keyframe), 1234)

    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("video").receiver
    owned = hooks.OwnedReceiver(receiver, "video")
    packet = await _run_decoder_worker(receiver, frame)
    assert isinstance(packet, av.Packet)
    assert bytes(packet) == bytes(keyframe)
    assert packet.pts == 1234 and packet.time_base == fractions.Fraction(1, 90000)
    assert packet.is_keyframe
    assert owned.mime_type == "video/VP8"
    owned.release()

    # any other receiver in the same process still decodes
    decoded = await _run_decoder_worker(None, frame)
    assert isinstance(decoded, av.VideoFrame)
    await pc.close()


def test_keyframes_are_recognised_from_the_payload() -> None:
    packets = _vp8_packets(3)
    assert [hooks.is_keyframe("video/VP8", bytes(p)) for p in packets] == [True, False, False]
    idr = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x65\x88"
    non_idr = b"\x00\x00\x00\x01\x41\x9a"
    assert hooks.is_keyframe("video/H264", idr)
    assert not hooks.is_keyframe("video/H264", non_idr)
    assert isinstance(Vp8Decoder().decode(JitterFrame(bytes(packets[0]), 0))[0], av.VideoFrame)


def _rtp(seq: int, timestamp: int) -> RtpPacket:
    packet = RtpPacket(payload_type=97, sequence_number=seq, timestamp=timestamp, ssrc=1234)
    packet._data = b"\x00frame"  # type: ignore[attr-defined]
    return packet


async def test_an_unrecoverable_hole_flushes_the_jitter_buffer_and_asks_for_a_keyframe() -> None:
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("video").receiver
    losses: list[bool] = []
    owned = hooks.OwnedReceiver(
        receiver, "video", on_loss=lambda: losses.append(True), loss_deadline=0.0
    )
    buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert buffer.add(_rtp(100, 0)) == (False, None)
    pli, frame = buffer.add(_rtp(101, 3000))
    assert frame is not None and not pli
    # 102 (the rest of frame 3000's successor) is lost for good
    results = [buffer.add(_rtp(seq, ts)) for seq, ts in [(103, 6000), (104, 9000), (105, 12000)]]
    assert any(pli for pli, _ in results) and losses == [True]
    assert owned.media_ssrc == 1234
    # after the flush frames come out again
    buffer.add(_rtp(106, 15000))
    assert buffer.add(_rtp(107, 18000))[1] is not None
    owned.release()
    await pc.close()


async def test_a_receiver_can_send_a_pli_for_the_media_ssrc() -> None:
    params = inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters
    assert list(params) == ["self", "media_ssrc"]
    assert inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp_pli)
    pc = RTCPeerConnection()
    owned = hooks.OwnedReceiver(pc.addTransceiver("video").receiver, "video")
    assert await owned.send_pli() is False  # nothing received yet: no SSRC to ask
    owned.release()
    await pc.close()


class _OnePacket(MediaStreamTrack):
    kind = "video"

    def __init__(self, packet: av.Packet) -> None:
        super().__init__()
        self.packet = packet

    async def recv(self) -> av.Packet:
        return self.packet


async def test_a_sender_packs_packets_with_a_preset_encoder_and_never_encodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_encoder(codec: RTCRtpCodecParameters) -> None:
        raise AssertionError("get_encoder must not be called for a forwarding sender")

    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", no_encoder)
    packet = _vp8_packets(1)[0]
    packet.pts, packet.time_base = 3000, fractions.Fraction(1, 90000)
    pc = RTCPeerConnection()
    sender = pc.addTransceiver(_OnePacket(packet)).sender
    assert sender._RTCRtpSender__encoder is None  # type: ignore[attr-defined]
    encoder = hooks.install_forwarding_encoder(sender, VP8)
    frame = await sender._next_encoded_frame(VP8)
    assert frame is not None and frame.timestamp == 3000
    assert b"".join(p[4:] for p in frame.payloads) == bytes(packet)  # 4-byte VP8 descriptor
    assert encoder.encode_calls == 0
    await pc.close()


def test_opus_is_packed_without_an_opus_encoder() -> None:
    encoder = hooks.ForwardingEncoder(OPUS)
    packet = av.Packet(b"opus")
    packet.pts, packet.time_base = 960, fractions.Fraction(1, 48000)
    assert encoder.pack(packet) == ([b"opus"], 960)


async def test_a_downstream_pli_reaches_the_keyframe_callback() -> None:
    pc = RTCPeerConnection()
    sender = pc.addTransceiver("video").sender
    requests: list[bool] = []
    hooks.on_keyframe_request(sender, lambda: requests.append(True))
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2))
    assert requests == [True]
    await pc.close()


async def test_the_negotiated_codec_is_the_first_preference_both_sides_have() -> None:
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    offerer.addTransceiver("video")
    await offerer.setLocalDescription(await offerer.createOffer())
    transceiver = answerer.addTransceiver("video")
    caps = RTCRtpReceiver.getCapabilities("video")
    assert caps is not None
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType == "video/H264"])
    await answerer.setRemoteDescription(
        RTCSessionDescription(sdp=offerer.localDescription.sdp, type="offer")
    )
    codec = hooks.negotiated_codec(transceiver)
    assert codec is not None and codec.mimeType == "video/H264"
    await offerer.close()
    await answerer.close()


async def test_ice_gathers_host_candidates_from_the_configured_addresses() -> None:
    assert "get_host_addresses" in aioice.ice.Connection.gather_candidates.__code__.co_names
    hooks.set_host_addresses(["127.0.0.1"])
    connection = aioice.ice.Connection(ice_controlling=True)
    await connection.gather_candidates()
    assert [c.host for c in connection.local_candidates] == ["127.0.0.1"]
    await connection.close()
    hooks.set_host_addresses(None)
    assert aioice.ice.get_host_addresses is hooks._original_get_host_addresses
