"""Recognition over a Redis stream: a real redis-server, real workers in other processes (the
``visitgate recognition-worker`` command, and ``run_worker`` spawned), the real dlib models,
frames composed from the real test photos."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from redis.typing import EncodableT, FieldT

from recognition import stream
from recognition.analysis import FrameAnalysis, FrameRequest, analyse
from recognition.stream import GROUP, REQUESTS, StreamPool, run_worker
from tests.support.faces import card_frame, live_frame
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

VISITGATE = str(Path(sys.executable).parent / "visitgate")
ROOT = Path(__file__).resolve().parents[2]
#: The long-lived CLI worker's database: apart from `redis_url`'s db 0, which each test empties.
SHARED_DB = 1
CLI_CONSUMER = "cli-worker"


def consumers(client: redis.Redis, stream_name: str = REQUESTS) -> dict[str, int]:
    """The group's consumers and how many entries each holds pending."""
    try:
        listed = client.xinfo_consumers(stream_name, GROUP)
    except redis.ResponseError:  # no stream or no group yet
        return {}
    return {c["name"].decode(): int(c["pending"]) for c in listed}


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


async def collect(pool: StreamPool, count: int, within: float = 20.0) -> list[FrameAnalysis]:
    out: list[FrameAnalysis] = []
    async with asyncio.timeout(within):
        async for result in pool.results():
            out.append(result)
            if len(out) == count:
                break
    return out


# --- the long-lived worker: `visitgate recognition-worker`, as an operator runs it -------------


@pytest.fixture(scope="module")
def shared_url(redis_server: RedisServer) -> str:
    redis_server.flush(SHARED_DB)
    return redis_server.url(SHARED_DB)


@pytest.fixture(scope="module")
def shared_redis(shared_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(shared_url)
    yield client
    client.close()


@dataclasses.dataclass
class CliWorker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def cli_worker(
    shared_url: str, shared_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CliWorker]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    log = tmp_path_factory.mktemp("cli-worker") / "output.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [VISITGATE, "recognition-worker", "--consumer", CLI_CONSUMER],
            env={**env, "REDIS_URL": shared_url},
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    worker = CliWorker(process, log)
    try:

        def joined() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"the worker exited ({process.returncode}):\n{worker.output()}"
                )
            return CLI_CONSUMER in consumers(shared_redis)

        # It joins the group only once the models are loaded: from then on it is ready.
        wait_until(joined, "the CLI worker joined the consumer group")
        yield worker
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
async def pool(shared_url: str, cli_worker: CliWorker) -> AsyncIterator[StreamPool]:
    started = StreamPool(shared_url, processes=1)
    await started.start()
    yield started
    await started.stop()


async def test_frames_are_analysed_by_the_worker_exactly_as_in_this_process(
    pool: StreamPool, cli_worker: CliWorker
) -> None:
    frame = live_frame("biden_2.jpg")
    assert pool.submit("v1", "relative", frame) == 1
    (result,) = await collect(pool, 1)
    assert result.pid == cli_worker.process.pid
    assert (result.visit_id, result.side, result.seq) == ("v1", "relative", 1)
    assert result.latency_s > 0 and result.cpu_ms > 0
    (found,) = result.faces
    assert found.encoding is not None and found.encoding.dtype == np.float64
    # The same pure function on the same frame: the wire lost nothing.
    here = analyse(FrameRequest("v1", "relative", 1, frame))
    assert found.box == here.faces[0].box
    assert here.faces[0].encoding is not None
    assert np.array_equal(found.encoding, here.faces[0].encoding)


async def test_the_card_mode_returns_the_live_face_and_the_card_face(pool: StreamPool) -> None:
    pool.submit("v1", "kiosk", card_frame("biden_2.jpg", "biden_1.jpg"), mode="card")
    (result,) = await collect(pool, 1)
    assert len(result.faces) == 1 and result.faces[0].encoding is not None
    assert result.card is not None and result.card.encoding is not None
    assert result.card.box.size < result.faces[0].box.size
    assert result.card_method == "upsample"


async def test_further_request_fields_reach_the_worker(pool: StreamPool) -> None:
    small = live_frame("obama_1.jpg", face_px=45)  # below what HOG finds without upsampling
    pool.submit("v1", "relative", small)
    (plain,) = await collect(pool, 1)
    pool.submit("v1", "relative", small, upsample=1)
    (upsampled,) = await collect(pool, 1)
    assert plain.faces == () and len(upsampled.faces) == 1


async def test_a_newer_frame_replaces_the_waiting_one_and_the_queue_never_grows(
    pool: StreamPool,
) -> None:
    frame = live_frame("biden_2.jpg")
    for _ in range(5):  # while the first is on its way to the worker
        pool.submit("v1", "relative", frame)
        pool.submit("v1", "kiosk", frame)
        stats = pool.stats()
        assert stats.waiting <= 2 and stats.in_flight <= 1
    stats = pool.stats()
    assert stats.in_flight == 1 and stats.waiting == 2
    results = await collect(pool, 3)
    analysed = sorted((r.side, r.seq) for r in results)
    # relative: the first (already sent) and the last; kiosk: only the last
    assert analysed == [("kiosk", 5), ("relative", 1), ("relative", 5)]
    stats = pool.stats()
    assert (stats.submitted, stats.processed, stats.dropped, stats.failed) == (10, 3, 7, 0)
    assert (stats.waiting, stats.in_flight, stats.oldest_waiting_s) == (0, 0, 0.0)


async def test_a_pool_speaking_resp3_reads_its_results_too(
    shared_url: str, cli_worker: CliWorker
) -> None:
    pool = StreamPool(f"{shared_url}?protocol=3", processes=1)
    await pool.start()
    try:
        pool.submit("v1", "relative", live_frame("obama_1.jpg"))
        (result,) = await collect(pool, 1)
        assert len(result.faces) == 1
    finally:
        await pool.stop()


async def test_a_forgotten_visit_drops_its_waiting_frame(pool: StreamPool) -> None:
    frame = live_frame("obama_1.jpg")
    pool.submit("v1", "relative", frame)
    pool.submit("v2", "relative", frame)
    assert pool.stats().waiting == 1 and pool.stats().oldest_waiting_s >= 0
    pool.forget("v2")
    assert pool.stats().waiting == 0
    (only,) = await collect(pool, 1)
    assert only.visit_id == "v1"


async def test_garbage_in_the_stream_is_answered_or_dropped_and_the_worker_goes_on(
    pool: StreamPool, shared_redis: redis.Redis
) -> None:
    routing: dict[FieldT, EncodableT] = {"visit_id": "v9", "side": "relative", "seq": 1}
    shared_redis.xadd(
        REQUESTS, {**routing, "reply": pool.results_stream, "request": b"\x80\x04\x95pickle"}
    )
    shared_redis.xadd(REQUESTS, {**routing, "reply": "visitgate:sessions", "request": b"x"})
    shared_redis.xadd(REQUESTS, {"nothing": "useful"})
    pool.submit("v1", "relative", live_frame("obama_1.jpg"))
    (result,) = await collect(pool, 1)
    assert result.visit_id == "v1" and len(result.faces) == 1
    replies: list[dict[Any, Any]] = [
        fields or {} for _, fields in shared_redis.xrange(pool.results_stream) or []
    ]
    errors = [f[b"error"].decode() for f in replies if b"error" in f]
    assert errors == ["undecodable request: not a VisitGate recognition record (bad magic)"]
    assert replies[0][b"visit_id"] == b"v9"  # routed back, for the server to count it
    assert not shared_redis.exists("visitgate:sessions")  # never writes outside results streams
    wait_until(lambda: shared_redis.xlen(REQUESTS) == 0, "every entry was deleted", 5)
    assert consumers(shared_redis)[CLI_CONSUMER] == 0


async def test_stop_is_prompt_and_leaves_nothing_running(
    shared_url: str, shared_redis: redis.Redis, cli_worker: CliWorker
) -> None:
    pool = StreamPool(shared_url, processes=1)
    await pool.start()
    frame = card_frame("biden_2.jpg", "biden_1.jpg")
    pool.submit("v1", "relative", frame, mode="card")  # in flight
    pool.submit("v2", "relative", frame, mode="card")  # waiting
    await asyncio.sleep(0.05)  # the first is on its way
    started = time.monotonic()
    await pool.stop()
    assert time.monotonic() - started < 1.0
    assert await collect(pool, 1) == []  # results() ends instead of waiting forever
    stats = pool.stats()
    assert (stats.waiting, stats.in_flight) == (0, 0)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("recognition-stream")]
    with pytest.raises(RuntimeError, match="not running"):
        pool.submit("v1", "relative", frame)
    # A late answer to the frame in flight may recreate the results stream, never for good.
    wait_until(lambda: consumers(shared_redis)[CLI_CONSUMER] == 0, "the worker finished", 10)
    assert shared_redis.ttl(pool.results_stream) in (-2, *range(1, stream.RESULTS_TTL_S + 1))


# --- a worker that dies with a frame must not wedge the visit side -----------------------------


async def test_the_app_with_a_redis_url_judges_its_visits_on_the_stream_workers(
    shared_url: str, cli_worker: CliWorker, tmp_path: Path, aiohttp_client: Any
) -> None:
    """The whole path through the server: the relative's video tapped, frames sent over the
    stream to the CLI worker, results judged by the app: a stranger alerts the officer."""
    from server.faces import RECOGNITION
    from tests.integration import test_live_identity as live

    async for visit in live.scheduled_visit(
        tmp_path, aiohttp_client, "biden_1.jpg", redis_url=shared_url
    ):
        relative_signal, officer_signal, _ = await live.connect(visit)
        assert (await officer_signal.request("start"))["type"] == "ack"
        admitted = await officer_signal.request("admit", reason="民警人工核验身份证件与本人一致")
        assert admitted["type"] == "ack"
        camera = live.Client(
            "relative",
            send=[live.silence(), live.PictureTrack(live.biden_with_a_stranger())],
        )
        try:
            await camera.connect(relative_signal, "relative")
            alert = await officer_signal.until("alert", within=30)
            assert alert["side"] == "relative" and alert["box"][0] >= 300
            pool = visit.http.app[RECOGNITION].pool
            assert isinstance(pool, StreamPool) and pool.stats().processed >= 3
        finally:
            await camera.close()


def _hang(request: FrameRequest) -> FrameAnalysis:
    """A worker stuck in dlib: takes the frame and never answers."""
    time.sleep(600)
    raise AssertionError("unreachable")


def _worker_process(
    url: str, consumer: str, stop: EventType, report: Any, kwargs: dict[str, Any]
) -> None:
    stats = run_worker(url, consumer=consumer, stop_event=stop, **kwargs)
    report.put(dataclasses.asdict(stats))


async def test_a_worker_killed_with_a_frame_does_not_wedge_the_pool(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    client = redis.Redis.from_url(redis_url)
    stop, report = context.Event(), context.Queue()
    doomed = context.Process(
        target=_worker_process,
        args=(redis_url, "doomed", stop, report, {"analyse_frame": _hang}),
    )
    rescuer = context.Process(
        target=_worker_process,
        # max_age_s below the pool's timeout: the dead worker's frame is stale when claimed.
        # RESP3 here, RESP2 (redis-py's default) everywhere else: both reply shapes are read.
        args=(
            f"{redis_url}?protocol=3",
            "rescuer",
            stop,
            report,
            {"claim_idle_s": 0.3, "max_age_s": 1.0},
        ),
    )
    pool = StreamPool(redis_url, processes=1, timeout_s=1.5)
    await pool.start()
    try:
        doomed.start()
        await asyncio.to_thread(wait_until, lambda: "doomed" in consumers(client), "doomed joined")
        pool.submit("v1", "relative", live_frame("biden_2.jpg"))
        await asyncio.to_thread(
            wait_until, lambda: consumers(client).get("doomed") == 1, "doomed took the frame", 10
        )
        doomed.kill()
        doomed.join(5)
        assert pool.stats().in_flight == 1
        await asyncio.sleep(1.6)
        stats = pool.stats()
        assert (stats.in_flight, stats.failed, stats.processed) == (0, 1, 0)

        rescuer.start()
        await asyncio.to_thread(
            wait_until, lambda: "rescuer" in consumers(client), "rescuer joined"
        )
        pool.submit("v1", "relative", live_frame("biden_2.jpg"))  # the side is free again
        (result,) = await collect(pool, 1)
        assert (result.visit_id, result.seq, len(result.faces)) == ("v1", 2, 1)
        # The dead worker's entry: claimed, found stale, dropped (not analysed, not answered).
        await asyncio.to_thread(
            wait_until,
            lambda: consumers(client).get("doomed") == 0 and client.xlen(REQUESTS) == 0,
            "the dead worker's frame was claimed",
            10,
        )
        stop.set()
        rescuer.join(10)
        assert rescuer.exitcode == 0
        rescued = report.get(timeout=5)
        assert rescued == {"processed": 1, "failed": 0, "stale": 1, "invalid": 0, "claimed": 1}
        assert "rescuer" not in consumers(client)  # left the group on the way out
        assert pool.stats().failed == 1 and pool.stats().processed == 1
    finally:
        await pool.stop()
        stop.set()
        for process in (doomed, rescuer):
            if process.is_alive():
                process.kill()
            if process.pid is not None:
                process.join(5)
        client.close()


# --- the command --------------------------------------------------------------------------------


def test_the_worker_command_needs_a_redis_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [VISITGATE, "recognition-worker", "--data-dir", str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "需要 Redis" in done.stderr and "set --redis-url or REDIS_URL" in done.stderr


def test_the_worker_command_leaves_its_group_and_exits_cleanly_on_sigterm(
    cli_worker: CliWorker, shared_redis: redis.Redis
) -> None:
    cli_worker.process.send_signal(signal.SIGTERM)
    assert cli_worker.process.wait(timeout=10) == 0, cli_worker.output()
    assert "recognition worker stopped" in cli_worker.output()
    assert CLI_CONSUMER not in consumers(shared_redis)
