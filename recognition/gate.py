"""The identity gate of one visit: every approved visitor shows the ID card beside the
face, then turns the head on request; the visit goes live when all have passed.

Owns: the order of the steps for each visitor (card check by votes, then the head-turn
challenge, then the identity of the face that turned), the retry limit shared by all
visitors, what the relative is told at each sample (``GateUpdate.step``), which kind of
analysis the next sample needs (``mode``, ``track``, ``encode``, ``hint``), and the
evidence for the ledger (each frame's distances, the challenge's figures).

Pure: fed the workers' results with the time of their frame; knows nothing of sockets,
the pool or the database, so the server, the tests and the benchmark drive the same code.

Must never: pass a visitor on the card alone, on one frame, or on a face that did not
move on request (``liveness``); or keep a visitor waiting forever (a limit of
``attempts`` failed tries in all, then the officer decides).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from recognition.analysis import FrameAnalysis, Mode
from recognition.card import CardCheck, CardFaces, judge
from recognition.liveness import TURN_INTERVAL, Direction, HeadTurnChallenge, TurnRules
from recognition.models import Box
from recognition.verify import DEFAULT_THRESHOLD, Enrolled, Vote, match

Step = Literal[
    "face",
    "card",
    "hold_still",
    "mismatch",
    "turn_left",
    "turn_right",
    "turn_back",
    "too_fast",
    "matched",
    "passed",
    "failed",
]
Outcome = Literal["pending", "passed", "failed"]

#: Seconds between samples while the ID card is checked (3 votes in about a second).
CARD_INTERVAL = 1 / 3


@dataclass(frozen=True, slots=True)
class GateRules:
    #: Card + live face matching in ``needed`` of the last ``window`` samples.
    needed: int = 3
    window: int = 5
    #: Failed tries (a failed card vote, a failed or timed-out challenge) before the
    #: officer decides.
    attempts: int = 3
    #: None: no head-turn challenge (a facility that has not enabled it).
    liveness: TurnRules | None = field(default_factory=TurnRules)
    threshold: float = DEFAULT_THRESHOLD


@dataclass(frozen=True, slots=True)
class GateUpdate:
    step: Step
    person: str | None
    votes: int
    needed: int
    passed_people: int
    people: int
    attempts_left: int
    challenge: Direction | None
    progress: float
    outcome: Outcome


@dataclass(slots=True)
class _Person:
    vote: Vote
    card_frames: list[dict[str, object]] = field(default_factory=list)
    yaws: list[float] = field(default_factory=list)
    live_box: Box | None = None
    attempts: list[dict[str, object]] = field(default_factory=list)
    passed: bool = False


class IdentityGate:
    def __init__(
        self,
        people: Sequence[Enrolled],
        rules: GateRules | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if not people:
            raise ValueError("a gate needs at least one enrolled person")
        self.people = list(people)
        self.rules = rules or GateRules()
        self.rng = rng or random.SystemRandom()
        self._state = {
            p.person_id: _Person(Vote(self.rules.needed, self.rules.window)) for p in people
        }
        self.failures = 0
        self.outcome: Outcome = "pending"
        self.card_hint: Box | None = None
        self.challenge: HeadTurnChallenge | None = None
        self.challenged: str | None = None

    # -- what the next sample needs --

    @property
    def mode(self) -> Mode | None:
        if self.outcome != "pending":
            return None
        return "liveness" if self.challenge is not None else "card"

    @property
    def interval(self) -> float | None:
        """Seconds between the samples the current step needs (None once decided)."""
        mode = self.mode
        if mode is None:
            return None
        return TURN_INTERVAL if mode == "liveness" else CARD_INTERVAL

    @property
    def track(self) -> Box | None:
        return self.challenge.box if self.challenge is not None else None

    @property
    def encode(self) -> bool:
        return self.challenge is not None and self.challenge.wants_identity

    @property
    def attempts_left(self) -> int:
        return max(0, self.rules.attempts - self.failures)

    # -- results in --

    def on_result(self, at: float, result: FrameAnalysis) -> GateUpdate:
        """One worker result for a frame sampled at ``at`` (seconds, monotonic)."""
        if self.outcome != "pending":
            return self._update("passed" if self.outcome == "passed" else "failed", None)
        if self.challenge is not None:
            return self._on_pose(at, result)
        return self._on_card(at, result)

    def _on_card(self, at: float, result: FrameAnalysis) -> GateUpdate:
        live = result.faces[0] if result.faces else None
        check = judge(CardFaces(live, result.card, "none"), self.people, self.rules.threshold)
        if check.card_box is not None:
            self.card_hint = check.card_box
        person = check.person_id or (check.live.person_id if check.live else None)
        if person is not None and self._state[person].passed:
            return self._update("matched", person)  # already through: the next visitor's turn
        if check.passed and person is not None:
            state = self._state[person]
            state.vote.add(True)
            state.card_frames.append(_card_evidence(check, result.seq))
            del state.card_frames[: -self.rules.window]
            if result.poses:
                state.yaws.append(result.poses[0].yaw)
                del state.yaws[: -self.rules.window]
            state.live_box = check.live_box
            if state.vote.verdict == "passed":
                return self._card_passed(at, person)
            return self._update("hold_still", person)
        if check.reason == "no_live_face":
            return self._update("face", person)
        if check.reason == "no_card_face":
            return self._update("card", person)
        if person is not None and self._state[person].vote.add(False) == "failed":
            self._state[person].vote.reset()
            self._failed()
        return self._update("mismatch", person)

    def _card_passed(self, at: float, person: str) -> GateUpdate:
        if self.rules.liveness is None:
            return self._person_passed(person)
        self._challenge(at, person)
        return self._update(self._turn_step(), person)

    def _challenge(self, at: float, person: str) -> None:
        state = self._state[person]
        assert self.rules.liveness is not None
        direction: Direction = self.rng.choice(("left", "right"))
        baseline = statistics.median(state.yaws) if state.yaws else 0.5
        self.challenge = HeadTurnChallenge(
            direction, baseline, at, self.rules.liveness, box=state.live_box
        )
        self.challenged = person

    def _turn_step(self) -> Step:
        assert self.challenge is not None
        return "turn_left" if self.challenge.direction == "left" else "turn_right"

    def _on_pose(self, at: float, result: FrameAnalysis) -> GateUpdate:
        challenge, person = self.challenge, self.challenged
        assert challenge is not None and person is not None
        status = challenge.observe(at, result.poses)
        if status.step == "confirm":
            face = result.faces[0] if result.faces else None
            if face is None or face.encoding is None:
                return self._update("turn_back", person, progress=1.0)
            found = match(face.encoding, self.people, self.rules.threshold)
            status = challenge.confirm_identity(found.person_id == person)
        if status.step in ("passed", "mismatch", "timeout"):
            state = self._state[person]
            state.attempts.append(challenge.evidence())
            self.challenge = self.challenged = None
            if status.step == "passed":
                return self._person_passed(person)
            self._failed()
            if self.outcome == "failed":
                return self._update("failed", person)
            self._challenge(at, person)  # again, with a new direction
            return self._update("mismatch" if status.step == "mismatch" else "too_fast", person)
        step: Step
        if status.step in ("front", "back"):
            step = "turn_back"
        elif status.step == "too_fast":
            step = "too_fast"
        else:
            step = self._turn_step()
        return self._update(step, person, progress=status.progress)

    def _person_passed(self, person: str) -> GateUpdate:
        self._state[person].passed = True
        if all(s.passed for s in self._state.values()):
            self.outcome = "passed"
            return self._update("passed", person)
        return self._update("matched", person)

    def _failed(self) -> None:
        self.failures += 1
        if self.failures >= self.rules.attempts:
            self.outcome = "failed"
            self.challenge = self.challenged = None

    def _update(self, step: Step, person: str | None, *, progress: float = 0.0) -> GateUpdate:
        state = self._state.get(person) if person else None
        if self.outcome == "failed":
            step = "failed"
        return GateUpdate(
            step=step,
            person=person,
            votes=state.vote.yes if state else 0,
            needed=self.rules.needed,
            passed_people=sum(1 for s in self._state.values() if s.passed),
            people=len(self._state),
            attempts_left=self.attempts_left,
            challenge=self.challenge.direction if self.challenge is not None else None,
            progress=progress,
            outcome=self.outcome,
        )

    # -- for the ledger --

    def evidence(self) -> list[dict[str, object]]:
        return [
            {
                "person": p.person_id,
                "passed": self._state[p.person_id].passed,
                "frames": list(self._state[p.person_id].card_frames),
                "liveness": list(self._state[p.person_id].attempts),
            }
            for p in self.people
        ]


def _card_evidence(check: CardCheck, seq: int) -> dict[str, object]:
    return {
        "seq": seq,
        "live": round(check.live.distance, 4) if check.live else None,
        "card": round(check.card.distance, 4) if check.card else None,
    }
