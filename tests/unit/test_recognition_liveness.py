"""The head-turn challenge and the gate around it, on real landmarks from real pictures:
the video clip's lead really turns his head and passes; printed photos, tilted or
swapped, do not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from recognition.enrolment import enrol
from recognition.gate import GateRules, IdentityGate
from recognition.liveness import HeadTurnChallenge, Pose, TurnRules, pose
from recognition.models import Box, Image, detect
from recognition.verify import Enrolled
from tests.support import faces
from tests.support.gate import FixedChoice, sample_gate
from tests.support.testdata import face


def tilted(image: Image, k: float) -> Image:
    """A flat photo turned about its vertical axis: the far edge shrinks by ``k``."""
    h, w = image.shape[:2]
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(0, 0), (w * (1 - k / 2), h * k / 2), (w * (1 - k / 2), h * (1 - k / 2)), (0, h)]
    rows, rhs = [], []
    for (x, y), (sx, sy) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -sx * x, -sx * y])
        rhs.append(sx)
        rows.append([0, 0, 0, x, y, 1, -sy * x, -sy * y])
        rhs.append(sy)
    coeffs = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    out = PILImage.fromarray(image).transform(
        (w, h), PILImage.Transform.PERSPECTIVE, tuple(coeffs), PILImage.Resampling.BILINEAR
    )
    return np.ascontiguousarray(np.asarray(out), dtype=np.uint8)


def yaw(image: Image) -> float:
    boxes = detect(image, 0)
    assert boxes, "no face"
    return pose(image, max(boxes, key=lambda b: b.area)).yaw


def run_gate(frames: list[Image], gate: IdentityGate) -> list[str]:
    """The steps of the gate fed ``frames`` at its own pace (``tests.support.gate``)."""
    return [sample.update.step for sample in sample_gate(frames, gate)]


@pytest.fixture(scope="module")
def lead() -> list[Enrolled]:
    return [Enrolled("visitor-1", enrol(face(faces.CLIP_LEAD).read_bytes()).encoding)]


def test_yaw_is_near_the_middle_facing_the_camera_and_a_tilted_photo_barely_moves_it() -> None:
    for name in ("biden_1.jpg", "biden_2.jpg", "obama_1.jpg", faces.CLIP_LEAD):
        straight = yaw(faces.live_frame(name))
        assert 0.35 < straight < 0.75, name
        # The design's figures (liveness module doc): T ≤ 0.037 at 20 %, ≤ 0.07 at 40 %.
        for k, bound in ((0.2, 0.037), (0.4, 0.07)):
            moved = abs(yaw(tilted(faces.live_frame(name), k)) - straight)
            assert moved <= bound, (name, k, moved)


def test_a_real_head_turn_moves_the_yaw_by_more_than_the_challenge_asks() -> None:
    front = yaw(faces.clip_frames()[faces.CLIP_FRONT])
    turned = yaw(faces.clip_frames()[faces.CLIP_TURNED])
    assert front - turned > TurnRules().turn


@pytest.mark.parametrize("direction", ["right", "left"])
def test_the_clip_lead_turning_as_asked_passes_the_gate(
    direction: str, lead: list[Enrolled]
) -> None:
    gate = IdentityGate(lead, rng=FixedChoice(direction))
    steps = run_gate(faces.gate_sequence(direction=direction), gate)
    assert gate.outcome == "passed", steps
    assert f"turn_{direction}" in steps and "turn_back" in steps
    attempt = gate.evidence()[0]["liveness"][0]  # type: ignore[index]
    assert attempt["passed"] and attempt["direction"] == direction and attempt["breaks"] == 0


def test_turning_the_other_way_does_not_pass(lead: list[Enrolled]) -> None:
    rules = GateRules(liveness=TurnRules(timeout_s=6))
    gate = IdentityGate(lead, rules, rng=FixedChoice("left"))
    run_gate(faces.gate_sequence(direction="right"), gate)
    assert gate.outcome == "pending"
    assert gate.challenge is not None and gate.challenge.outcome is None


def test_a_printed_photo_tilted_to_and_fro_never_passes(lead: list[Enrolled]) -> None:
    """A photo of the visitor held up after the card passed: tilting it changes the
    picture but not the yaw coordinate enough, so the challenge times out."""
    front = faces.clip_frames()[faces.CLIP_FRONT]
    wobble = [tilted(front, k) for k in (0.0, 0.15, 0.3, 0.4, 0.3, 0.15)]
    wobble += [np.ascontiguousarray(tilted(front[:, ::-1], k)[:, ::-1]) for k in (0.15, 0.3, 0.4)]
    frames = [faces.with_card(front, faces.CLIP_LEAD)] * 60 + [
        f for f in wobble * 6 for _ in range(5)
    ]
    rules = GateRules(attempts=1, liveness=TurnRules(timeout_s=5))
    gate = IdentityGate(lead, rules, rng=FixedChoice("left"))
    steps = run_gate(frames, gate)
    assert gate.outcome == "failed", steps
    assert "passed" not in steps and "matched" not in steps


def test_two_printed_photos_swapped_do_not_pass() -> None:
    """obama_1 faces the camera, obama_2 is turned: swapping one for the other is a
    jump the chain does not bridge, however the two are tilted."""
    one, two = faces.live_frame("obama_1.jpg"), faces.live_frame("obama_2.jpg")
    assert yaw(one) - yaw(two) > TurnRules().turn  # the turned photo is turned far enough
    baseline = yaw(one)
    challenge = HeadTurnChallenge("right", baseline, 0.0, TurnRules(timeout_s=30))
    at, statuses = 0.0, []
    for picture in (one, two, one, tilted(one, 0.4), two, tilted(two, 0.4), one, two):
        for _ in range(4):
            boxes = detect(picture, 0)
            statuses.append(challenge.observe(at, [pose(picture, b) for b in boxes]).step)
            at += 0.1
    assert "confirm" not in statuses and challenge.outcome is None
    assert challenge.breaks >= 3


# --- the challenge's rules on their own (poses made up, no models) -----------------------------

BOX = Box(100, 100, 260, 260)


def poses_at(yaws: list[float], *, dt: float = 0.1, box: Box = BOX) -> list[tuple[float, Pose]]:
    return [(i * dt, Pose(box, y)) for i, y in enumerate(yaws)]


def feed(challenge: HeadTurnChallenge, samples: list[tuple[float, Pose]]) -> list[str]:
    steps: list[str] = []
    for at, p in samples:
        step = challenge.observe(at, [p]).step
        if step == "confirm":
            step = challenge.confirm_identity(True).step
        steps.append(step)
    return steps


def test_a_smooth_turn_and_back_passes() -> None:
    challenge = HeadTurnChallenge("left", 0.5, 0.0)
    yaws = [0.5, 0.55, 0.6, 0.66, 0.72, 0.77, 0.7, 0.62, 0.55]
    assert feed(challenge, poses_at(yaws))[-1] == "passed"


def test_a_jump_breaks_the_chain() -> None:
    challenge = HeadTurnChallenge("left", 0.5, 0.0)
    steps = feed(challenge, poses_at([0.5, 0.52, 0.8, 0.8, 0.6, 0.5]))
    assert "too_fast" in steps and challenge.outcome is None and challenge.breaks >= 1


def test_a_long_gap_breaks_the_chain() -> None:
    challenge = HeadTurnChallenge("left", 0.5, 0.0)
    samples = poses_at([0.5, 0.58, 0.66]) + [(0.8, Pose(BOX, 0.76)), (0.9, Pose(BOX, 0.6))]
    feed(challenge, samples)
    assert challenge.outcome is None and challenge.breaks >= 1


def test_a_face_that_jumps_elsewhere_breaks_the_chain() -> None:
    challenge = HeadTurnChallenge("left", 0.5, 0.0)
    far = Box(400, 100, 560, 260)
    samples = poses_at([0.5, 0.58, 0.66]) + poses_at([0.74, 0.8, 0.7, 0.6, 0.5], box=far)
    feed(challenge, [(i * 0.1, p) for i, (_, p) in enumerate(samples)])
    assert challenge.outcome is None and challenge.breaks >= 1


def test_the_face_that_comes_back_must_be_the_person() -> None:
    challenge = HeadTurnChallenge("right", 0.5, 0.0)
    for at, p in poses_at([0.5, 0.42, 0.34, 0.26, 0.22, 0.3, 0.38, 0.45]):
        if challenge.observe(at, [p]).step == "confirm":
            assert challenge.confirm_identity(False).step == "mismatch"
            break
    assert challenge.outcome == "mismatch"


def test_the_challenge_times_out() -> None:
    challenge = HeadTurnChallenge("left", 0.5, 0.0, TurnRules(timeout_s=2))
    steps = feed(challenge, poses_at([0.5] * 30))
    assert steps[-1] == "timeout"


T = 0.037  # the yaw change a 20 % tilt of a flat photo causes at most (measured above)


@settings(max_examples=400, deadline=None)
@given(
    a=st.floats(0.2, 0.8),
    b=st.floats(0.2, 0.8),
    tilt_at_baseline=st.floats(-T, T),
    pattern=st.lists(st.tuples(st.booleans(), st.floats(-T, T)), min_size=2, max_size=80),
    direction=st.sampled_from(["left", "right"]),
)
def test_two_photos_however_tilted_and_swapped_never_pass(
    a: float,
    b: float,
    tilt_at_baseline: float,
    pattern: list[tuple[bool, float]],
    direction: str,
) -> None:
    """Any sequence showing one of two fixed poses, each tilted by up to T, the baseline
    measured on the first (itself tilted): never a pass."""
    baseline = a + tilt_at_baseline
    challenge = HeadTurnChallenge(direction, baseline, 0.0, TurnRules(timeout_s=1e9))  # type: ignore[arg-type]
    for i, (second, tilt) in enumerate(pattern):
        status = challenge.observe(i * 0.1, [Pose(BOX, (b if second else a) + tilt)])
        assert status.step != "confirm"
