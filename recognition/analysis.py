"""The work one worker does on one sampled frame: detect, then encode what is asked.

Owns: the request and result records that cross the process (or, later, the
Redis stream) boundary, and ``analyse()``, a pure function of the request.
Workers keep no per-visit state, so any worker on any machine can take any
frame; the state (tracks, votes, the card's last position) lives with the
visit on the server side and travels in the request as hints.

Must never: import aiohttp, aiortc or anything that needs an event loop.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Literal

from recognition import card as card_search
from recognition import images
from recognition.liveness import Pose, pose
from recognition.models import Box, Image, detect, encode
from recognition.verify import Face

Side = Literal["relative", "kiosk"]
#: ``watch``: every face in the frame (unexpected faces, re-verification);
#: ``card``: the live face and the smaller face on a held-up ID card (the gate);
#: ``liveness``: every face's pose (cheap: no encoding), and the followed face's
#: encoding when asked (the head-turn challenge, sampled ~10×/s).
Mode = Literal["watch", "card", "liveness"]

#: Faces smaller than this (in the sampled frame) are detected but not
#: encoded: below it the encoding is unreliable and would only cause false alerts.
MIN_ENCODE_PX = 40
#: A detected face that overlaps a ``skip`` box this much is the same, unmoved face.
SAME_IOU = 0.5


@dataclass(frozen=True, slots=True, eq=False)
class FrameRequest:
    visit_id: str
    side: Side
    seq: int
    frame: Image
    mode: Mode = "watch"
    #: Boxes of tracked faces that need no new encoding this time.
    skip: tuple[Box, ...] = ()
    #: Where the card's face was last seen (card mode), to search there cheaply first.
    card_hint: Box | None = None
    upsample: int = 0
    #: Liveness mode: the followed face, and whether to encode it this time.
    track: Box | None = None
    encode: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class FrameAnalysis:
    visit_id: str
    side: Side
    seq: int
    faces: tuple[Face, ...]
    card: Face | None
    card_method: str
    #: Card mode: the live face's pose (the liveness baseline); liveness mode: every face's.
    poses: tuple[Pose, ...]
    pid: int
    cpu_ms: float
    #: Set by the pool: seconds from ``submit`` to the result (queue + work).
    latency_s: float = 0.0


def detect_and_encode(
    frame: Image, *, skip: tuple[Box, ...] = (), upsample: int = 0
) -> tuple[Face, ...]:
    faces = []
    for box in detect(frame, upsample):
        unchanged = any(box.iou(s) >= SAME_IOU for s in skip)
        wanted = not unchanged and box.size >= MIN_ENCODE_PX
        faces.append(Face(box, encode(frame, box) if wanted else None))
    return tuple(faces)


#: Liveness samples are detected at half size when the frame is at least this wide
#: (6 ms instead of 22–28 ms at 640×480): the face held close for the gate is large.
_HALF_SIZE_FROM = 480


def detect_fast(frame: Image) -> list[Box]:
    """Large faces cheaply: at half size first, then at full size if none was found."""
    if frame.shape[1] >= _HALF_SIZE_FROM:
        small, back = images.downscale(frame, max(frame.shape[:2]) // 2)
        found = detect(small, 0)
        if found:
            h, w = frame.shape[:2]
            return [b.scaled(back).clipped(w, h) for b in found]
    return detect(frame, 0)


def poses_and_followed(
    frame: Image, *, track: Box | None, encode_followed: bool
) -> tuple[tuple[Pose, ...], tuple[Face, ...]]:
    boxes = detect_fast(frame)
    poses = tuple(pose(frame, b) for b in boxes)
    if not encode_followed or not boxes:
        return poses, ()
    if track is None:
        followed = max(boxes, key=lambda b: b.area)
    else:
        followed = min(boxes, key=lambda b: math.dist(b.center, track.center))
    if followed.size < MIN_ENCODE_PX:
        return poses, ()
    return poses, (Face(followed, encode(frame, followed)),)


def analyse(request: FrameRequest) -> FrameAnalysis:
    started = time.process_time()
    poses: tuple[Pose, ...] = ()
    if request.mode == "card":
        found = card_search.find_card_and_live(request.frame, hint=request.card_hint)
        faces: tuple[Face, ...] = (found.live,) if found.live else ()
        card, method = found.card, found.method
        if found.live is not None:
            poses = (pose(request.frame, found.live.box),)
    elif request.mode == "liveness":
        poses, faces = poses_and_followed(
            request.frame, track=request.track, encode_followed=request.encode
        )
        card, method = None, "none"
    else:
        faces = detect_and_encode(request.frame, skip=request.skip, upsample=request.upsample)
        card, method = None, "none"
    return FrameAnalysis(
        visit_id=request.visit_id,
        side=request.side,
        seq=request.seq,
        faces=faces,
        card=card,
        card_method=method,
        poses=poses,
        pid=os.getpid(),
        cpu_ms=(time.process_time() - started) * 1000,
    )
