"""Unexpected faces: a face that matches none of the side's approved people,
agreed over several samples, becomes an alert record for the officer.

Owns: the per-side watch (visitors on the relative side; the detainee, and
officers on duty if enrolled, on the kiosk side) and the alert record with the
face box and the distances, which the server turns into an audit event, a
snapshot and a message to the watching officers (and, by facility policy, a cut).

Must never: alert on one frame. Turning away, poor light and partial faces
give single bad encodings; an alert needs ``needed`` unknown samples among the
last ``window`` of the same tracked face. Faces too small to encode reliably
(``analysis.MIN_ENCODE_PX``) are not judged at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recognition.analysis import detect_and_encode
from recognition.models import Box, Image
from recognition.verify import DEFAULT_THRESHOLD, Enrolled, Face, FaceTracker, Match, Track


@dataclass(frozen=True, slots=True)
class UnexpectedFaceAlert:
    track_id: int
    box: Box
    #: Nearest approved person's distance (inf when nobody is approved).
    distance: float
    #: Distance to every approved person, from the latest sample.
    distances: tuple[tuple[str, float], ...]
    #: Unknown samples among the last ``window`` that raised the alert.
    votes: int
    window: int
    first_seen: int
    sample: int


def _unknown(result: Match) -> bool:
    return not result.matched


class UnexpectedFaceWatch:
    """Feed it each sample's faces (``observe``); it returns the alerts raised
    by that sample, each face at most once while it stays in view."""

    def __init__(
        self,
        approved: Sequence[Enrolled],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        needed: int = 3,
        window: int = 4,
        reverify_every: int = 10,
        forget_after: int = 3,
    ) -> None:
        self.tracker = FaceTracker(
            approved,
            is_yes=_unknown,
            threshold=threshold,
            needed=needed,
            window=window,
            reverify_every=reverify_every,
            forget_after=forget_after,
        )
        self._alerted: set[int] = set()

    def skippable(self) -> list[Box]:
        """Boxes the worker need not encode in the next sample."""
        return self.tracker.skippable()

    def observe(self, faces: Sequence[Face]) -> list[UnexpectedFaceAlert]:
        alerts = []
        for track in self.tracker.update(faces):
            if track.vote.verdict == "passed" and track.id not in self._alerted:
                self._alerted.add(track.id)
                alerts.append(self._alert(track))
        live = {t.id for t in self.tracker.tracks}
        self._alerted &= live
        return alerts

    def observe_frame(self, frame: Image) -> list[UnexpectedFaceAlert]:
        """Detect, encode and observe in this process (tests, the benchmark)."""
        return self.observe(detect_and_encode(frame, skip=tuple(self.skippable())))

    def _alert(self, track: Track) -> UnexpectedFaceAlert:
        assert track.match is not None
        return UnexpectedFaceAlert(
            track_id=track.id,
            box=track.box,
            distance=track.match.distance,
            distances=track.match.distances,
            votes=track.vote.yes,
            window=track.vote.window,
            first_seen=track.first_seen,
            sample=self.tracker.sample,
        )
