"""Driving an ``IdentityGate`` over composed frames the way the server samples them.

The unit tests, the integration and end-to-end tests and the benchmark fix which way the
gate asks to turn (``FixedChoice``) and sample frames at the gate's own pace
(``sample_gate``), so they exercise the same pacing as ``server.faces``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from recognition.analysis import FrameAnalysis, FrameRequest, Mode, analyse
from recognition.gate import GateUpdate, IdentityGate
from recognition.models import Image

if TYPE_CHECKING:
    from _typeshed import SupportsLenAndGetItem

_T = TypeVar("_T")


class FixedChoice(random.Random):
    """An rng whose ``choice`` is known: the direction the gate asks to turn."""

    def __init__(self, value: str) -> None:
        super().__init__(0)
        self.value = value

    def choice(self, seq: SupportsLenAndGetItem[_T]) -> _T:
        options = [seq[i] for i in range(len(seq))]
        assert self.value in options
        return options[options.index(self.value)]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class GateSample:
    at: float
    mode: Mode
    result: FrameAnalysis
    update: GateUpdate


def sample_gate(
    frames: Sequence[Image], gate: IdentityGate, fps: float = 30.0
) -> Iterator[GateSample]:
    """Sample ``frames`` (a camera at ``fps``) every ``gate.interval`` seconds, analyse each
    sample with the real models in this process and feed the gate, until it decides."""
    last = float("-inf")
    for index, frame in enumerate(frames):
        at, mode, interval = index / fps, gate.mode, gate.interval
        if mode is None or interval is None:
            return
        if at - last < interval:
            continue
        last = at
        request = FrameRequest(
            "test", "relative", index, frame, mode,
            card_hint=gate.card_hint, track=gate.track, encode=gate.encode,
        )  # fmt: skip
        result = analyse(request)
        yield GateSample(at, mode, result, gate.on_result(at, result))
