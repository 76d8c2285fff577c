"""One live visit's media: the participants' peer connections and the forwarding between them.

:class:`VisitMedia` owns, for one visit, an ``RTCPeerConnection`` per participant (with the
server; never peer-to-peer), a :class:`~server.media.relay.PacketRelay` per remote track, and
a :class:`~server.media.relay.ForwardedTrack` per consumer. It forwards relative -> kiosk,
kiosk -> relative, and both -> each watching officer, without decoding (DESIGN decision 2).
``close()`` cancels and awaits every task and closes every peer (CONVENTIONS 7).

SDP contract for the signalling layer (``accept_offer`` answers an offer; no trickle ICE, the
answer carries the server's candidates):

- ``relative`` and ``kiosk`` offer one audio and one video m-line, ``sendrecv``: they receive
  the other side;
- ``officer-watch`` offers four ``recvonly`` m-lines in this order: relative audio, relative
  video, kiosk audio, kiosk video. Officers send nothing.

Peers use ``bundlePolicy=max-bundle``: with aiortc's default ("balanced") a second m-line of
the same kind keeps a transport that BUNDLE negotiation has just stopped, so an officer's
fourth track (kiosk video) never started. Every browser bundles.

Codecs: the first side to join fixes the visit's video codec (VP8 if it offers it, else H.264);
every later leg is offered that codec first so both legs use the same one and packets pass
through untouched. A participant that does not support it negotiates its own codec and that
leg alone is transcoded (``transcode.py``). Audio is Opus. Renegotiating the first side when a
later one only has H.264 is not done.

Mute (``set_muted``) stops forwarding a side's audio to the other side; officers (monitors)
keep hearing it so they can decide when to unmute. Cut = ``stop_forwarding()`` (synchronous:
every gate is closed before it returns) and then ``close()``.

Recognition taps and the recorder subscribe with :meth:`VisitMedia.add_consumer`: they get
packets like an officer does (each its own copy) and decode or mux them off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import SessionDescription

from server.media import hooks
from server.media.relay import ForwardedTrack, PacketRelay

logger = logging.getLogger(__name__)

Role = Literal["relative", "kiosk", "officer-watch"]
Side = Literal["relative", "kiosk"]
Kind = Literal["audio", "video"]
SIDES: tuple[Side, Side] = ("relative", "kiosk")
KINDS: tuple[Kind, Kind] = ("audio", "video")
OTHER: dict[Side, Side] = {"relative": "kiosk", "kiosk": "relative"}


class MediaError(Exception):
    """The offer cannot be served (closed visit, unknown role, no usable codec)."""


@dataclass
class _Participant:
    id: str
    role: Role
    pc: RTCPeerConnection
    relays: list[PacketRelay] = field(default_factory=list)
    consumers: list[ForwardedTrack] = field(default_factory=list)


def offered_codecs(sdp: str) -> dict[str, list[str]]:
    """MIME types offered per media kind, in the offer's order (RTX excluded)."""
    description = SessionDescription.parse(sdp)
    offered: dict[str, list[str]] = {"audio": [], "video": []}
    for media in description.media:
        if media.kind in offered:
            for codec in media.rtp.codecs:
                if codec.name.lower() != "rtx" and codec.mimeType not in offered[media.kind]:
                    offered[media.kind].append(codec.mimeType)
    return offered


def _preferences(kind: str, first_mime: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpReceiver.getCapabilities(kind)
    assert caps is not None
    codecs = [c for c in caps.codecs if c.name.lower() != "rtx"]
    rtx = [c for c in caps.codecs if c.name.lower() == "rtx"]
    ordered = [c for c in codecs if c.mimeType.lower() == first_mime.lower()]
    ordered += [c for c in codecs if c.mimeType.lower() != first_mime.lower()]
    return ordered + rtx


class VisitMedia:
    """The media plane of one live visit."""

    def __init__(
        self,
        visit_id: str,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        keyframe_interval: float = 0.5,
        loss_deadline: float = 0.25,
        video_codecs: tuple[str, ...] = ("video/VP8", "video/H264"),
    ) -> None:
        hooks.install()
        self.visit_id = visit_id
        self.video_mime: str | None = None
        self._ice_servers = list(ice_servers or [])
        self._keyframe_interval = keyframe_interval
        self._loss_deadline = loss_deadline
        self._video_codecs = video_codecs
        self._participants: dict[str, _Participant] = {}
        self._sources: dict[tuple[Side, str], PacketRelay] = {}
        self._consumers: dict[tuple[Side, str], list[ForwardedTrack]] = {
            (side, kind): [] for side in SIDES for kind in KINDS
        }
        self._extra_consumers: list[ForwardedTrack] = []
        self._muted: dict[Side, bool] = {"relative": False, "kiosk": False}
        self._forwarding = True
        self._closed = False
        self._lock = asyncio.Lock()

    # -- joining and leaving --

    async def accept_offer(self, participant_id: str, role: Role, sdp: str) -> str:
        """Answer a participant's offer; a second offer from the same participant rejoins."""
        if role not in ("relative", "kiosk", "officer-watch"):
            raise MediaError(f"unknown role {role!r}")
        async with self._lock:
            if self._closed:
                raise MediaError("the visit's media is closed")
            if participant_id in self._participants:
                await self._remove(participant_id)
            offered = offered_codecs(sdp)
            video_mime = self._choose_video(offered["video"])
            pc = RTCPeerConnection(
                RTCConfiguration(
                    iceServers=list(self._ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
                )
            )
            participant = _Participant(participant_id, role, pc)
            self._participants[participant_id] = participant

            senders: list[tuple[RTCRtpTransceiver, ForwardedTrack]] = []
            if role == "officer-watch":
                plan = [(side, kind, "sendonly") for side in SIDES for kind in KINDS]
            else:
                plan = [(OTHER[role], kind, "sendrecv") for kind in KINDS]
            for source, kind, direction in plan:
                track = ForwardedTrack(
                    kind,
                    name=f"{participant_id}<-{source}.{kind}",
                    monitor=role == "officer-watch",
                )
                transceiver = pc.addTransceiver(track, direction=direction)
                transceiver.setCodecPreferences(
                    _preferences(kind, video_mime if kind == "video" else "audio/opus")
                )
                senders.append((transceiver, track))
                self._subscribe(source, track)
                participant.consumers.append(track)

            if role != "officer-watch":
                side: Side = "relative" if role == "relative" else "kiosk"

                @pc.on("track")
                def on_track(track: MediaStreamTrack) -> None:
                    self._publish(participant, side, track)
            else:

                @pc.on("track")
                def on_unexpected_track(track: MediaStreamTrack) -> None:
                    # Officers send nothing, but every remote track is drained all the same.
                    self._publish(participant, None, track)

            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
            except Exception as exc:
                await self._remove(participant_id)
                raise MediaError(f"cannot answer the offer: {exc}") from exc

            for transceiver, track in senders:
                codec = hooks.negotiated_codec(transceiver)
                if codec is None:
                    continue
                track.out_mime = codec.mimeType
                hooks.install_forwarding_encoder(transceiver.sender, codec)
                hooks.on_keyframe_request(transceiver.sender, track.downstream_keyframe_request)
            return str(pc.localDescription.sdp)

    def _choose_video(self, offered: list[str]) -> str:
        lower = [m.lower() for m in offered]
        if self.video_mime is None:
            for mime in self._video_codecs:
                if mime.lower() in lower:
                    self.video_mime = mime
                    return mime
            return self._video_codecs[0]
        return self.video_mime

    def _publish(
        self, participant: _Participant, side: Side | None, track: MediaStreamTrack
    ) -> None:
        """Called synchronously from the "track" event: the track is drained from now on."""
        receiver = next(
            (t.receiver for t in participant.pc.getTransceivers() if t.receiver.track is track),
            None,
        )
        relay = PacketRelay(
            track,
            name=f"{participant.id}.{track.kind}",
            keyframe_interval=self._keyframe_interval,
            gate_open=self._forwarding,
        )
        if receiver is not None:
            relay.receiver = hooks.OwnedReceiver(
                receiver, track.kind, on_loss=relay.on_loss, loss_deadline=self._loss_deadline
            )
        relay.muted = side is not None and self._muted[side]
        relay.start()
        participant.relays.append(relay)
        if side is None or track.kind not in KINDS:
            return
        self._sources[(side, track.kind)] = relay
        for consumer in self._consumers[(side, track.kind)]:
            relay.attach(consumer)

    def _subscribe(self, side: Side, track: ForwardedTrack) -> None:
        self._consumers[(side, track.kind)].append(track)
        if not self._forwarding:
            track.close_gate()
        source = self._sources.get((side, track.kind))
        if source is not None:
            source.attach(track)

    def add_consumer(self, side: Side, kind: Kind, name: str) -> ForwardedTrack:
        """A monitor subscription (recorder, recognition tap): packets of one side's track."""
        track = ForwardedTrack(kind, name=name, monitor=True)
        self._extra_consumers.append(track)
        self._subscribe(side, track)
        return track

    async def remove_participant(self, participant_id: str) -> None:
        async with self._lock:
            await self._remove(participant_id)

    async def _remove(self, participant_id: str) -> None:
        participant = self._participants.pop(participant_id, None)
        if participant is None:
            return
        for consumer in participant.consumers:
            for consumers in self._consumers.values():
                if consumer in consumers:
                    consumers.remove(consumer)
            consumer.stop()
        for key, relay in list(self._sources.items()):
            if relay in participant.relays:
                del self._sources[key]
        await participant.pc.close()
        for relay in participant.relays:
            await relay.stop()

    # -- officer controls --

    def stop_forwarding(self) -> float | None:
        """Close every gate now; returns the monotonic time of the last forwarded packet."""
        self._forwarding = False
        for participant in self._participants.values():
            for relay in participant.relays:
                relay.close_gate()
        last: float | None = None
        for consumers in self._consumers.values():
            for consumer in consumers:
                consumer.close_gate()
                if consumer.stats.last_forward is not None:
                    last = max(last or 0.0, consumer.stats.last_forward)
        return last

    def set_muted(self, side: Side, muted: bool) -> None:
        """Stop (or resume) forwarding ``side``'s audio to the other side."""
        self._muted[side] = muted
        relay = self._sources.get((side, "audio"))
        if relay is not None:
            relay.muted = muted

    async def close(self) -> None:
        """Stop forwarding, close every peer, cancel and await every task."""
        async with self._lock:
            self._closed = True
            self.stop_forwarding()
            for participant_id in list(self._participants):
                await self._remove(participant_id)
            for consumer in self._extra_consumers:
                consumer.stop()
            self._extra_consumers.clear()

    # -- introspection --

    @property
    def peers(self) -> dict[str, RTCPeerConnection]:
        return {pid: p.pc for pid, p in self._participants.items()}

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """Tasks this visit still runs (empty after ``close()``)."""
        return [t for p in self._participants.values() for r in p.relays for t in r.tasks]

    def stats(self) -> dict[str, Any]:
        """Counters for metrics: per upstream relay and per consumer."""
        relays = {
            relay.name: vars(relay.stats).copy()
            for p in self._participants.values()
            for relay in p.relays
        }
        consumers = {
            c.name: {k: v for k, v in vars(c.stats).items() if k not in ("extra",)}
            for cs in self._consumers.values()
            for c in cs
        }
        return {
            "relays": relays,
            "consumers": consumers,
            "encoders_created": hooks.encoders_created,
        }
