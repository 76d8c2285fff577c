"""What both recognition pools share: one waiting frame per visit side, the results out.

Owns: the slot per (visit, side) holding only the latest sampled frame (a newer one
replaces it and counts as dropped, keeping its place in line), the sequence numbers, the
counters behind ``stats()``, and the delivery of results (the ``on_result`` callback, or a
bounded buffer that drops its oldest entry when nobody reads). The pools differ only in
where a frame goes once a slot is free (``_pump``): a local process pool
(``worker.RecognitionPool``) or a Redis stream (``stream.StreamPool``).

Must never: block, or grow: ``submit`` replaces, ``_in_flight`` holds at most one frame per
visit side and at most ``processes`` overall.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from recognition.analysis import FrameAnalysis, FrameRequest, Mode, Side
from recognition.models import Box, Image

log = logging.getLogger(__name__)

Key = tuple[str, Side]
#: What a pool keeps about a frame in flight.
InFlight = TypeVar("InFlight")


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
class Waiting:
    request: FrameRequest
    submitted_at: float


class LatestFramePool(abc.ABC, Generic[InFlight]):
    def __init__(
        self,
        processes: int,
        *,
        on_result: Callable[[FrameAnalysis], None] | None,
        max_results: int,
        clock: Callable[[], float],
    ) -> None:
        self.processes = processes
        self._on_result = on_result
        self._clock = clock
        self._waiting: dict[Key, Waiting] = {}
        self._in_flight: dict[Key, InFlight] = {}
        self._seq: dict[Key, int] = {}
        self._results: asyncio.Queue[FrameAnalysis | None] = asyncio.Queue(max_results)
        self._closed = False
        self._submitted = self._processed = self._dropped = self._failed = 0
        self._results_dropped = 0

    @abc.abstractmethod
    def _running(self) -> bool:
        """Started and not stopped: frames may be submitted."""

    @abc.abstractmethod
    def _pump(self) -> None:
        """Send waiting frames on while there are free slots (``_next_waiting``)."""

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
        if self._closed or not self._running():
            raise RuntimeError("the recognition pool is not running")
        key: Key = (visit_id, side)
        seq = self._seq.get(key, 0) + 1
        request = FrameRequest(
            visit_id, side, seq, frame, mode, skip, card_hint=card_hint, **fields
        )
        self._seq[key] = seq
        self._submitted += 1
        if key in self._waiting:
            self._dropped += 1
        # Assigning to an existing key keeps its place in line: a side that was
        # already waiting is not sent to the back because its frame got newer.
        self._waiting[key] = Waiting(request, self._clock())
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

    # --- for the pools -------------------------------------------------------------------

    def _next_waiting(self) -> tuple[Key, Waiting] | None:
        """The first waiting visit side with nothing in flight, taken out of line;
        None when every slot is busy or nothing waits."""
        if len(self._in_flight) >= self.processes:
            return None
        key = next((k for k in self._waiting if k not in self._in_flight), None)
        return None if key is None else (key, self._waiting.pop(key))

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
