"""Continuous re-verification: is each approved person of a side still in view, and still
themselves?

Owns: per approved person, when a face matching them was last seen (from the tracks of
``verify.FaceTracker``: a track whose latest encoding matched them and whose vote has not
turned to "unknown"), and the change records the server turns into a notice to the
officer and a ledger event: ``absent`` once the person has not been seen for ``timeout_s``
(out of view, or their face no longer matches), ``back`` when they are seen again.

Must never: nag. One ``absent`` per absence, one ``back`` per return; a person only
counts as missing after having been seen once (the gate saw them) and after a timeout of
many samples, so turning away, a hand over the face or a bad frame does not notify.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from recognition.verify import Track

Status = Literal["absent", "back"]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    person_id: str
    status: Status
    #: Seconds since the person was last seen (absent), or how long they were away (back).
    seconds: float


class PresenceWatch:
    def __init__(self, people: Sequence[str], *, timeout_s: float, started_at: float) -> None:
        self.timeout_s = timeout_s
        #: Until first seen, the watch counts from its start (the gate saw them just now).
        self._last_seen = {p: started_at for p in people}
        self._absent: set[str] = set()

    def observe(self, at: float, tracks: Iterable[Track]) -> list[PresenceChange]:
        changes: list[PresenceChange] = []
        seen = {
            t.match.person_id
            for t in tracks
            if t.match is not None
            and t.match.person_id is not None
            and t.vote.verdict != "passed"  # "passed" = agreed unknown: not them
        }
        for person, last in self._last_seen.items():
            if person in seen:
                if person in self._absent:
                    self._absent.discard(person)
                    changes.append(PresenceChange(person, "back", round(at - last, 1)))
                self._last_seen[person] = at
            elif person not in self._absent and at - last >= self.timeout_s:
                self._absent.add(person)
                changes.append(PresenceChange(person, "absent", round(at - last, 1)))
        return changes

    @property
    def absent(self) -> frozenset[str]:
        return frozenset(self._absent)
