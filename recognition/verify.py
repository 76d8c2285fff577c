"""Matching live faces against enrolments, and the votes that decide.

Owns: the distance threshold, the N-of-the-last-M ``Vote`` and the
``FaceTracker`` that follows faces from sample to sample so that only new,
moved, still-undecided or due-for-re-verification faces are encoded (the
encoder costs ~75 ms a face, HOG detection 6–22 ms a frame).

Must never: decide on one frame. On the test photos the same person is at
0.06–0.53 and different people at ≥ 0.69, which puts the usual 0.6 threshold
in the gap; but frames of the enrolled person in the video clip reach 0.60,
so single frames near the threshold go either way and only agreement over
several samples counts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from recognition.models import Box, Encoding, distances

#: Same person below, different people at or above. Measured on the test
#: photos: same ≤ 0.53, different ≥ 0.69 (the midpoint is 0.61).
DEFAULT_THRESHOLD = 0.6

Verdict = Literal["undecided", "passed", "failed"]


@dataclass(frozen=True, slots=True, eq=False)
class Enrolled:
    """A person's stored encoding, as loaded for one visit."""

    person_id: str
    encoding: Encoding


@dataclass(frozen=True, slots=True)
class Match:
    """One face against the enrolled people: the nearest within the threshold
    (``person_id``, or None) and every distance, for the audit record."""

    person_id: str | None
    distance: float
    distances: tuple[tuple[str, float], ...]

    @property
    def matched(self) -> bool:
        return self.person_id is not None


def match(
    encoding: Encoding, enrolled: Sequence[Enrolled], threshold: float = DEFAULT_THRESHOLD
) -> Match:
    if not enrolled:
        return Match(None, float("inf"), ())
    ds = distances(np.stack([e.encoding for e in enrolled]), encoding)
    best = int(np.argmin(ds))
    pairs = tuple((e.person_id, round(float(d), 4)) for e, d in zip(enrolled, ds, strict=True))
    nearest = float(ds[best])
    return Match(enrolled[best].person_id if nearest < threshold else None, nearest, pairs)


class Vote:
    """Passes when ``needed`` of the last ``window`` samples were yes; fails
    when enough were no that passing within the window is impossible
    (``window - needed + 1`` noes). Sliding: a passed vote fails again if the
    yeses stop, which is what continuous re-verification needs."""

    def __init__(self, needed: int = 3, window: int = 5) -> None:
        if not 1 <= needed <= window:
            raise ValueError("need 1 <= needed <= window")
        self.needed = needed
        self.window = window
        self._samples: deque[bool] = deque(maxlen=window)

    def add(self, yes: bool) -> Verdict:
        self._samples.append(yes)
        return self.verdict

    @property
    def yes(self) -> int:
        return sum(self._samples)

    @property
    def no(self) -> int:
        return len(self._samples) - self.yes

    @property
    def samples(self) -> int:
        return len(self._samples)

    @property
    def last(self) -> bool | None:
        return self._samples[-1] if self._samples else None

    @property
    def verdict(self) -> Verdict:
        if self.yes >= self.needed:
            return "passed"
        if self.no > self.window - self.needed:
            return "failed"
        return "undecided"

    def reset(self) -> None:
        self._samples.clear()


@dataclass(frozen=True, slots=True, eq=False)
class Face:
    """A detected face; ``encoding`` is None when the worker was told it may
    skip it (a tracked face that has not moved and is not due)."""

    box: Box
    encoding: Encoding | None = None


@dataclass(slots=True, eq=False)
class Track:
    id: int
    box: Box
    vote: Vote
    first_seen: int
    last_seen: int
    encoded_at: int = -1
    match: Match | None = None
    history: list[Match] = field(default_factory=list)


class FaceTracker:
    """Follows faces across samples by box overlap and keeps one vote per face.

    ``skippable()`` lists the boxes whose faces need no new encoding this
    sample (decided, recently encoded, the latest sample agreeing); the worker detects every sample but
    encodes only the other faces. ``update()`` takes the worker's faces, adds a
    vote for each freshly encoded one (``yes = is_yes(match)``) and returns the
    live tracks. A face that moved (overlap below ``same_iou``) counts as new.
    """

    def __init__(
        self,
        enrolled: Sequence[Enrolled],
        *,
        is_yes: Callable[[Match], bool],
        threshold: float = DEFAULT_THRESHOLD,
        needed: int = 3,
        window: int = 5,
        same_iou: float = 0.5,
        reverify_every: int = 10,
        forget_after: int = 3,
    ) -> None:
        self.enrolled = list(enrolled)
        self.is_yes = is_yes
        self.threshold = threshold
        self.needed = needed
        self.window = window
        self.same_iou = same_iou
        self.reverify_every = reverify_every
        self.forget_after = forget_after
        self.sample = 0
        self.encodings = 0
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def skippable(self) -> list[Box]:
        return [t.box for t in self._tracks if self._settled(t)]

    def _settled(self, track: Track) -> bool:
        """Decided, and the latest sample agreed with the decision, and not due.
        A re-verification that disagrees makes the face dense-sampled again."""
        verdict = track.vote.verdict
        return (
            verdict != "undecided"
            and track.vote.last == (verdict == "passed")
            and self.sample - track.encoded_at < self.reverify_every
        )

    def _nearest(self, box: Box, taken: set[int]) -> Track | None:
        best: tuple[float, Track] | None = None
        for t in self._tracks:
            if t.id in taken:
                continue
            overlap = box.iou(t.box)
            if overlap >= self.same_iou and (best is None or overlap > best[0]):
                best = (overlap, t)
        return best[1] if best else None

    def update(self, faces: Sequence[Face]) -> list[Track]:
        self.sample += 1
        seen: set[int] = set()
        for face in faces:
            track = self._nearest(face.box, seen)
            if track is None:
                if face.encoding is None:
                    continue  # skipped by the worker yet unknown here: wait for the next sample
                track = Track(
                    id=self._next_id,
                    box=face.box,
                    vote=Vote(self.needed, self.window),
                    first_seen=self.sample,
                    last_seen=self.sample,
                )
                self._next_id += 1
                self._tracks.append(track)
            seen.add(track.id)
            track.box = face.box
            track.last_seen = self.sample
            if face.encoding is not None:
                result = match(face.encoding, self.enrolled, self.threshold)
                self.encodings += 1
                track.encoded_at = self.sample
                track.match = result
                track.history.append(result)
                del track.history[: -self.window]
                track.vote.add(self.is_yes(result))
        self._tracks = [t for t in self._tracks if self.sample - t.last_seen < self.forget_after]
        return [t for t in self._tracks if t.id in seen]
