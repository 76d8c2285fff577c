"""Recognition workers on other machines: the pool and the worker over a Redis stream.

Owns both ends of the worker mode used when ``REDIS_URL`` is set (the
in-process ``RecognitionPool`` stays the default):

* ``StreamPool``, on the server: the same interface and the same
  back-pressure as ``RecognitionPool`` (one waiting frame per visit side, a
  newer one replaces it and counts as dropped; at most one frame per visit
  side and at most ``processes`` frames overall in flight). A frame in flight
  is an entry ``XADD``-ed to the request stream; its result comes back on
  this server's own results stream, which one background task reads with a
  blocking ``XREAD``. A frame whose result has not come ``timeout_s`` after it
  was sent (a worker died, or none is running) frees its slot and counts as
  failed, so a dead worker never wedges a visit side.
* ``run_worker()``, on a recognition machine: a consumer-group reader that
  runs the very same ``analysis.analyse`` on each entry, ``XADD``-s the result
  to the results stream the entry names, then acknowledges and deletes the
  entry. Entries older than ``max_age_s`` are dropped unanalysed (the server
  has moved on), and entries left pending by a dead consumer are claimed with
  ``XAUTOCLAIM`` after ``claim_idle_s`` and, being stale by then, dropped.

The records cross as ``recognition.codec`` bytes, never pickle: whatever sits
in Redis is data to a worker, not code. The request entry also carries the
routing (visit, side, seq) as plain fields, so a worker can answer "failed"
for a request it cannot even decode.

Memory in Redis stays bounded: each server has at most ``processes`` entries
unanswered, workers delete what they have handled (a 640×480 frame is
larger than ``stream-node-max-bytes``, so each lives in its own node and
``XDEL`` frees it), ``MAXLEN ~`` caps the request stream when no worker runs,
and results streams are capped and expire when nobody writes to them.

Needs Redis 6.2 or later (``XAUTOCLAIM``, ``XGROUP CREATECONSUMER``); Debian 12
ships 7.0.

Must never: block the server's event loop (the worker side may block: it is
its own process), keep per-visit state in a worker, or analyse a frame the
server has already given up on when it can tell.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from recognition import codec
from recognition.analysis import FrameAnalysis, FrameRequest, analyse
from recognition.models import load_models
from recognition.slots import Key, LatestFramePool
from recognition.worker import default_processes

log = logging.getLogger(__name__)

#: The stream every server adds frames to and every worker's group reads.
REQUESTS = "visitgate:recognition:frames"
GROUP = "visitgate-recognition"
#: Each server reads results from its own stream named with this prefix;
#: workers reply only to streams named so (a forged entry cannot make them
#: write into other keys).
RESULTS_PREFIX = "visitgate:recognition:results:"

#: A frame without a result this long after it was sent counts as failed.
TIMEOUT_S = 5.0
#: Workers drop frames older than this: below ``TIMEOUT_S``, so a worker does
#: not start on a frame the server is about to give up on.
MAX_AGE_S = 3.0
#: A pending entry idle this long belongs to a dead (or wedged) consumer. Above
#: ``MAX_AGE_S`` on purpose: a claimed frame is always stale and dropped, so a
#: frame that crashes workers (a dlib segfault) cannot take down one after another.
CLAIM_IDLE_S = 5.0
#: Consumers gone this long with nothing pending are removed from the group.
FORGET_CONSUMER_S = 600.0
#: About this many entries stay in the request stream when no worker takes any
#: (~90 MB of 640×480 frames at worst; normally it is empty).
REQUESTS_MAXLEN = 100
#: Results are small (boxes, 1 KB per encoding); a server reads them at once.
RESULTS_MAXLEN = 1000
#: A results stream nobody writes to for this long goes (its server stopped
#: without deleting it).
RESULTS_TTL_S = 120
#: How long one blocking read waits; also how soon a worker notices a stop.
BLOCK_S = 1.0


def default_consumer() -> str:
    """``hostname-pid``: unique per worker process, and says where it runs."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _log_failure(task: asyncio.Task[Any]) -> None:
    # recognition/ does not import server/, so not server.tasks.log_failure.
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())


def _messages(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """``(id, fields)`` pairs of an ``XREAD``/``XREADGROUP`` reply.

    RESP2 (redis-py's default) gives ``[[stream, [(id, fields), ...]], ...]``;
    RESP3 (``?protocol=3`` in the URL) gives ``{stream: [[(id, fields), ...]]}``."""
    if not response:
        return []
    per_stream = response.values() if isinstance(response, dict) else (m for _, m in response)
    out = []
    for messages in per_stream:
        if messages and isinstance(messages[0], list):
            messages = [m for inner in messages for m in inner]
        for message in messages:
            if message is not None and message[0] is not None:
                out.append((message[0], message[1] or {}))
    return out


def _entry_ms(entry_id: bytes | str) -> int:
    """The Redis server's clock (ms) when the entry was added: the id's first half."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _is_busy_group(error: ResponseError) -> bool:
    return str(error).startswith("BUSYGROUP")


# --- the server side -------------------------------------------------------------------------


class _Throttled:
    """Logs a recurring failure at most once per ``every`` seconds, with how
    many were not logged in between."""

    def __init__(self, clock: Callable[[], float], every: float = 10.0) -> None:
        self._clock = clock
        self._every = every
        self._last: float | None = None
        self._unlogged = 0

    def log(self, level: int, message: str, *args: Any, exc_info: bool = False) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            self._unlogged += 1
            return
        if self._unlogged:
            message += f" (and {self._unlogged} more since the last such message)"
        log.log(level, message, *args, exc_info=exc_info)
        self._last, self._unlogged = now, 0


@dataclass(slots=True, eq=False)
class _InFlight:
    seq: int
    submitted_at: float
    timer: asyncio.TimerHandle | None = None


class StreamPool(LatestFramePool["_InFlight"]):
    """``RecognitionPool``'s interface, with the work done by ``run_worker``
    processes anywhere that reach the same Redis.

    ``processes`` is how many frames this server keeps in flight at once: the
    worker processes it expects to have working for it (the same setting,
    ``settings.workers``, as the in-process pool's size)."""

    def __init__(
        self,
        redis_url: str,
        processes: int | None = None,
        *,
        on_result: Callable[[FrameAnalysis], None] | None = None,
        max_results: int = 256,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = TIMEOUT_S,
        stream: str = REQUESTS,
        group: str = GROUP,
        maxlen: int = REQUESTS_MAXLEN,
        block_s: float = BLOCK_S,
    ) -> None:
        count = processes if processes is not None else default_processes()
        if count < 1:
            raise ValueError("a recognition pool needs at least one frame in flight")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        super().__init__(count, on_result=on_result, max_results=max_results, clock=clock)
        self.redis_url = redis_url
        self.stream = stream
        self.group = group
        self.timeout_s = timeout_s
        self._maxlen = maxlen
        self._block_ms = max(1, round(block_s * 1000))
        #: This server's results stream: unique per pool, so two servers (or two
        #: pools in one test) never read each other's results.
        self.results_stream = f"{RESULTS_PREFIX}{default_consumer()}-{uuid.uuid4().hex[:12]}"
        self._redis: redis.asyncio.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        # Holds at most ``processes`` items: ``_pump`` adds one only for a free slot.
        # None wakes the sender to stop.
        self._outbox: asyncio.Queue[tuple[Key, _InFlight, FrameRequest] | None] = asyncio.Queue()
        # With no worker (or no Redis), every frame fails: one line per 10 s, not per frame.
        self._timeouts = _Throttled(clock)
        self._send_errors = _Throttled(clock)
        self._started = False

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure the consumer group exists (so frames sent before
        any worker comes up wait for it) and start reading results. Fails fast
        when Redis cannot be reached; does not wait for workers."""
        self._loop = asyncio.get_running_loop()
        # socket_timeout above the blocking read's wait, or every idle XREAD would time out.
        client = redis.asyncio.Redis.from_url(
            self.redis_url, socket_connect_timeout=5, socket_timeout=self._block_ms / 1000 + 10
        )
        try:
            await client.ping()
            try:
                await client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except ResponseError as error:
                if not _is_busy_group(error):
                    raise
        except BaseException:
            await client.aclose()
            raise
        self._redis = client
        self._reader = self._loop.create_task(
            self._read_results(client), name=f"recognition-stream-results {self.results_stream}"
        )
        self._sender = self._loop.create_task(
            self._send_requests(client), name=f"recognition-stream-sender {self.results_stream}"
        )
        for task in (self._reader, self._sender):
            task.add_done_callback(_log_failure)
        self._started = True

    async def stop(self) -> None:
        """Stop reading and sending, forget every frame, delete this server's
        results stream and close the connections. Does not wait for frames in
        flight: their results, if any come, land in a stream that expires."""
        self._closed = True
        self._waiting.clear()
        for flight in self._in_flight.values():
            if flight.timer is not None:
                flight.timer.cancel()
        self._in_flight.clear()
        self._deliver(None)
        self._outbox.put_nowait(None)
        tasks = {t for t in (self._reader, self._sender) if t is not None}
        self._reader = self._sender = None
        await self._end(tasks)
        client, self._redis = self._redis, None
        if client is not None:
            try:
                await asyncio.wait_for(client.delete(self.results_stream), timeout=2)
            except (RedisError, OSError, TimeoutError) as error:
                log.warning("could not delete %s: %s", self.results_stream, error)
            await client.aclose()

    async def _end(self, tasks: set[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` and wait for them, cancelling again while they run.

        Once is not enough on Python 3.11: redis-py wraps its socket writes in
        ``asyncio.wait_for``, which swallows a cancellation that lands as the
        write completes (fixed in 3.12), and the task then goes on to block in
        the read. The loops also stop by themselves on ``_closed`` within one
        blocking read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._block_ms / 1000 + 2
        pending = tasks
        while pending and loop.time() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.05)
        if pending:
            log.error("recognition stream tasks did not stop: %s", pending)

    # --- internals -----------------------------------------------------------------------

    def _running(self) -> bool:
        return self._started

    def _pump(self) -> None:
        assert self._loop is not None
        while not self._closed and (taken := self._next_waiting()) is not None:
            key, waiting = taken
            flight = _InFlight(waiting.request.seq, waiting.submitted_at)
            flight.timer = self._loop.call_later(self.timeout_s, self._timed_out, key, flight)
            self._in_flight[key] = flight
            self._outbox.put_nowait((key, flight, waiting.request))

    def _release(self, key: Key, flight: _InFlight) -> bool:
        """Free the visit side's slot if ``flight`` still holds it."""
        if self._in_flight.get(key) is not flight:
            return False
        del self._in_flight[key]
        if flight.timer is not None:
            flight.timer.cancel()
        return True

    def _timed_out(self, key: Key, flight: _InFlight) -> None:
        if self._release(key, flight):
            self._failed += 1
            self._timeouts.log(
                logging.WARNING,
                "no recognition result within %.1f s for %s #%d: a worker died, or none reads %s?",
                self.timeout_s,
                key,
                flight.seq,
                self.stream,
            )
            self._pump()

    def _fail(self, key: Key, flight: _InFlight) -> None:
        if self._release(key, flight):
            self._failed += 1
            self._pump()

    async def _send_requests(self, client: redis.asyncio.Redis) -> None:
        while not self._closed:
            item = await self._outbox.get()
            if item is None:
                return
            key, flight, request = item
            if self._in_flight.get(key) is not flight:
                continue  # timed out (Redis slow or away) before it was even sent
            try:
                entry: dict[FieldT, EncodableT] = {
                    "reply": self.results_stream,
                    "visit_id": request.visit_id,
                    "side": request.side,
                    "seq": request.seq,
                    "request": codec.encode(request),
                }
                await client.xadd(self.stream, entry, maxlen=self._maxlen, approximate=True)
            except (RedisError, OSError, TypeError) as error:
                # TypeError: a FrameRequest field the codec cannot carry (a bug, logged loudly).
                self._send_errors.log(
                    logging.ERROR,
                    "could not send %s #%d for recognition: %r",
                    key,
                    request.seq,
                    error,
                    exc_info=isinstance(error, TypeError),
                )
                self._fail(key, flight)

    async def _read_results(self, client: redis.asyncio.Redis) -> None:
        last: bytes | str = "0-0"
        while not self._closed:
            try:
                response = await client.xread(
                    {self.results_stream: last}, count=64, block=self._block_ms
                )
            except (RedisError, OSError) as error:
                if self._closed:
                    return
                log.warning("reading recognition results failed, retrying: %s", error)
                await asyncio.sleep(0.5)
                continue
            for entry_id, fields in _messages(response):
                last = entry_id
                self._on_reply(fields)

    def _on_reply(self, fields: dict[bytes, bytes]) -> None:
        try:
            visit_id = fields[b"visit_id"].decode()
            side = fields[b"side"].decode()
            seq = int(fields[b"seq"])
        except (KeyError, ValueError, TypeError, AttributeError) as bad:
            log.warning("ignoring a malformed recognition reply (%r)", bad)
            return
        key: Key = (visit_id, side)  # type: ignore[assignment]
        flight = self._in_flight.get(key)
        if flight is None or flight.seq != seq:
            log.debug("late recognition result for %s #%d ignored", key, seq)
            return
        error: str | None = None
        result: FrameAnalysis | None = None
        if b"result" in fields:
            try:
                result = codec.decode_analysis(fields[b"result"])
            except ValueError as undecodable:
                error = f"undecodable result: {undecodable}"
            else:
                if (result.visit_id, result.side, result.seq) != (visit_id, side, seq):
                    error = f"result for {result.visit_id, result.side, result.seq} routed here"
        else:
            error = fields.get(b"error", b"a reply with neither result nor error").decode(
                errors="replace"
            )
        self._release(key, flight)
        if error is not None or result is None:
            self._failed += 1
            log.error("recognition failed for %s #%d on a worker: %s", key, seq, error)
        else:
            self._processed += 1
            self._deliver(
                dataclasses.replace(result, latency_s=self._clock() - flight.submitted_at)
            )
        self._pump()


# --- the worker side -------------------------------------------------------------------------


class StopSignal(Protocol):
    """What ``run_worker`` polls to stop: ``threading.Event`` and
    ``multiprocessing.Event`` both fit."""

    def is_set(self) -> bool: ...


@dataclass(slots=True)
class WorkerStats:
    """What one ``run_worker`` call did, for its log line at exit and for tests."""

    processed: int = 0
    #: ``analyse`` raised; the server was told.
    failed: int = 0
    #: Older than ``max_age_s`` when read (or claimed): dropped unanalysed.
    stale: int = 0
    #: Not a request (garbage, another version): answered with an error when possible.
    invalid: int = 0
    #: Taken over from dead consumers.
    claimed: int = 0


class _Worker:
    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        stop: StopSignal,
        analyse_frame: Callable[[FrameRequest], FrameAnalysis],
        max_age_s: float,
        claim_idle_s: float,
        block_s: float,
    ) -> None:
        self.redis = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.stop = stop
        self.analyse = analyse_frame
        self.max_age_ms = round(max_age_s * 1000)
        self.claim_idle_ms = round(claim_idle_s * 1000)
        self.block_ms = max(1, round(block_s * 1000))
        self.stats = WorkerStats()
        self._reply_prefix = RESULTS_PREFIX.encode()

    def run(self) -> WorkerStats:
        next_claim = time.monotonic() + self.claim_idle_ms / 1000
        failures = 0
        joined = False
        try:
            while not self.stop.is_set():
                try:
                    if not joined:
                        # In the loop: a worker started before Redis waits for it.
                        self.ensure_group()
                        joined = True
                        log.info(
                            "recognition worker %s reading %s as group %s",
                            self.consumer,
                            self.stream,
                            self.group,
                        )
                    if time.monotonic() >= next_claim:
                        next_claim = time.monotonic() + self.claim_idle_ms / 1000
                        self.claim_stale()
                    response = self.redis.xreadgroup(
                        self.group, self.consumer, {self.stream: ">"}, count=1, block=self.block_ms
                    )
                    messages = _messages(response)
                    if messages:
                        now_ms = self.now_ms()
                        for entry_id, fields in messages:
                            self.handle(entry_id, fields, now_ms)
                    failures = 0
                except ResponseError as error:
                    if "NOGROUP" not in str(error):
                        raise
                    # Redis restarted empty, or someone deleted the stream: join again
                    # (next round, inside the try, in case Redis is not back yet).
                    log.warning("the consumer group is gone, creating it again")
                    joined = False
                except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                    failures += 1
                    pause = min(5.0, 0.2 * 2**failures)
                    log.warning("Redis unavailable (%s); retrying in %.1f s", error, pause)
                    self.sleep(pause)
        finally:
            self.leave()
        return self.stats

    def ensure_group(self) -> None:
        """Create the group if needed and join it now, not on the first entry
        read, so operators (and tests) see a ready worker in XINFO CONSUMERS."""
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if not _is_busy_group(error):
                raise
        self.redis.xgroup_createconsumer(self.stream, self.group, self.consumer)

    def now_ms(self) -> int:
        """Redis's clock, not ours: entry ids carry its time, and the worker's
        machine may disagree with the server's by more than ``max_age_s``."""
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def handle(self, entry_id: bytes, fields: dict[bytes, bytes], now_ms: int) -> None:
        """Analyse one entry and answer it, or drop it; then acknowledge and delete it."""
        age_ms = now_ms - _entry_ms(entry_id)
        reply = fields.get(b"reply")
        routing: dict[FieldT, EncodableT] = {
            k: fields[k] for k in (b"visit_id", b"side", b"seq") if k in fields
        }
        can_reply = (
            isinstance(reply, bytes) and reply.startswith(self._reply_prefix) and len(reply) < 256
        )
        answer: dict[FieldT, EncodableT] | None = None
        if age_ms > self.max_age_ms:
            self.stats.stale += 1
            log.debug("dropping %s: %d ms old", entry_id, age_ms)
        elif not can_reply:
            self.stats.invalid += 1
            log.warning("dropping %s: no valid reply stream (%r)", entry_id, reply)
        else:
            answer = self.answer(entry_id, fields)
        pipe = self.redis.pipeline(transaction=True)
        if answer is not None and reply is not None:
            pipe.xadd(reply, {**routing, **answer}, maxlen=RESULTS_MAXLEN, approximate=True)
            pipe.expire(reply, RESULTS_TTL_S)
        # The result goes out before the ack: a worker dying in between leaves the
        # entry pending, to be claimed and dropped as stale, never answered twice.
        pipe.xack(self.stream, self.group, entry_id)
        pipe.xdel(self.stream, entry_id)
        pipe.execute()

    def answer(self, entry_id: bytes, fields: dict[bytes, bytes]) -> dict[FieldT, EncodableT]:
        try:
            request = codec.decode_request(fields.get(b"request", b""))
        except ValueError as error:
            self.stats.invalid += 1
            log.warning("cannot decode %s: %s", entry_id, error)
            return {b"error": f"undecodable request: {error}".encode()[:1000]}
        try:
            analysis = self.analyse(request)
            encoded = codec.encode(analysis)
        except Exception as error:
            self.stats.failed += 1
            log.exception(
                "recognition failed for %s %s #%d", request.visit_id, request.side, request.seq
            )
            return {b"error": f"{type(error).__name__}: {error}".encode()[:1000]}
        self.stats.processed += 1
        return {b"result": encoded}

    def claim_stale(self) -> None:
        """Take over entries a dead consumer left pending (they are stale by
        now, so this drops them), and remove long-gone consumers."""
        cursor: Any = "0-0"
        for _ in range(10):  # bounded: the next round goes on from the start
            reply = self.redis.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, cursor, count=20
            )
            cursor, messages = reply[0], reply[1]
            claimed = [(i, f or {}) for i, f in messages if i is not None]
            if claimed:
                self.stats.claimed += len(claimed)
                log.info("claimed %d entries of dead consumers", len(claimed))
                now_ms = self.now_ms()
                for entry_id, fields in claimed:
                    self.handle(entry_id, fields, now_ms)
            if cursor in (b"0-0", "0-0"):
                break
        for info in self.redis.xinfo_consumers(self.stream, self.group):
            name = info.get("name")
            if (
                isinstance(name, bytes | str)
                and name not in (self.consumer, self.consumer.encode())
                and info.get("pending") == 0
                and int(info.get("idle", 0)) > FORGET_CONSUMER_S * 1000
            ):
                self.redis.xgroup_delconsumer(self.stream, self.group, name)
        # A blocked XREADGROUP does not count as activity on Redis 7.0, so a live
        # worker that got no frame for a while may have been taken for gone by a
        # peer; joining again (a no-op when still there) keeps it listed.
        self.redis.xgroup_createconsumer(self.stream, self.group, self.consumer)

    def leave(self) -> None:
        """Leave the group (nothing is pending: each entry is acknowledged
        before the next is read) so operators see only live consumers."""
        try:
            self.redis.xgroup_delconsumer(self.stream, self.group, self.consumer)
        except (RedisError, OSError) as error:
            log.warning("could not leave the consumer group: %s", error)
        finally:
            self.redis.close()


def run_worker(
    redis_url: str,
    *,
    group: str = GROUP,
    consumer: str | None = None,
    stop_event: StopSignal | None = None,
    stream: str = REQUESTS,
    analyse_frame: Callable[[FrameRequest], FrameAnalysis] = analyse,
    max_age_s: float = MAX_AGE_S,
    claim_idle_s: float = CLAIM_IDLE_S,
    block_s: float = BLOCK_S,
) -> WorkerStats:
    """Analyse frames from the request stream until ``stop_event`` is set.

    Blocks (it is the worker process's whole job); notices a stop within
    ``block_s`` plus one analysis. Loads the models before joining the group,
    so a consumer that shows up in ``XINFO CONSUMERS`` is ready to work."""
    stop = stop_event if stop_event is not None else threading.Event()
    load_models()
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=block_s + 10)
    worker = _Worker(
        client,
        stream=stream,
        group=group,
        consumer=consumer or default_consumer(),
        stop=stop,
        analyse_frame=analyse_frame,
        max_age_s=max_age_s,
        claim_idle_s=claim_idle_s,
        block_s=block_s,
    )
    stats = worker.run()
    log.info("recognition worker %s stopped: %s", worker.consumer, stats)
    return stats
