"""Real aiortc peers over loopback through VisitMedia: forwarding, keyframes, cut, mute, close.

The relative sends the pre-encoded, marked VP8 + Opus file (no encoder anywhere); the kiosk
sends a live source that aiortc encodes on the client (so it answers PLIs); officers receive
packets untouched (their receivers use the pass-through hook) to check keyframes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.media import VisitMedia, hooks
from tests.support.media import (
    Client,
    MarkedVideoTrack,
    build_source,
    reference_thumbnails,
    silence,
    source_player,
    thumb_distance,
    wait_until,
)


@dataclass
class Source:
    path: Path
    refs: dict[int, bytes]


@pytest.fixture(scope="session")
def media_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = build_source(tmp_path_factory.mktemp("media"))
    return Source(path, reference_thumbnails(path))


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    hooks.set_host_addresses(["127.0.0.1"])
    yield
    hooks.set_host_addresses(None)


@dataclass
class Visit:
    media: VisitMedia
    relative: Client
    kiosk: Client
    clients: list[Client]

    async def watcher(self, name: str = "officer") -> Client:
        officer = Client(name, receive=4, packets=True)
        self.clients.append(officer)
        await officer.connect(self.media, "officer-watch")
        return officer


@pytest.fixture
async def visit(media_source: Source) -> AsyncIterator[Visit]:
    media = VisitMedia("visit-1")
    player = source_player(media_source.path)
    assert player.audio is not None and player.video is not None
    relative = Client("relative", send=[player.audio, player.video])
    kiosk = Client("kiosk", send=[silence(), MarkedVideoTrack()], analyse=True)
    v = Visit(media, relative, kiosk, [relative, kiosk])
    await relative.connect(media, "relative")
    await kiosk.connect(media, "kiosk")
    yield v
    await media.close()
    for client in v.clients:
        await client.close()


def _video_flowing(client: Client, frames: int) -> bool:
    return any(r.kind == "video" and len(r.arrivals) >= frames for r in client.received)


def _forwarding_encoders(media: VisitMedia) -> list[Any]:
    return [
        t.sender._RTCRtpSender__encoder  # type: ignore[attr-defined]
        for pc in media.peers.values()
        for t in pc.getTransceivers()
        if t.sender is not None
    ]


async def test_media_flows_both_ways_and_to_the_watcher_without_encoding(
    visit: Visit, media_source: Source
) -> None:
    encoders_before = hooks.encoders_created
    officer = await visit.watcher()
    await wait_until(lambda: _video_flowing(visit.kiosk, 90) and _video_flowing(visit.relative, 30))
    await wait_until(
        lambda: len(officer.received) == 4 and all(len(r.arrivals) >= 10 for r in officer.received)
    )
    assert len(visit.kiosk.track("audio").arrivals) > 20
    assert len(visit.relative.track("audio").arrivals) > 20

    # Nothing was encoded in the server: every server sender packs, none ever encoded.
    assert hooks.encoders_created == encoders_before
    encoders = [e for e in _forwarding_encoders(visit.media) if e is not None]
    assert encoders and all(isinstance(e, hooks.ForwardingEncoder) for e in encoders)
    assert all(e.encode_calls == 0 for e in encoders)

    # The kiosk decodes the relative's own pictures (identical bitstream, same frames).
    video = visit.kiosk.track("video")
    matched = [
        thumb_distance(thumb, media_source.refs[marker])
        for marker, thumb in zip(video.markers, video.thumbs, strict=True)
        if marker in media_source.refs
    ]
    assert len(matched) >= 0.95 * len(video.markers)
    assert sorted(matched)[len(matched) // 2] < 2.0
    assert sum(1 for d in matched if d < 6.0) >= 0.95 * len(matched)
    assert video.markers == sorted(video.markers)

    stats = visit.media.stats()
    assert stats["relays"]["relative.video"]["received"] > 0
    assert stats["consumers"]["kiosk<-relative.video"]["forwarded"] > 0


async def test_late_watcher_starts_on_a_keyframe_promptly(visit: Visit) -> None:
    await wait_until(lambda: _video_flowing(visit.kiosk, 60) and _video_flowing(visit.relative, 60))
    joined = time.monotonic()
    officer = await visit.watcher()
    await wait_until(
        lambda: (
            len(officer.received) == 4
            and all(r.keyframes for r in officer.received if r.kind == "video")
        )
    )
    for record in (r for r in officer.received if r.kind == "video"):
        assert record.keyframes[0] is True
    # The kiosk's live encoder answers the relayed PLI: its first frame comes at once.
    kiosk_video = officer.track("video", 1)
    assert kiosk_video.arrivals[0] - joined < 1.5
    assert visit.media.stats()["relays"]["kiosk.video"]["keyframe_requests"] >= 1


async def test_stop_forwarding_stops_media_to_both_sides_at_once(visit: Visit) -> None:
    await wait_until(lambda: _video_flowing(visit.kiosk, 30) and _video_flowing(visit.relative, 30))
    last = visit.media.stop_forwarding()
    stopped = time.monotonic()
    assert last is not None and last <= stopped
    forwarded = {k: v["forwarded"] for k, v in visit.media.stats()["consumers"].items()}
    await asyncio.sleep(1.0)
    # Allow for what was already on the wire when the gates closed (loopback: a few ms).
    for client in (visit.relative, visit.kiosk):
        for record in client.received:
            assert record.after(stopped + 0.2) == 0, (client.name, record.kind)
    assert {k: v["forwarded"] for k, v in visit.media.stats()["consumers"].items()} == forwarded


async def test_mute_stops_that_sides_audio_only(visit: Visit) -> None:
    officer = await visit.watcher()
    await wait_until(lambda: len(visit.kiosk.track("audio").arrivals) > 20)
    visit.media.set_muted("relative", True)
    muted = time.monotonic()
    await asyncio.sleep(1.0)
    assert visit.kiosk.track("audio").after(muted + 0.2) == 0
    assert visit.kiosk.track("video").after(muted + 0.2) > 15
    assert visit.relative.track("audio").after(muted + 0.2) > 20  # the kiosk is still heard
    assert officer.track("audio", 0).after(muted + 0.2) > 20  # officers still monitor
    visit.media.set_muted("relative", False)
    unmuted = time.monotonic()
    await wait_until(lambda: visit.kiosk.track("audio").after(unmuted) > 10, within=3)


async def test_close_leaves_no_task_and_closes_every_peer(visit: Visit) -> None:
    await visit.watcher()
    await wait_until(lambda: _video_flowing(visit.kiosk, 15))
    peers = list(visit.media.peers.values())
    assert len(peers) == 3
    await visit.media.close()
    assert visit.media.tasks == []
    assert all(pc.connectionState == "closed" for pc in peers)
    leftovers = [
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith(("relay-", "pli-")) and not t.done()
    ]
    assert leftovers == []


async def test_unrecoverable_loss_asks_for_a_keyframe_at_once(visit: Visit) -> None:
    """One lost video packet whose retransmission never comes: the stream resumes in < 1 s."""
    await wait_until(lambda: _video_flowing(visit.relative, 30))
    # The kiosk will not retransmit, and the server drops one of its video packets.
    for t in visit.kiosk.pc.getTransceivers():
        if t.kind == "video":

            async def no_retransmit(sequence_number: int) -> None:
                return None

            t.sender._retransmit = no_retransmit  # type: ignore[method-assign]
    server_pc = visit.media.peers["kiosk"]
    receiver = next(t.receiver for t in server_pc.getTransceivers() if t.kind == "video")
    original = receiver._handle_rtp_packet
    dropped: list[float] = []

    async def lossy(packet: Any, arrival_time_ms: int) -> None:
        if not dropped and packet.payload_type != 0 and len(packet.payload) > 0:
            dropped.append(time.monotonic())
            return
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
    await wait_until(lambda: bool(dropped))
    await asyncio.sleep(2.0)
    video = visit.relative.track("video")
    gap = video.max_gap(since=dropped[0], until=time.monotonic())
    print(f"freeze after one unrecoverable loss: {gap:.3f} s")
    assert gap < 1.0, f"forwarded video froze {gap:.2f} s"
    assert visit.media.stats()["relays"]["kiosk.video"]["losses"] == 1
    assert video.after(dropped[0] + 1.0) > 15


async def test_a_rejoining_participant_replaces_its_peer_and_the_other_side_resumes(
    visit: Visit, media_source: Source
) -> None:
    await wait_until(lambda: _video_flowing(visit.kiosk, 30))
    old_pc = visit.media.peers["relative"]
    player = source_player(media_source.path)
    assert player.audio is not None and player.video is not None
    again = Client("relative-again", send=[player.audio, player.video])
    visit.clients.append(again)
    await again.connect(visit.media, "relative", participant_id="relative")
    rejoined = time.monotonic()
    assert old_pc.connectionState == "closed"
    assert visit.media.peers["relative"] is not old_pc
    # The kiosk keeps its own peer and track; the new source starts on a keyframe.
    await wait_until(lambda: visit.kiosk.track("video").after(rejoined) > 30)
    await wait_until(lambda: len(again.received) == 2 and len(again.track("video").arrivals) > 30)
    assert len(visit.media.peers) == 2
