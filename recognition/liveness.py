"""Liveness: a head-turn challenge, judged from landmarks against the person's own baseline.

A photo held to the camera is not a person. During the gate the visitor is asked to turn
the head slowly to one side (chosen at random, so a prepared clip does not know which)
and back. The server samples fast (``TURN_INTERVAL``) and the worker returns, per face,
a *pose*: the box and a yaw coordinate measured from the 68-point landmarks.

The yaw coordinate is the nose tip's barycentric weight towards the left jaw end in the
triangle (right jaw end, left jaw end, chin): about 0.5 facing the camera, towards 1 when
the person turns to their left (the nose moves towards the image's right), towards 0 to
their right. Barycentric coordinates do not change under an affine map, so moving,
scaling or rotating a flat photo leaves it where it was, and tilting one (a perspective
map) moves it little: measured on the test photos, ≤ 0.037 for a tilt that shortens the
far edge by 20 %, ≤ 0.07 at 40 %. A real head turn moves it by 0.3–0.5 (the video clip's
lead: 0.53 → 0.20 in half a second).

The challenge passes when one unbroken chain of samples goes from the baseline (the
person's own yaw while the card was checked) to ``turn`` past it in the asked direction
and comes back to face the camera, and the face that comes back still matches the
enrolment. A chain breaks on a jump: a yaw step above ``max_step`` between consecutive
samples, a gap longer than ``max_gap_s``, or the face box jumping or changing size.

Two printed photos (one facing the camera, one turned, swapped): the swap is one step of
at most ``max_step``, and tilting can add at most T before it (and in the baseline) and
2·T after it, so they reach at most ``max_step`` + 4·T = 0.09 + 4 × 0.037 = 0.238 < ``turn``
(0.25) while tilted by up to 20 %. A photo tilted further (≥ ~30 %, a heavily foreshortened
face) and swapped in one step without the face box jumping is outside that bound.

What it does not stop (say so to whoever deploys it): a video of the person turning their
head played on a screen held to the camera (a replay), a virtual camera injecting such a
video or a deepfake, a 3-D mask, a flip-book of several photos of intermediate poses, and
photos tilted very steeply as above. The officer watching the gate is the check on those;
the gate's snapshot and figures are in the ledger.

Must never: judge on one sample, or measure against a population's "frontal" instead of
the person's own baseline (people hold phones at an angle; faces are not symmetric).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from recognition.models import Box, Image, landmarks68

Direction = Literal["left", "right"]
#: ``turn``: turn (further) to the asked side; ``back``: face the camera again;
#: ``front``: face the camera before starting; ``too_fast``: the chain broke;
#: ``confirm``: facing front again, waiting for the identity of that frame;
#: ``passed``; ``mismatch``: the face that came back is not the person; ``timeout``.
Step = Literal["front", "turn", "too_fast", "back", "confirm", "passed", "mismatch", "timeout"]

#: Seconds between samples while a challenge runs (the tap's interval then).
TURN_INTERVAL = 0.1

_JAW_RIGHT, _JAW_LEFT, _CHIN, _NOSE_TIP = 0, 16, 8, 30


def yaw_of(points: npt.NDArray[np.float64]) -> float:
    """The nose tip's barycentric weight towards the left jaw end (see the module doc)."""
    right, left, chin, nose = (
        points[_JAW_RIGHT],
        points[_JAW_LEFT],
        points[_CHIN],
        points[_NOSE_TIP],
    )
    basis = np.column_stack([right - chin, left - chin])
    if abs(float(np.linalg.det(basis))) < 1e-6:
        return 0.5  # a degenerate shape (the predictor's guess on a non-face)
    u, v = np.linalg.solve(basis, nose - chin)
    total = float(u + v)
    if not math.isfinite(total) or abs(total) < 1e-6:
        return 0.5
    return float(v) / total


@dataclass(frozen=True, slots=True)
class Pose:
    box: Box
    yaw: float


def pose(image: Image, box: Box) -> Pose:
    return Pose(box, round(yaw_of(landmarks68(image, box)), 4))


@dataclass(frozen=True, slots=True)
class TurnRules:
    #: How far past the baseline the yaw must go (0.25, about a 20–25° turn: see the module doc).
    turn: float = 0.25
    #: The largest yaw change between consecutive samples of one chain.
    max_step: float = 0.09
    #: Within this of the baseline counts as facing the camera (start and return).
    front_tolerance: float = 0.1
    #: The longest gap between consecutive samples of one chain (face lost, frames dropped).
    max_gap_s: float = 0.45
    #: The face centre may move this many face sizes between consecutive samples.
    max_shift: float = 0.5
    #: The face size may change by this factor between consecutive samples.
    max_scale: float = 1.3
    #: Seconds allowed for one attempt.
    timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class ChallengeStatus:
    step: Step
    #: 0..1: how far the turn has got towards ``turn``.
    progress: float


@dataclass(slots=True)
class HeadTurnChallenge:
    """One attempt for one person. Feed it every sample (``observe``); when it says
    ``confirm``, the next frame's identity is wanted (``confirm_identity``)."""

    direction: Direction
    baseline: float
    started_at: float
    rules: TurnRules = field(default_factory=TurnRules)
    #: The face box being followed (the live face of the card check, then each sample's).
    box: Box | None = None
    phase: Literal["waiting", "turning", "returning", "done"] = "waiting"
    last_at: float | None = None
    last_yaw: float | None = None
    peak: float = 0.0
    samples: int = 0
    breaks: int = 0
    outcome: Step | None = None

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "left" else -1.0

    def displacement(self, yaw: float) -> float:
        return self.sign * (yaw - self.baseline)

    def pick(self, poses: list[Pose] | tuple[Pose, ...]) -> Pose | None:
        """The sample's face that continues the followed one (nearest centre)."""
        if not poses:
            return None
        if self.box is None:
            return max(poses, key=lambda p: p.box.area)
        cx, cy = self.box.center
        return min(poses, key=lambda p: math.dist(p.box.center, (cx, cy)))

    def _continues(self, at: float, p: Pose) -> bool:
        r = self.rules
        if self.last_at is None or self.last_yaw is None or self.box is None:
            return True
        if at - self.last_at > r.max_gap_s or abs(p.yaw - self.last_yaw) > r.max_step:
            return False
        size = max(1, self.box.size)
        if math.dist(p.box.center, self.box.center) > r.max_shift * size:
            return False
        ratio = max(p.box.size, 1) / size
        return 1 / r.max_scale <= ratio <= r.max_scale

    def _restart(self) -> None:
        self.phase = "waiting"
        self.peak = 0.0

    def observe(self, at: float, poses: list[Pose] | tuple[Pose, ...]) -> ChallengeStatus:
        if self.outcome is not None:
            return ChallengeStatus(self.outcome, 1.0 if self.outcome == "passed" else 0.0)
        if at - self.started_at > self.rules.timeout_s:
            self.outcome = "timeout"
            self.phase = "done"
            return ChallengeStatus("timeout", 0.0)
        p = self.pick(poses)
        r = self.rules
        broke = False
        if p is None:
            # No face this sample: a chain survives only a short gap (checked on the next face).
            if self.phase in ("turning", "returning") and (
                self.last_at is not None and at - self.last_at > r.max_gap_s
            ):
                broke = True
                self.breaks += 1
                self._restart()
            return ChallengeStatus("too_fast" if broke else self._hint(), self._progress())
        self.samples += 1
        if self.phase != "waiting" and not self._continues(at, p):
            broke = True
            self.breaks += 1
            self._restart()
        self.box, self.last_at, self.last_yaw = p.box, at, p.yaw
        moved = self.displacement(p.yaw)
        if self.phase == "waiting":
            if abs(moved) <= r.front_tolerance:
                self.phase = "turning"
                self.peak = max(0.0, moved)
            return ChallengeStatus("too_fast" if broke else self._hint(), self._progress())
        if self.phase == "turning":
            if moved < -r.front_tolerance:
                self._restart()  # turned the other way: no harm, start again from the front
                return ChallengeStatus("front", 0.0)
            self.peak = max(self.peak, moved)
            if self.peak >= r.turn:
                self.phase = "returning"
        if self.phase == "returning" and abs(moved) <= r.front_tolerance:
            return ChallengeStatus("confirm", 1.0)
        return ChallengeStatus(self._hint(), self._progress())

    @property
    def wants_identity(self) -> bool:
        """Returning from the turn: the next frames' followed face should be encoded."""
        return self.phase == "returning" and self.outcome is None

    def confirm_identity(self, matched: bool) -> ChallengeStatus:
        """The identity of a ``confirm`` frame (facing front after the turn)."""
        self.outcome = "passed" if matched else "mismatch"
        self.phase = "done"
        return ChallengeStatus(self.outcome, 1.0 if matched else 0.0)

    def _hint(self) -> Step:
        if self.phase == "waiting":
            return "front"
        if self.phase == "returning":
            return "back"
        return "turn"

    def _progress(self) -> float:
        if self.phase == "returning":
            return 1.0
        if self.phase == "turning":
            return round(min(1.0, self.peak / self.rules.turn), 2)
        return 0.0

    def evidence(self) -> dict[str, object]:
        """What the ledger keeps of the attempt."""
        return {
            "direction": self.direction,
            "baseline": round(self.baseline, 3),
            "peak": round(self.peak, 3),
            "samples": self.samples,
            "breaks": self.breaks,
            "passed": self.outcome == "passed",
        }
