"""The recognition worker pool, as seen from the event loop.

Owns: a ``ProcessPoolExecutor`` whose processes load the models once (the
initializer). In front of it, ``slots.LatestFramePool`` (shared with the Redis
stream pool) keeps one slot per visit side holding only the latest sampled
frame; at most one frame per visit side is in flight, and at most one per
process overall, so the executor's own queue stays empty too. Back-pressure is
visible in ``stats()``; the server exports it as metrics.

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
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from recognition.analysis import FrameAnalysis, FrameRequest, analyse
from recognition.models import load_models
from recognition.slots import Key, LatestFramePool, PoolStats

__all__ = ["Key", "PoolStats", "RecognitionPool", "default_processes"]

log = logging.getLogger(__name__)

Analyse = Callable[[FrameRequest], FrameAnalysis]


def default_processes() -> int:
    """One process per core less one (the event loop's), at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def _init_worker() -> None:
    load_models()


def _worker_pid() -> int:
    return os.getpid()


class RecognitionPool(LatestFramePool[float]):
    """Frames in flight map to the time they were submitted."""

    def __init__(
        self,
        processes: int | None = None,
        *,
        analyse_frame: Analyse = analyse,
        on_result: Callable[[FrameAnalysis], None] | None = None,
        max_results: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        count = processes if processes is not None else default_processes()
        if count < 1:
            raise ValueError("a recognition pool needs at least one process")
        super().__init__(count, on_result=on_result, max_results=max_results, clock=clock)
        self._analyse = analyse_frame
        self._executor: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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

    # --- internals -----------------------------------------------------------------------

    def _running(self) -> bool:
        return self._executor is not None

    def _pump(self) -> None:
        assert self._loop is not None
        while self._executor is not None and (taken := self._next_waiting()) is not None:
            key, waiting = taken
            self._in_flight[key] = waiting.submitted_at
            future = self._loop.run_in_executor(self._executor, self._analyse, waiting.request)
            future.add_done_callback(functools.partial(self._finished, key, waiting.submitted_at))

    def _finished(
        self, key: Key, submitted_at: float, future: asyncio.Future[FrameAnalysis]
    ) -> None:
        self._in_flight.pop(key, None)
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
