"""The synthetic frames the recognition tests build are what they claim to be."""

from __future__ import annotations

import pytest

from recognition.models import detect
from tests.support.faces import (
    CARD_H,
    CARD_W,
    FRAME_H,
    FRAME_W,
    blank_photo,
    card,
    card_frame,
    live_frame,
)


@pytest.mark.parametrize("name", ["biden_2.jpg", "obama_1.jpg"])
def test_a_live_frame_is_640_by_480_with_one_face_findable_at_upsample_0(name: str) -> None:
    frame = live_frame(name)
    assert frame.shape == (FRAME_H, FRAME_W, 3)
    (box,) = detect(frame, 0)
    assert 140 <= box.size <= 200


def test_the_card_is_card_sized_and_its_face_is_below_what_upsample_0_sees() -> None:
    assert card("biden_1.jpg").shape == (CARD_H, CARD_W, 3)
    frame = card_frame("biden_2.jpg", "biden_1.jpg")
    assert len(detect(frame, 0)) == 1
    small = [b for b in detect(frame, 1) if b.left >= 410]
    assert len(small) == 1 and 30 <= small[0].size <= 60


def test_the_blank_photo_has_no_face() -> None:
    assert detect(blank_photo(), 1) == []
