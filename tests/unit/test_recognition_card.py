"""The ID-card display check on synthetic frames made from the real photos:
a ~45 px face on a 200×126 card held in a 640×480 frame beside the live face."""

from __future__ import annotations

import pytest

from recognition.card import check_card, find_card_and_live, judge
from recognition.enrolment import enrol
from recognition.verify import Enrolled, Vote
from tests.support.faces import card_frame, live_frame
from tests.support.testdata import face


@pytest.fixture(scope="module")
def biden() -> list[Enrolled]:
    return [Enrolled("biden", enrol(face("biden_1.jpg").read_bytes()).encoding)]


def test_the_right_card_beside_the_right_face_passes(biden: list[Enrolled]) -> None:
    result = check_card(card_frame("biden_2.jpg", "biden_1.jpg"), biden)
    assert result.passed and result.reason == "ok" and result.person_id == "biden"
    assert result.live is not None and result.live.distance < 0.6
    assert result.card is not None and result.card.distance < 0.6
    assert result.card_box is not None and 30 <= result.card_box.size <= 60
    assert result.card_box.left >= 410  # where the card was pasted


def test_another_persons_card_fails(biden: list[Enrolled]) -> None:
    result = check_card(card_frame("biden_2.jpg", "obama_1.jpg"), biden)
    assert not result.passed and result.reason == "card_mismatch"
    assert result.card is not None and result.card.distance > 0.69


def test_the_right_card_held_by_someone_else_fails(biden: list[Enrolled]) -> None:
    result = check_card(card_frame("obama_1.jpg", "biden_1.jpg"), biden)
    assert not result.passed and result.reason == "live_mismatch"


def test_no_card_in_view_fails(biden: list[Enrolled]) -> None:
    result = check_card(live_frame("biden_2.jpg"), biden)
    assert not result.passed and result.reason == "no_card_face"


def test_the_last_card_position_lets_the_next_frame_skip_the_upsampled_search(
    biden: list[Enrolled],
) -> None:
    frame = card_frame("biden_2.jpg", "biden_1.jpg")
    first = find_card_and_live(frame)
    assert first.method == "upsample" and first.card is not None
    again = find_card_and_live(frame, hint=first.card.box)
    assert again.method == "hint" and again.card is not None
    assert again.card.box.iou(first.card.box) > 0.5
    assert judge(again, biden).passed


def test_the_gate_passes_only_after_several_agreeing_frames(biden: list[Enrolled]) -> None:
    found = find_card_and_live(card_frame("biden_2.jpg", "biden_1.jpg"))
    vote = Vote(needed=3, window=5)
    verdicts = [vote.add(judge(found, biden).passed) for _ in range(3)]
    assert verdicts == ["undecided", "undecided", "passed"]
