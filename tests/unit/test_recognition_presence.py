"""Continuous re-verification: an approved person out of view (or no longer matching)
for the configured time is reported once, and once again when back."""

from __future__ import annotations

import numpy as np

from recognition.models import Box
from recognition.presence import PresenceWatch
from recognition.verify import Enrolled, Face, FaceTracker

ME = np.zeros(128)
STRANGER = np.full(128, 0.2)  # distance 2.26 from ME: nobody approved
BOX = Box(100, 100, 260, 260)


def tracker() -> FaceTracker:
    return FaceTracker([Enrolled("visitor-1", ME)], is_yes=lambda m: not m.matched, window=4)


def sample(t: FaceTracker, encodings: list[np.ndarray]) -> list:  # type: ignore[type-arg]
    t.update([Face(BOX.shifted(200 * i, 0), e) for i, e in enumerate(encodings)])
    return [track for track in t.tracks if track.last_seen == t.sample]


def test_present_all_along_says_nothing() -> None:
    t, watch = tracker(), PresenceWatch(["visitor-1"], timeout_s=5, started_at=0)
    assert all(not watch.observe(float(at), sample(t, [ME])) for at in range(30))


def test_out_of_view_for_the_timeout_is_reported_once_and_back_once() -> None:
    t, watch = tracker(), PresenceWatch(["visitor-1"], timeout_s=5, started_at=0)
    changes = []
    for at in range(40):
        faces = [ME] if at < 10 or at >= 25 else []
        changes += watch.observe(float(at), sample(t, faces))
    assert [(c.status, c.seconds) for c in changes] == [("absent", 5.0), ("back", 16.0)]


def test_a_short_look_away_is_not_reported() -> None:
    t, watch = tracker(), PresenceWatch(["visitor-1"], timeout_s=5, started_at=0)
    changes = []
    for at in range(30):
        changes += watch.observe(float(at), sample(t, [] if 10 <= at < 14 else [ME]))
    assert changes == []


def test_a_face_that_no_longer_matches_counts_as_absent() -> None:
    """Someone else in the visitor's place: the visitor is not there."""
    t, watch = tracker(), PresenceWatch(["visitor-1"], timeout_s=5, started_at=0)
    changes = []
    for at in range(20):
        changes += watch.observe(float(at), sample(t, [ME] if at < 5 else [STRANGER]))
    assert [c.status for c in changes] == ["absent"]


def test_never_seen_counts_from_the_start() -> None:
    watch = PresenceWatch(["visitor-1"], timeout_s=5, started_at=100)
    assert watch.observe(104, []) == []
    (change,) = watch.observe(105.5, [])
    assert change.status == "absent" and watch.absent == {"visitor-1"}
