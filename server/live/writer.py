"""One bounded writer per socket.

Everything sent to a client goes through its ``Outbox``: ``put`` never awaits
(a broadcast to many sockets is a loop of ``put`` calls and can never stall on
one of them), frames wait in a queue of fixed capacity, and a single task
writes them out in order. A client that cannot keep up fills its queue; it is
then disconnected (close code 1008, the transport aborted if even the close
frame cannot get through) rather than allowed to hold memory or slow anyone
down. The outbox owns its writer and closer tasks and ``stop`` ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..tasks import log_failure as _log_failure
from .protocol import CLOSE_TOO_SLOW

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int], Awaitable[Any]]

DEFAULT_CAPACITY = 256
#: How long a close handshake may take before the transport is simply dropped.
CLOSE_TIMEOUT = 2.0


class Outbox:
    def __init__(
        self,
        send: Send,
        close: Close,
        *,
        capacity: int = DEFAULT_CAPACITY,
        close_timeout: float = CLOSE_TIMEOUT,
        name: str = "ws",
    ) -> None:
        self._send = send
        self._close = close
        self._close_timeout = close_timeout
        self._name = name
        # Frames are serialised in put(): the JSON is built once and the queue holds strings.
        self._queue: asyncio.Queue[str | int] = asyncio.Queue(maxsize=capacity)
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        #: True once nothing more will be accepted (finishing, overflowed or stopped).
        self.closed = False
        self.overflowed = False

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name=f"{self._name}-writer")
            self._writer.add_done_callback(_log_failure)

    def put(self, frame: dict[str, Any]) -> bool:
        """Queue a frame; never waits. False if the outbox no longer accepts frames
        (and, on overflow, the client is being disconnected)."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(json.dumps(frame, ensure_ascii=False))
        except asyncio.QueueFull:
            self._overflow()
            return False
        return True

    def finish(self, code: int) -> None:
        """Send what is queued, then close the socket with ``code``. A full queue
        means the client is not reading: it is dropped at once instead."""
        if self.closed:
            return
        try:
            self._queue.put_nowait(code)
        except asyncio.QueueFull:
            self._overflow()
            return
        self.closed = True

    def _overflow(self) -> None:
        log.warning(
            "%s: client too slow, %d frames queued; disconnecting", self._name, self._queue.qsize()
        )
        self.closed = True
        self.overflowed = True
        if self._writer is not None:
            self._writer.cancel()
        self._start_closer(CLOSE_TOO_SLOW)

    def _start_closer(self, code: int) -> None:
        if self._closer is None:
            self._closer = asyncio.create_task(self._close_now(code), name=f"{self._name}-closer")
            self._closer.add_done_callback(_log_failure)

    async def _close_now(self, code: int) -> None:
        # A timeout inside close() makes aiohttp drop the transport itself.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close(code), self._close_timeout)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, int):
                self._start_closer(item)
                return
            try:
                await self._send(item)
            except (ConnectionError, RuntimeError) as exc:
                # The socket went away under us; the reader side will notice and clean up.
                log.debug("%s: send failed: %s", self._name, exc)
                self.closed = True
                return

    async def stop(self) -> None:
        """Cancel and await the writer; let a started close finish (bounded by its timeout)."""
        self.closed = True
        tasks = [t for t in (self._writer, self._closer) if t is not None]
        if self._writer is not None:
            self._writer.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __len__(self) -> int:
        return self._queue.qsize()
