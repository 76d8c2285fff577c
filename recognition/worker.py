"""The recognition worker pool, as seen from the event loop.

Owns: a ``ProcessPoolExecutor`` whose processes load the models once (the
initializer), and in front of it one slot per visit side holding only the
latest sampled frame. ``submit()`` never blocks and never grows anything: a
newer frame for a visit side replaces the one waiting there (counted as
dropped); at most one frame per visit side is in flight, and at most one per
process overall, so the executor's own queue stays empty too. Results come
back through ``results()`` (an async iterator over a bounded buffer that
drops its oldest entry when nobody reads) or an ``on_result`` callback.

Back-pressure is visible in ``stats()``: frames submitted, processed,
dropped, failed, waiting, in flight, and the age of the oldest waiting frame;
the server exports them as metrics.

Must never: run recognition on the event loop, or hold per-visit state in the
workers (``analysis.analyse`` is a pure function of its request, so a Redis
stream consumer on another machine can run the same code later).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from recognition.analysis import FrameAnalysis, FrameRequest, Mode, Side, analyse
from recognition.models import Box, Image, load_models

log = logging.getLogger(__name__)

Key = tuple[str, Side]
Analyse = Callable[[FrameRequest], FrameAnalysis]


def default_processes() -> int:
    """One process per core less one (the event loop's), at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def _init_worker() -> None:
    load_models()


def _worker_pid() -> int:
    return os.getpid()


@dataclass(frozen=True, slots=True)
class PoolStats:
    processes: int
    submitted: int
    processed: int
    dropped: int
    failed: int
    results_dropped: int
    waiting: int
    in_flight: int
    #: Seconds the oldest waiting frame has waited (0 when none waits).
    oldest_waiting_s: float


@dataclass(slots=True)
class _Waiting:
    request: FrameRequest
    submitted_at: float


class RecognitionPool:
    def __init__(
        self,
        processes: int | None = None,
        *,
        analyse_frame: Analyse = analyse,
        on_result: Callable[[FrameAnalysis], None] | None = None,
        max_results: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processes = processes if processes is not None else default_processes()
        if self.processes < 1:
            raise ValueError("a recognition pool needs at least one process")
        self._analyse = analyse_frame
        self._on_result = on_result
        self._clock = clock
        self._executor: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[Key, _Waiting] = {}
        self._in_flight: set[Key] = set()
        self._seq: dict[Key, int] = {}
        self._results: asyncio.Queue[FrameAnalysis | None] = asyncio.Queue(max_results)
        self._closed = False
        self._submitted = self._processed = self._dropped = self._failed = 0
        self._results_dropped = 0

    # --- life cycle ----------------------------------------------------------------------

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process runs an event loop and threads
        # (aiortc, the database driver) that a forked child must not inherit.
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )

    async def start(self) -> None:
        """Start the processes and wait until they have loaded the models."""
        self._loop = asyncio.get_running_loop()
        self._executor = self._new_executor()
        executor = self._executor
        await asyncio.gather(
            *(self._loop.run_in_executor(executor, _worker_pid) for _ in range(self.processes))
        )

    async def stop(self) -> None:
        self._closed = True
        self._waiting.clear()
        self._deliver(None)
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    # --- the loop-facing side ------------------------------------------------------------

    def submit(
        self,
        visit_id: str,
        side: Side,
        frame: Image,
        *,
        mode: Mode = "watch",
        skip: tuple[Box, ...] = (),
        card_hint: Box | None = None,
        **fields: Any,
    ) -> int:
        """Offer the latest sampled frame of a visit side; returns its sequence
        number. Never blocks: replaces a frame still waiting for that side.
        ``fields``: further ``FrameRequest`` fields (liveness: ``track``, ``encode``)."""
        if self._closed or self._executor is None:
            raise RuntimeError("the recognition pool is not running")
        key: Key = (visit_id, side)
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        request = FrameRequest(
            visit_id, side, seq, frame, mode, skip, card_hint=card_hint, **fields
        )
        self._submitted += 1
        previous = self._waiting.get(key)
        if previous is not None:
            self._dropped += 1
        # Assigning to an existing key keeps its place in line: a side that was
        # already waiting is not sent to the back because its frame got newer.
        self._waiting[key] = _Waiting(request, self._clock())
        self._pump()
        return seq

    def forget(self, visit_id: str) -> None:
        """The visit ended: drop its waiting frames and sequence counters."""
        for key in [k for k in self._waiting if k[0] == visit_id]:
            del self._waiting[key]
        for key in [k for k in self._seq if k[0] == visit_id]:
            del self._seq[key]

    async def results(self) -> AsyncIterator[FrameAnalysis]:
        """Results in completion order, until ``stop()``."""
        while True:
            item = await self._results.get()
            if item is None:
                return
            yield item

    def stats(self) -> PoolStats:
        now = self._clock()
        oldest = min((w.submitted_at for w in self._waiting.values()), default=now)
        return PoolStats(
            processes=self.processes,
            submitted=self._submitted,
            processed=self._processed,
            dropped=self._dropped,
            failed=self._failed,
            results_dropped=self._results_dropped,
            waiting=len(self._waiting),
            in_flight=len(self._in_flight),
            oldest_waiting_s=max(0.0, now - oldest),
        )

    # --- internals -----------------------------------------------------------------------

    def _pump(self) -> None:
        assert self._loop is not None
        while len(self._in_flight) < self.processes:
            key = next((k for k in self._waiting if k not in self._in_flight), None)
            if key is None or self._executor is None:
                return
            waiting = self._waiting.pop(key)
            self._in_flight.add(key)
            future = self._loop.run_in_executor(self._executor, self._analyse, waiting.request)
            future.add_done_callback(functools.partial(self._finished, key, waiting.submitted_at))

    def _finished(
        self, key: Key, submitted_at: float, future: asyncio.Future[FrameAnalysis]
    ) -> None:
        self._in_flight.discard(key)
        if self._closed:
            return
        if future.cancelled():
            self._failed += 1
        elif (error := future.exception()) is not None:
            self._failed += 1
            log.error("recognition failed for %s", key, exc_info=error)
            if isinstance(error, BrokenProcessPool):
                # A worker died (out of memory, a crash in dlib): replace the pool.
                broken, self._executor = self._executor, self._new_executor()
                if broken is not None:
                    broken.shutdown(wait=False, cancel_futures=True)
        else:
            self._processed += 1
            result = dataclasses.replace(future.result(), latency_s=self._clock() - submitted_at)
            self._deliver(result)
        self._pump()

    def _deliver(self, result: FrameAnalysis | None) -> None:
        if result is not None and self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:
                log.exception("recognition result callback failed")
            return
        if self._results.full():
            self._results.get_nowait()
            self._results_dropped += 1
        self._results.put_nowait(result)
