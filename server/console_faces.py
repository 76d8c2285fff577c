"""The face checks of one visit as the officer's watch page lists them: the gate's and
the officers' identity decisions, unexpected-face alerts and presence changes, read
back from the ledger (``visit.identity_checked``, ``visit.face_alert``,
``visit.presence_changed``) with their distances and the link to the snapshot.

Formatting only, from audit records to plain rows for the template: it decides
nothing, and it never trusts a stored ``snapshot_ref`` further than the snapshot
store's own pattern (a malformed one just shows no picture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessions.audit import AuditRecord

from .snapshots import SnapshotStore

FACE_EVENTS: dict[str, str] = {
    "visit.identity_checked": "身份核验",
    "visit.face_alert": "陌生人脸告警",
    "visit.presence_changed": "会见人在场核验",
}
SIDE_LABELS = {"relative": "家属端", "kiosk": "监室端"}
PRESENCE_LABELS = {
    "absent": "离开画面或无法核验",
    "mismatch": "与登记人员不符",
    "back": "已回到画面",
}
DIRECTION_LABELS = {"left": "向左", "right": "向右"}


@dataclass(frozen=True)
class FaceRow:
    at: str
    label: str
    actor: str
    #: "bad" (refused, alert, absent), "good" (passed, back) or "" (neutral).
    tone: str
    summary: str
    lines: list[str] = field(default_factory=list)
    snapshot_url: str | None = None


def snapshot_url(visit_id: str, ref: object) -> str | None:
    """The console URL of a stored snapshot of ``visit_id``, if ``ref`` is one."""
    if not isinstance(ref, str):
        return None
    try:
        if SnapshotStore.visit_of(ref) != visit_id:
            return None
    except ValueError:
        return None
    return f"/console/visits/{visit_id}/snapshots/{ref.rsplit('/', 1)[1]}"


def distance(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def _distances(values: object) -> str:
    if not isinstance(values, list) or not values:
        return "—"
    return " / ".join(distance(v) for v in values)


def _person_line(person: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """One visitor of a gate decision: verdict, the live-face and card distances per
    sample (today's ``live``/``card`` lists, or the older ``frames``), and the head turn."""
    who = person.get("name") or names.get(str(person.get("person")), str(person.get("person")))
    verdict = "通过" if person.get("passed") else "未通过"
    live, card = person.get("live"), person.get("card")
    frames = person.get("frames")
    if live is None and isinstance(frames, list):
        live = [f.get("live") for f in frames if isinstance(f, Mapping)]
        card = [f.get("card") for f in frames if isinstance(f, Mapping)]
    parts = [
        f"{who}：{verdict}",
        f"现场人脸距离 {_distances(live)}",
        f"证件人像距离 {_distances(card)}",
    ]
    liveness = person.get("liveness")
    if isinstance(liveness, Mapping):
        direction = DIRECTION_LABELS.get(str(liveness.get("direction")), "—")
        result = "通过" if liveness.get("passed") else "未通过"
        parts.append(
            f"转头{direction}{result}（基准 {distance(liveness.get('baseline'))}，"
            f"峰值 {distance(liveness.get('peak'))}，{liveness.get('samples', 0)} 帧）"
        )
    return "；".join(parts)


def _identity(data: Mapping[str, Any], names: Mapping[str, str]) -> tuple[str, str, list[str]]:
    passed = bool(data.get("passed"))
    if data.get("override"):
        summary = "民警人工核验通过，开始会见" if passed else "民警判定核验未通过，结束会见"
        reason = data.get("reason")
        return summary, "good" if passed else "bad", [f"理由：{reason}"] if reason else []
    summary = "自动核验通过" if passed else "自动核验未通过，等待民警处理"
    persons = data.get("persons")
    lines = [
        _person_line(p, names)
        for p in (persons if isinstance(persons, list) else [])
        if isinstance(p, Mapping)
    ]
    return summary, "good" if passed else "bad", lines


def _alert(data: Mapping[str, Any], names: Mapping[str, str]) -> tuple[str, str, list[str]]:
    side = SIDE_LABELS.get(str(data.get("side")), str(data.get("side")))
    summary = f"{side}出现未经核准的人员"
    if data.get("policy") == "auto_cut" or data.get("auto_cut"):
        summary += "（已自动中止）"
    lines = [f"与最接近的会见人距离 {distance(data.get('distance'))}"]
    per_person = data.get("distances")
    if isinstance(per_person, Mapping) and per_person:
        lines.append(
            "；".join(f"{names.get(p, p)} {distance(d)}" for p, d in sorted(per_person.items()))
        )
    if data.get("votes") is not None:
        lines.append(f"{data.get('votes')}/{data.get('window')} 次采样一致")
    return summary, "bad", lines


def _presence(data: Mapping[str, Any], names: Mapping[str, str]) -> tuple[str, str, list[str]]:
    side = SIDE_LABELS.get(str(data.get("side")), str(data.get("side")))
    person = str(data.get("person", ""))
    who = str(data.get("name") or names.get(person, person))
    status = str(data.get("status"))
    summary = f"{side}{who}{PRESENCE_LABELS.get(status, status)}"
    seconds = data.get("seconds")
    lines = [f"持续约 {round(seconds)} 秒"] if isinstance(seconds, int | float) and seconds else []
    return summary, "good" if status == "back" else "bad", lines


_FORMATTERS = {
    "visit.identity_checked": _identity,
    "visit.face_alert": _alert,
    "visit.presence_changed": _presence,
}


def face_rows(
    records: Iterable[AuditRecord],
    visit_id: str,
    *,
    names: Mapping[str, str],
    actor_label: Callable[[str], str],
    local_time: Callable[[AuditRecord], str],
) -> Sequence[FaceRow]:
    """The face-check records of ``visit_id``, oldest first; ``names`` maps the
    gate's person ids (``visitor-1``...) to visitors' names."""
    rows = []
    for record in records:
        if record.subject_id != visit_id or record.event not in _FORMATTERS:
            continue
        summary, tone, lines = _FORMATTERS[record.event](record.data, names)
        rows.append(
            FaceRow(
                at=local_time(record),
                label=FACE_EVENTS[record.event],
                actor=actor_label(record.actor),
                tone=tone,
                summary=summary,
                lines=lines,
                snapshot_url=snapshot_url(visit_id, record.data.get("snapshot_ref")),
            )
        )
    return rows
