"""The ID-card display check: the face printed on the card held up to the
camera and the live face beside it must both match the same enrolment.

Owns: finding the two faces in one sampled frame (``find_card_and_live``,
worker side) and judging them (``judge``, cheap, server side).

The card's face is small: a 200×126 px card in a 640×480 frame carries a
~45 px face, below what HOG sees at upsample 0 (~80 px). Three ways, cheapest
first: a second, smaller face already found at upsample 0 (a card held close);
the region around where the card's face was last seen, cropped and enlarged
(a few ms; the server passes that position back as ``hint``); and the whole
frame at upsample 1 (~4× the upsample-0 cost, ~95 ms at 640×480), which only
runs while the card is being looked for.

Must never: pass on the live face alone, or on the card alone (a photo of the
card held up by someone else is caught because the live face must match too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from recognition import images
from recognition.models import Box, Image, detect, encode
from recognition.verify import DEFAULT_THRESHOLD, Enrolled, Face, Match, match

#: A card face is at most this fraction of the live face's size.
CARD_MAX_RATIO = 0.75
#: Enlarge the hinted region so the card face reaches about this size.
_TARGET_PX = 100
#: The hinted region extends this many face sizes around the last card face.
_HINT_MARGIN = 1.5

Method = Literal["direct", "hint", "upsample", "none"]
Reason = Literal[
    "ok", "no_live_face", "no_card_face", "live_mismatch", "card_mismatch", "different"
]


@dataclass(frozen=True, slots=True, eq=False)
class CardFaces:
    live: Face | None
    card: Face | None
    method: Method


@dataclass(frozen=True, slots=True)
class CardCheck:
    passed: bool
    reason: Reason
    #: The enrolment both faces matched (when passed).
    person_id: str | None
    live: Match | None
    card: Match | None
    live_box: Box | None
    card_box: Box | None


def _is_card_face(box: Box, live: Box) -> bool:
    return box.iou(live) < 0.1 and box.size <= live.size * CARD_MAX_RATIO


def _search_hint(frame: Image, hint: Box, live: Box) -> Face | None:
    h, w = frame.shape[:2]
    margin = round(hint.size * _HINT_MARGIN)
    region = Box(hint.left - margin, hint.top - margin, hint.right + margin, hint.bottom + margin)
    region = region.clipped(w, h)
    factor = max(1, min(4, math.ceil(_TARGET_PX / max(1, hint.size))))
    patch = images.crop(frame, region)
    big = images.enlarge(patch, factor) if factor > 1 else patch
    found = detect(big, 0)
    if not found:
        return None
    best = max(found, key=lambda b: b.area)
    in_frame = best.scaled(1 / factor).shifted(region.left, region.top)
    if not _is_card_face(in_frame, live):
        return None
    return Face(in_frame, encode(big, best))


def find_card_and_live(frame: Image, *, hint: Box | None = None) -> CardFaces:
    """The largest face is the live one; the card's is a smaller face apart from it."""
    boxes = detect(frame, 0)
    if not boxes:
        return CardFaces(None, None, "none")
    live_box = max(boxes, key=lambda b: b.area)
    live = Face(live_box, encode(frame, live_box))
    others = [b for b in boxes if _is_card_face(b, live_box)]
    if others:
        box = max(others, key=lambda b: b.area)
        return CardFaces(live, Face(box, encode(frame, box)), "direct")
    if hint is not None:
        found = _search_hint(frame, hint, live_box)
        if found is not None:
            return CardFaces(live, found, "hint")
    small = [b for b in detect(frame, 1) if _is_card_face(b, live_box)]
    if small:
        box = max(small, key=lambda b: b.area)
        return CardFaces(live, Face(box, encode(frame, box)), "upsample")
    return CardFaces(live, None, "none")


def judge(
    faces: CardFaces, enrolled: Sequence[Enrolled], threshold: float = DEFAULT_THRESHOLD
) -> CardCheck:
    """One frame's verdict; the gate votes over several (``verify.Vote``)."""
    live = faces.live
    card = faces.card
    live_match = (
        match(live.encoding, enrolled, threshold) if live and live.encoding is not None else None
    )
    card_match = (
        match(card.encoding, enrolled, threshold) if card and card.encoding is not None else None
    )
    live_box = live.box if live else None
    card_box = card.box if card else None

    def verdict(reason: Reason, person: str | None = None) -> CardCheck:
        return CardCheck(reason == "ok", reason, person, live_match, card_match, live_box, card_box)

    if live_match is None:
        return verdict("no_live_face")
    if card_match is None:
        return verdict("no_card_face")
    if live_match.person_id is None:
        return verdict("live_mismatch")
    if card_match.person_id is None:
        return verdict("card_mismatch")
    if live_match.person_id != card_match.person_id:
        return verdict("different")
    return verdict("ok", live_match.person_id)


def check_card(
    frame: Image,
    enrolled: Sequence[Enrolled],
    *,
    hint: Box | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> CardCheck:
    """Find and judge in one call (tests, the benchmark, a single-process setup)."""
    return judge(find_card_and_live(frame, hint=hint), enrolled, threshold)
