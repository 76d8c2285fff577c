"""Unexpected faces: obama_and_biden.jpg with only Biden approved."""

from __future__ import annotations

import numpy as np
import pytest

from recognition import images
from recognition.analysis import detect_and_encode
from recognition.enrolment import enrol
from recognition.models import distance
from recognition.unexpected import UnexpectedFaceWatch
from recognition.verify import Enrolled
from tests.support.faces import live_frame, photo
from tests.support.testdata import face


@pytest.fixture(scope="module")
def biden() -> Enrolled:
    return Enrolled("biden", enrol(face("biden_1.jpg").read_bytes()).encoding)


@pytest.fixture(scope="module")
def obama_and_biden() -> np.ndarray:
    frame, _ = images.downscale(photo("obama_and_biden.jpg"), 1000)
    return frame


def test_obama_is_flagged_when_only_biden_is_approved(
    biden: Enrolled, obama_and_biden: np.ndarray
) -> None:
    faces = detect_and_encode(obama_and_biden)
    obama_ref = enrol(face("obama_1.jpg").read_bytes()).encoding
    (obama_box,) = [
        f.box for f in faces if f.encoding is not None and distance(f.encoding, obama_ref) < 0.6
    ]
    (biden_box,) = [
        f.box
        for f in faces
        if f.encoding is not None and distance(f.encoding, biden.encoding) < 0.6
    ]

    watch = UnexpectedFaceWatch([biden], needed=3, window=4)
    raised = [watch.observe(faces) for _ in range(4)]
    assert raised[0] == [] and raised[1] == []  # one or two frames never alert
    alerts = raised[2]
    assert obama_box in [a.box for a in alerts]
    assert biden_box not in [a.box for a in alerts]
    obama_alert = next(a for a in alerts if a.box == obama_box)
    assert obama_alert.distance > 0.69
    assert obama_alert.distances == (("biden", round(obama_alert.distance, 4)),)
    assert obama_alert.votes == 3 and obama_alert.window == 4
    assert raised[3] == []  # each face alerts once while it stays in view


def test_the_approved_person_alone_never_alerts_and_is_not_re_encoded_every_frame(
    biden: Enrolled,
) -> None:
    watch = UnexpectedFaceWatch([biden], needed=3, window=4, reverify_every=10)
    frame = live_frame("biden_2.jpg")
    for _ in range(8):
        assert watch.observe_frame(frame) == []
    # encoded until the vote decided "known" (2 known of 4 rule out 3 unknown), then skipped
    assert watch.tracker.encodings == 2


def test_a_face_that_flickers_between_known_and_unknown_does_not_alert(biden: Enrolled) -> None:
    faces = detect_and_encode(live_frame("obama_1.jpg"))
    known = detect_and_encode(live_frame("biden_2.jpg"))
    watch = UnexpectedFaceWatch([biden], needed=3, window=4)
    # Same place in the frame, alternating identities: never 3 unknowns of 4.
    for i in range(6):
        assert watch.observe(faces if i % 2 else known) == []
