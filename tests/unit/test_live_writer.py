"""The bounded writer of each socket: a client that stops reading is cut off,
and a broadcast to it never waits, so the other clients carry on."""

from __future__ import annotations

import asyncio
import json

from server.live.protocol import CLOSE_TOO_SLOW
from server.live.writer import Outbox


class FakeSocket:
    """Records what is written; ``stalled`` makes every send hang like a full TCP buffer."""

    def __init__(self, stalled: bool = False) -> None:
        self.stalled = stalled
        self.sent: list[str] = []
        self.close_codes: list[int] = []
        self._never = asyncio.Event()

    async def send(self, text: str) -> None:
        if self.stalled:
            await self._never.wait()
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.close_codes.append(code)
        if self.stalled:  # the close frame cannot get through either
            await self._never.wait()


async def test_a_client_that_never_reads_is_disconnected_without_blocking_the_others() -> None:
    slow_socket, fast_socket = FakeSocket(stalled=True), FakeSocket()
    slow = Outbox(slow_socket.send, slow_socket.close, capacity=8, close_timeout=0.05)
    fast = Outbox(fast_socket.send, fast_socket.close, capacity=8)
    slow.start()
    fast.start()

    accepted = 0
    for n in range(50):  # a broadcast: put() returns at once for both
        accepted += slow.put({"type": "tick", "n": n})
        fast.put({"type": "tick", "n": n})
        await asyncio.sleep(0)  # the fast writer drains as it goes
    await asyncio.sleep(0.2)

    assert slow.overflowed and slow.closed
    assert accepted <= 8 + 1  # its queue, plus the frame stuck in send()
    assert slow_socket.close_codes == [CLOSE_TOO_SLOW]
    assert not slow.put({"type": "tick"})  # nothing more is queued for it
    assert [json.loads(t)["n"] for t in fast_socket.sent] == list(range(50))
    assert not fast.overflowed
    await slow.stop()
    await fast.stop()


async def test_finish_sends_what_is_queued_then_closes_with_the_code() -> None:
    socket = FakeSocket()
    outbox = Outbox(socket.send, socket.close)
    outbox.start()
    outbox.put({"type": "ended", "reason": "officer_cut", "message": "民警已中止会见"})
    outbox.finish(1000)
    assert not outbox.put({"type": "late"})
    await asyncio.sleep(0.05)
    assert [json.loads(t)["type"] for t in socket.sent] == ["ended"]
    assert "民警已中止会见" in socket.sent[0]  # UTF-8 text, not \\u escapes
    assert socket.close_codes == [1000]
    await outbox.stop()


async def test_stop_cancels_and_awaits_the_writer() -> None:
    socket = FakeSocket(stalled=True)
    outbox = Outbox(socket.send, socket.close)
    outbox.start()
    outbox.put({"type": "state"})
    await asyncio.sleep(0)
    await asyncio.wait_for(outbox.stop(), 1)
    assert outbox.closed
