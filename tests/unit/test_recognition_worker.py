"""The worker pool: recognition in another process, only the latest frame per
visit side waiting, back-pressure counted."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from recognition.analysis import FrameAnalysis
from recognition.worker import RecognitionPool, default_processes
from tests.support.faces import card_frame, live_frame


@pytest.fixture
async def pool() -> AsyncIterator[RecognitionPool]:
    started = RecognitionPool(processes=1)
    await started.start()
    yield started
    await started.stop()


async def collect(pool: RecognitionPool, count: int) -> list[FrameAnalysis]:
    out = []
    async for result in pool.results():
        out.append(result)
        if len(out) == count:
            break
    return out


def test_the_default_leaves_one_core_to_the_event_loop() -> None:
    assert default_processes() == max(1, (os.cpu_count() or 1) - 1)


async def test_frames_are_analysed_in_another_process(pool: RecognitionPool) -> None:
    pool.submit("v1", "relative", live_frame("biden_2.jpg"))
    (result,) = await collect(pool, 1)
    assert result.pid != os.getpid()
    assert (result.visit_id, result.side, result.seq) == ("v1", "relative", 1)
    (found,) = result.faces
    assert found.encoding is not None and found.encoding.shape == (128,)
    assert result.latency_s > 0 and result.cpu_ms > 0


async def test_a_newer_frame_replaces_the_waiting_one_and_the_queue_never_grows(
    pool: RecognitionPool,
) -> None:
    frame = live_frame("biden_2.jpg")
    for _ in range(5):  # while the first is being analysed
        pool.submit("v1", "relative", frame)
        pool.submit("v1", "kiosk", frame)
        stats = pool.stats()
        assert stats.waiting <= 2 and stats.in_flight <= 1  # one frame per visit side waits
    stats = pool.stats()
    assert stats.in_flight == 1 and stats.waiting == 2
    results = await collect(pool, 3)
    analysed = sorted((r.side, r.seq) for r in results)
    # relative: the first (already running) and the last; kiosk: only the last
    assert analysed == [("kiosk", 5), ("relative", 1), ("relative", 5)]
    stats = pool.stats()
    assert (stats.submitted, stats.processed, stats.dropped) == (10, 3, 7)
    assert (stats.waiting, stats.in_flight, stats.oldest_waiting_s) == (0, 0, 0.0)


async def test_a_waiting_frame_shows_its_age_and_a_forgotten_visit_drops_it(
    pool: RecognitionPool,
) -> None:
    frame = live_frame("obama_1.jpg")
    pool.submit("v1", "relative", frame)
    pool.submit("v2", "relative", frame)
    assert pool.stats().waiting == 1
    assert pool.stats().oldest_waiting_s >= 0
    pool.forget("v2")
    assert pool.stats().waiting == 0
    (only,) = await collect(pool, 1)
    assert only.visit_id == "v1"


async def test_the_card_mode_returns_the_live_face_and_the_card_face(pool: RecognitionPool) -> None:
    pool.submit("v1", "relative", card_frame("biden_2.jpg", "biden_1.jpg"), mode="card")
    (result,) = await collect(pool, 1)
    assert len(result.faces) == 1 and result.card is not None
    assert result.card_method == "upsample"
