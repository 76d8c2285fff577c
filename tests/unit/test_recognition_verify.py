"""Live faces against enrolments: the threshold, the vote, and the tracker that
encodes only what changed."""

from __future__ import annotations

import pytest

from recognition.analysis import detect_and_encode
from recognition.enrolment import enrol
from recognition.models import Box
from recognition.verify import Enrolled, Face, FaceTracker, Match, Vote, match
from tests.support.faces import live_frame
from tests.support.testdata import face


@pytest.fixture(scope="module")
def biden() -> Enrolled:
    return Enrolled("biden", enrol(face("biden_1.jpg").read_bytes()).encoding)


def live_face(name: str) -> Face:
    (found,) = detect_and_encode(live_frame(name))
    return found


def test_a_live_frame_of_the_enrolled_person_matches(biden: Enrolled) -> None:
    found = live_face("biden_2.jpg")
    assert found.encoding is not None
    result = match(found.encoding, [biden])
    assert result.person_id == "biden" and result.distance < 0.53
    assert result.distances == (("biden", round(result.distance, 4)),)


def test_a_live_frame_of_someone_else_does_not_match(biden: Enrolled) -> None:
    found = live_face("obama_1.jpg")
    assert found.encoding is not None
    result = match(found.encoding, [biden])
    assert result.person_id is None and not result.matched and result.distance > 0.69


def test_nobody_enrolled_matches_nothing(biden: Enrolled) -> None:
    assert match(biden.encoding, []) == Match(None, float("inf"), ())


def test_one_frame_never_decides_a_vote() -> None:
    vote = Vote(needed=3, window=5)
    assert vote.add(True) == "undecided"
    assert vote.add(True) == "undecided"
    assert vote.add(False) == "undecided"
    assert vote.add(True) == "passed"


def test_a_vote_fails_once_passing_is_out_of_reach_and_slides() -> None:
    vote = Vote(needed=3, window=5)
    for _ in range(2):
        vote.add(False)
    assert vote.verdict == "undecided"
    assert vote.add(False) == "failed"
    for _ in range(3):
        vote.add(True)
    assert vote.verdict == "passed"  # the old noes slid out of the window
    for _ in range(3):
        vote.add(False)
    assert vote.verdict == "failed"


def test_the_tracker_encodes_a_face_until_decided_then_only_to_reverify(biden: Enrolled) -> None:
    found = live_face("biden_2.jpg")
    tracker = FaceTracker([biden], is_yes=lambda m: m.matched, needed=2, window=3, reverify_every=3)
    assert tracker.skippable() == []
    tracker.update([found])
    assert tracker.skippable() == []  # undecided: encode again
    (track,) = tracker.update([found])
    assert track.vote.verdict == "passed"
    assert tracker.skippable() == [found.box]
    for _ in range(2):
        (same,) = tracker.update([Face(found.box)])  # the worker skipped it: no new vote
        assert same.id == track.id
        assert tracker.skippable() == [found.box]
    tracker.update([Face(found.box)])
    assert tracker.encodings == 2
    assert tracker.skippable() == []  # due for re-verification


def test_a_re_verification_that_disagrees_makes_the_face_encoded_every_sample(
    biden: Enrolled,
) -> None:
    found = live_face("biden_2.jpg")
    other = live_face("obama_1.jpg")
    tracker = FaceTracker([biden], is_yes=lambda m: m.matched, needed=2, window=3)
    tracker.update([found])
    tracker.update([found])
    assert tracker.skippable() == [found.box]
    (track,) = tracker.update([Face(found.box, other.encoding)])  # same place, no match now
    assert track.vote.verdict == "passed"  # 2 of the last 3 still say yes
    assert tracker.skippable() == []


def test_a_face_that_moved_is_a_new_face(biden: Enrolled) -> None:
    found = live_face("biden_2.jpg")
    tracker = FaceTracker([biden], is_yes=lambda m: m.matched)
    (first,) = tracker.update([found])
    moved = Box(found.box.left + 300, found.box.top, found.box.right + 300, found.box.bottom)
    (second,) = tracker.update([Face(moved, found.encoding)])
    assert second.id != first.id
