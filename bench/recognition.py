"""Face-check benchmark: accuracy, decision latency and CPU cost of ``recognition/``.

    .venv/bin/python -m bench.recognition            # full set
    .venv/bin/python -m bench.recognition --quick    # reduced set, under a minute

Everything runs in this one process, on the real test photos and the test video clip
(``tests.support.testdata``), through the same calls the worker and the server make
(``analysis.analyse``, ``card.judge``, ``verify.Vote``, ``unexpected.UnexpectedFaceWatch``).

- *distances*: every single-face test photo is enrolled (``enrolment.enrol``); the table is
  the distance between each pair, same person = same name prefix.
- *gate trials*: an enrolment (the ID-card photo) and a frame composed like
  ``tests.support.faces.card_frame`` (a live face and a held-up card), varied slightly from
  sample to sample (face size, position, card position). Genuine: the card is the
  enrolment photo, the live face another photo of the same person. Impostors: a different
  person holding the genuine card, or the genuine person holding someone else's card. Each
  sample goes through ``analyse`` (card mode, with the server's card hint) and ``judge``
  into ``Vote(3, 5)`` (the server's gate vote) until it passes or fails (at most 5 samples
  counted as a fail if undecided). A false accept is an impostor trial that passes, a false
  reject a genuine one that does not.
- *gate time* (the card check): the card appears at t = 0; during the gate the server samples
  every ``CARD_INTERVAL`` (1/3 s), the first sample at a phase of 0.1 ... 1.0 of that interval
  after the card appears; the k-th sample is taken (k - 1) intervals later (or when the worker
  is free, if a frame takes longer) and decided when its ``analyse`` returns (measured wall
  time, a free worker). Gate time = phase + (k - 1) x max(interval, processing) + processing,
  over every genuine trial and phase.
- *liveness*: ``IdentityGate`` on ``tests.support.faces.gate_sequence`` (the clip's lead with
  his card, then really turning his head right, or left = mirrored), sampled as the server
  does (card every 1/3 s, the challenge every 0.1 s), and on printed photos (the lead's frame
  held still and tilted): passes, the time from the face being back in front to the pass,
  and the CPU per challenge sample.
- *alert latency*: an approved person alone for 3 samples, then a second, unapproved person
  appears beside them; the 1 fps sampler sees the newcomer at a phase of 0.1 ... 1.0 s, then
  the side is sampled every ``FAST_INTERVAL`` (0.25 s) while a face is undecided; latency
  until ``UnexpectedFaceWatch`` (3 unknown of 4) raises the alert on the newcomer.
- *false alerts*: the clip (PyAV, 640x360) sampled at 1 fps from several starting offsets,
  ``lin_manuel_miranda.png`` approved. The clip shows him alone on stage until a cut to the
  audience (found as the largest frame-to-frame change); alerts on faces first seen before
  the cut are alerts on the approved lead (the target counts these), alerts after it are on
  audience members, who are genuinely not approved (reported, not counted).
- *CPU*: ``time.process_time`` around ``analyse`` in this process, per sampled frame
  (watch mode as the server runs it, with the tracker's skips; card mode separately).
  frames/s per worker = 1000 / ms; visits per core at 1 fps = 1000 / (2 x watch ms) (both
  sides sampled, although only the relative's side is watched today).

The last line is machine-readable (``RESULT ...``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np

from recognition import images
from recognition.analysis import FrameAnalysis, FrameRequest, analyse
from recognition.card import CardFaces, judge
from recognition.enrolment import enrol
from recognition.gate import CARD_INTERVAL, GateRules, IdentityGate
from recognition.liveness import TurnRules
from recognition.models import Box, Encoding, Image, distance, load_models
from recognition.unexpected import UnexpectedFaceAlert, UnexpectedFaceWatch
from recognition.verify import DEFAULT_THRESHOLD, Enrolled, Vote
from server.faces.visit import FAST_INTERVAL
from tests.support import faces
from tests.support.gate import FixedChoice, sample_gate
from tests.support.testdata import VIDEO, face

GATE_NEEDED, GATE_WINDOW = GateRules().needed, GateRules().window

PHOTOS = (
    "biden_1.jpg",
    "biden_2.jpg",
    "lin_manuel_miranda.png",
    "obama_1.jpg",
    "obama_2.jpg",
    "obama_480p.jpg",
    "obama_small.jpg",
)
LEAD = "lin_manuel_miranda.png"
CLIP = VIDEO / "short_hamilton_clip.mp4"
PHASES = tuple(round(0.1 * i, 1) for i in range(1, 11))
#: (face px, live left, card dx, card dy) per sample: a person never holds perfectly still.
JITTER = ((170, 90, 0, 0), (164, 96, -6, 4), (176, 84, 5, -5), (168, 92, -3, 6), (172, 88, 4, 2))


def person(name: str) -> str:
    return name.split("_")[0]


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    lo, hi = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


# --- distances ------------------------------------------------------------------------------


def enrol_all() -> dict[str, Encoding]:
    return {name: enrol(face(name).read_bytes()).encoding for name in PHOTOS}


def distance_table(enc: dict[str, Encoding]) -> tuple[list[float], list[float]]:
    names = list(enc)
    short = [n.split(".")[0][:10] for n in names]
    print("Distances between the enrolled test photos (same person = same name prefix):")
    print(" " * 11 + "".join(f"{s:>11}" for s in short))
    same: list[float] = []
    diff: list[float] = []
    for a, sa in zip(names, short, strict=True):
        row = []
        for b in names:
            d = distance(enc[a], enc[b])
            row.append(f"{d:11.2f}" if a != b else f"{'-':>11}")
            if a < b:
                (same if person(a) == person(b) else diff).append(d)
        print(f"{sa:<11}" + "".join(row))
    print(
        f"same person: {len(same)} pairs, {min(same):.2f}-{max(same):.2f}; "
        f"different: {len(diff)} pairs, {min(diff):.2f}-{max(diff):.2f}; "
        f"threshold {DEFAULT_THRESHOLD}: {sum(d >= DEFAULT_THRESHOLD for d in same)} same pairs "
        f"above, {sum(d < DEFAULT_THRESHOLD for d in diff)} different pairs below"
    )
    print()
    return same, diff


# --- the gate -------------------------------------------------------------------------------


def gate_frame(live: str, on_card: str, sample: int) -> Image:
    px, left, dx, dy = JITTER[sample % len(JITTER)]
    frame = faces.live_frame(live, face_px=px, left=left)
    faces.paste(frame, faces.card(on_card), 410 + dx, 300 + dy)
    return frame


@dataclass
class Trial:
    kind: str
    enrolled: str
    live: str
    card: str
    passed: bool
    samples: int
    last_ms: float
    reasons: list[str]


def gate_trial(kind: str, enrolled: str, live: str, on_card: str, enc: Encoding) -> Trial:
    who = [Enrolled(person(enrolled), enc)]
    vote = Vote(GATE_NEEDED, GATE_WINDOW)
    hint: Box | None = None
    reasons: list[str] = []
    last_ms = 0.0
    for k in range(GATE_WINDOW):
        frame = gate_frame(live, on_card, k)
        request = FrameRequest("bench", "relative", k, frame, "card", card_hint=hint)
        started = time.perf_counter()
        result = analyse(request)
        last_ms = (time.perf_counter() - started) * 1000
        found = CardFaces(result.faces[0] if result.faces else None, result.card, "direct")
        check = judge(found, who)
        hint = check.card_box or hint
        reasons.append(check.reason)
        if vote.add(check.passed) != "undecided":
            break
    return Trial(kind, enrolled, live, on_card, vote.verdict == "passed", k + 1, last_ms, reasons)


def gate_trials(enc: dict[str, Encoding], quick: bool) -> list[Trial]:
    if quick:
        genuine = [("biden_1.jpg", "biden_2.jpg"), ("obama_1.jpg", "obama_2.jpg")]
        stolen = [("biden_1.jpg", "obama_2.jpg"), ("obama_1.jpg", "biden_2.jpg")]
        wrong = [("obama_1.jpg", "obama_2.jpg", "biden_1.jpg")]
    else:
        genuine = [
            (e, live) for e, live in itertools.permutations(PHOTOS, 2) if person(e) == person(live)
        ]
        stolen = [
            (e, live) for e, live in itertools.permutations(PHOTOS, 2) if person(e) != person(live)
        ]
        wrong = [
            (e, live, c)
            for e, live in genuine
            for c in ("biden_1.jpg", "obama_1.jpg", LEAD)
            if person(c) != person(e)
        ]
    trials = [gate_trial("genuine", e, live, e, enc[e]) for e, live in genuine]
    trials += [gate_trial("other person, genuine card", e, live, e, enc[e]) for e, live in stolen]
    trials += [gate_trial("genuine person, other card", e, live, c, enc[e]) for e, live, c in wrong]
    return trials


# --- unexpected faces -----------------------------------------------------------------------


def two_people(approved: str, newcomer: str | None, sample: int) -> Image:
    px, left, _, _ = JITTER[sample % len(JITTER)]
    frame = faces.live_frame(approved, face_px=px - 30, left=left - 60)
    if newcomer is not None:
        other = faces.head(newcomer, 120 + (sample % 3) * 4, width_faces=1.8, height_faces=2.6)
        faces.paste(frame, other, 380 + (sample % 2) * 4, 60)
    return frame


def watch_step(
    watch: UnexpectedFaceWatch, frame: Image, seq: int, cpu: list[float] | None = None
) -> tuple[FrameAnalysis, float, list[UnexpectedFaceAlert]]:
    request = FrameRequest("bench", "relative", seq, frame, "watch", skip=tuple(watch.skippable()))
    started = time.perf_counter()
    result = analyse(request)
    wall_ms = (time.perf_counter() - started) * 1000
    if cpu is not None:
        cpu.append(result.cpu_ms)
    return result, wall_ms, watch.observe(result.faces)


@dataclass
class AlertTrial:
    approved: str
    newcomer: str
    alert_sample: int | None
    ms: float
    false_alerts: int


def alert_trial(approved: str, newcomer: str, enc: Encoding) -> AlertTrial:
    watch = UnexpectedFaceWatch([Enrolled(person(approved), enc)])
    false_alerts = 0
    for k in range(3):
        _, _, raised = watch_step(watch, two_people(approved, None, k), k)
        false_alerts += len(raised)
    for k in range(6):
        _, ms, raised = watch_step(watch, two_people(approved, newcomer, k), 3 + k)
        on_newcomer = [a for a in raised if a.box.left >= 300]
        false_alerts += len(raised) - len(on_newcomer)
        if on_newcomer:
            return AlertTrial(approved, newcomer, k + 1, ms, false_alerts)
    return AlertTrial(approved, newcomer, None, 0.0, false_alerts)


def alert_trials(enc: dict[str, Encoding], quick: bool) -> list[AlertTrial]:
    if quick:
        pairs = [("biden_1.jpg", "obama_2.jpg"), ("obama_1.jpg", LEAD)]
    else:
        pairs = [
            (a, b)
            for a, b in itertools.permutations(
                ("biden_1.jpg", "obama_1.jpg", LEAD, "obama_2.jpg"), 2
            )
            if person(a) != person(b)
        ]
    return [alert_trial(a, b, enc[a]) for a, b in pairs]


# --- the clip -------------------------------------------------------------------------------


def clip_frames() -> tuple[list[Image], float, int]:
    with av.open(str(CLIP)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        frames = [
            images.downscale(np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8), 640)[0]
            for f in container.decode(stream)
        ]
    change = [
        float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
        for a, b in itertools.pairwise(frames)
    ]
    # The clip has three cuts (mean change > 20 per channel; within a shot it stays below 15):
    # a stage view with no face big enough, Miranda alone on stage, then the audience.
    cut = max(i + 1 for i, v in enumerate(change) if v > 20)
    return frames, fps, cut


@dataclass
class ClipRun:
    offset: int
    samples: int
    lead_alerts: int
    audience_alerts: int


def clip_run(
    frames: list[Image], step: int, offset: int, cut: int, lead: Encoding, cpu: list[float]
) -> ClipRun:
    watch = UnexpectedFaceWatch([Enrolled("lead", lead)])
    picks = list(range(offset, len(frames), step))
    lead_alerts = audience_alerts = 0
    for seq, index in enumerate(picks):
        request = FrameRequest(
            "bench", "relative", seq, frames[index], "watch", skip=tuple(watch.skippable())
        )
        result = analyse(request)
        cpu.append(result.cpu_ms)
        for alert in watch.observe(result.faces):
            first_frame = picks[alert.first_seen - 1]
            if first_frame < cut:
                lead_alerts += 1
            else:
                audience_alerts += 1
    return ClipRun(offset, len(picks), lead_alerts, audience_alerts)


# --- liveness ------------------------------------------------------------------------------


@dataclass
class LivenessRun:
    label: str
    passed: bool
    #: Seconds from the turn being complete (the face back to front wanted) to the pass.
    back_s: float | None
    cpu: list[float]


def liveness_run(label: str, frames: list[Image], direction: str, lead: Encoding) -> LivenessRun:
    rules = GateRules(attempts=1, liveness=TurnRules(timeout_s=8))
    gate = IdentityGate([Enrolled("lead", lead)], rules, rng=FixedChoice(direction))
    cpu: list[float] = []
    back_at: float | None = None
    for sample in sample_gate(frames, gate):
        if sample.mode == "liveness":
            cpu.append(sample.result.cpu_ms)
        if gate.encode and back_at is None:
            back_at = sample.at
        if sample.update.outcome == "passed":
            done = sample.at + sample.result.cpu_ms / 1000
            return LivenessRun(label, True, None if back_at is None else done - back_at, cpu)
    return LivenessRun(label, False, None, cpu)


def liveness_runs(lead: Encoding) -> list[LivenessRun]:
    front = faces.clip_frames()[faces.CLIP_FRONT]
    held = [faces.with_card(front, LEAD)] * 60 + [front] * 240
    return [
        liveness_run(
            "real turn, asked right", faces.gate_sequence(direction="right"), "right", lead
        ),
        liveness_run("real turn, asked left", faces.gate_sequence(direction="left"), "left", lead),
        liveness_run(
            "real turn right, asked left", faces.gate_sequence(direction="right"), "left", lead
        ),
        liveness_run("printed photo held still", held, "right", lead),
    ]


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="reduced set, under a minute")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    t0 = time.perf_counter()
    load_models()

    enc = enrol_all()
    distance_table(enc)

    trials = gate_trials(enc, quick)
    print(
        f"Gate trials (card + live face, Vote({GATE_NEEDED} of {GATE_WINDOW}), threshold {DEFAULT_THRESHOLD}):"
    )
    print(f"{'kind':<28} {'enrolled':<14} {'live':<14} {'card':<14} {'result':<7} samples  reasons")
    for t in trials:
        print(
            f"{t.kind:<28} {t.enrolled.split('.')[0]:<14} {t.live.split('.')[0]:<14} "
            f"{t.card.split('.')[0]:<14} {'pass' if t.passed else 'fail':<7} {t.samples:>7}  "
            + ",".join(t.reasons)
        )
    false_accepts = sum(t.passed for t in trials if t.kind != "genuine")
    false_rejects = sum(not t.passed for t in trials if t.kind == "genuine")
    gate_s = [
        phase * CARD_INTERVAL
        + (t.samples - 1) * max(CARD_INTERVAL, t.last_ms / 1000)
        + t.last_ms / 1000
        for t in trials
        if t.kind == "genuine" and t.passed
        for phase in PHASES
    ]
    print(
        f"false accepts {false_accepts} of {sum(t.kind != 'genuine' for t in trials)} impostor "
        f"trials; false rejects {false_rejects} of {sum(t.kind == 'genuine' for t in trials)} genuine"
    )
    print(
        f"gate time after the card appears (a sample every {CARD_INTERVAL:.2f} s): "
        f"p50 {pct(gate_s, 50):.2f} s, p95 {pct(gate_s, 95):.2f} s (n = {len(gate_s)})"
    )
    print()

    alerts = alert_trials(enc, quick)
    print("Unexpected face (approved person alone for 3 samples, then a second person appears):")
    print(f"{'approved':<22} {'newcomer':<22} alert at sample  false alerts")
    for a in alerts:
        print(
            f"{a.approved.split('.')[0]:<22} {a.newcomer.split('.')[0]:<22} "
            f"{a.alert_sample if a.alert_sample else 'never':>15}  {a.false_alerts:>12}"
        )
    alert_s = [
        phase + (a.alert_sample - 1) * max(FAST_INTERVAL, a.ms / 1000) + a.ms / 1000
        for a in alerts
        if a.alert_sample
        for phase in PHASES
    ]
    missed = sum(a.alert_sample is None for a in alerts)
    print(
        f"alert latency after the face appears: p50 {pct(alert_s, 50):.2f} s, "
        f"p95 {pct(alert_s, 95):.2f} s (n = {len(alert_s)}); missed {missed}"
    )
    print()

    live = liveness_runs(enc[LEAD])
    print("Liveness (IdentityGate on the clip's lead, sampled as the server does):")
    for run in live:
        back = f"decided {run.back_s:.2f} s after the turn" if run.back_s is not None else "-"
        print(f"{run.label:<46} {'pass' if run.passed else 'no pass':<8} {back}")
    live_cpu_ms = [ms for run in live for ms in run.cpu]
    print(
        f"liveness CPU per sample: mean {statistics.mean(live_cpu_ms):.1f} ms, "
        f"p95 {pct(live_cpu_ms, 95):.1f} ms (n = {len(live_cpu_ms)})"
    )
    print()

    frames, fps, cut = clip_frames()
    step = max(1, round(fps))
    offsets = [0, step // 2] if quick else list(range(0, step, 3))
    cpu: list[float] = []
    runs = [clip_run(frames, step, o, cut, enc[LEAD], cpu) for o in offsets]
    lead_alerts = sum(r.lead_alerts for r in runs)
    audience_alerts = sum(r.audience_alerts for r in runs)
    print(
        f"Clip {CLIP.name}: {len(frames)} frames at {fps:.2f} fps, lead on stage until "
        f"frame {cut} ({cut / fps:.1f} s), then the audience; sampled every {step} frames from "
        f"{len(offsets)} offsets ({sum(r.samples for r in runs)} samples), {LEAD} approved"
    )
    print(
        f"alerts on the approved lead: {lead_alerts}; on audience members (not approved, "
        f"correct alerts): {audience_alerts} over {len(runs)} runs"
    )
    print()

    # CPU per sampled frame, in this process.
    card_cpu: list[float] = []
    for k in range(3 if quick else 10):
        frame = gate_frame("biden_2.jpg", "biden_1.jpg", k)
        card_cpu.append(analyse(FrameRequest("bench", "relative", k, frame, "card")).cpu_ms)
    live_cpu: list[float] = []
    watch = UnexpectedFaceWatch([Enrolled("obama", enc["obama_1.jpg"])])
    for k in range(10 if quick else 30):
        watch_step(watch, faces.live_frame("obama_2.jpg", face_px=JITTER[k % 5][0]), k, live_cpu)
    watch_ms = statistics.mean(cpu + live_cpu)
    print("CPU per sampled frame (process time in analyse(), one process):")
    print(f"{'frames':<44} {'n':>4} {'mean ms':>8} {'p95 ms':>7} {'frames/s/worker':>16}")
    for label, values in (
        ("watch, clip 640x360 (tracker skips)", cpu),
        ("watch, live 640x480 one face (tracker skips)", live_cpu),
        ("card, 640x480 live + card, no hint", card_cpu),
    ):
        mean = statistics.mean(values)
        print(
            f"{label:<44} {len(values):>4} {mean:>8.1f} {pct(values, 95):>7.1f} {1000 / mean:>16.1f}"
        )
    visits = 1000 / (2 * watch_ms)
    print(
        f"visits per core at 1 fps (both sides, watch mode, mean {watch_ms:.1f} ms): {visits:.1f}; "
        f"during the gate (card mode): {1000 / (2 * statistics.mean(card_cpu)):.1f}"
    )
    print(f"({'quick' if quick else 'full'} run, {time.perf_counter() - t0:.0f} s)")
    print(
        f"RESULT false_accepts={false_accepts} false_rejects={false_rejects} "
        f"gate_s_p95={pct(gate_s, 95):.2f} alert_s_p95={pct(alert_s, 95):.2f} "
        f"false_alerts={lead_alerts} visits_per_core_at_1fps={visits:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
