"""Detainees and the facts that rule out a video visit.

The reviewing officer must see *why* a detainee cannot be offered a video
visit, in the words of the rules; each reason therefore carries its own text.
Which facts count depends on the kind of facility (seed 000, 受理条件).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from .facilities import FacilityKind


class IneligibleReason(StrEnum):
    REFUSED = "refused"
    STRICT_MANAGEMENT = "strict_management"
    SERIOUS_VIOLATION = "serious_violation"
    FOREIGN_NATIONAL = "foreign_national"
    FIRST_WEEK_OF_DETOX = "first_week_of_detox"
    PENDING_CRIMINAL_TRANSFER = "pending_criminal_transfer"
    RELEASED = "released"

    @property
    def zh(self) -> str:
        return _REASON_TEXT[self][0]

    @property
    def en(self) -> str:
        return _REASON_TEXT[self][1]


_REASON_TEXT = {
    IneligibleReason.REFUSED: ("被会见人本人拒绝会见", "the detainee refuses the visit"),
    IneligibleReason.STRICT_MANAGEMENT: (
        "被会见人被列为严管或违反管理规定",
        "the detainee is under strict management or broke the facility's rules",
    ),
    IneligibleReason.SERIOUS_VIOLATION: (
        "被会见人严重违反监管秩序或管理规定",
        "the detainee seriously violated the facility's order or rules",
    ),
    IneligibleReason.FOREIGN_NATIONAL: (
        "外国籍罪犯不安排视频会见",
        "foreign nationals are not offered video visits in a detention centre",
    ),
    IneligibleReason.FIRST_WEEK_OF_DETOX: (
        "入所1周内尚在药物脱毒治疗",
        "in the first week after admission and still under detoxification",
    ),
    IneligibleReason.PENDING_CRIMINAL_TRANSFER: (
        "涉嫌犯罪拟转刑事拘留、逮捕",
        "suspected of a crime and about to be transferred to criminal detention or arrest",
    ),
    IneligibleReason.RELEASED: ("被会见人已离所", "the detainee has left the facility"),
}

DETOX_FIRST_WEEK = timedelta(days=7)
#: A stored face encoding: 128 little-endian float64, the same form as a
#: visitor's (``recognition.enrolment.encoding_to_bytes``).
FACE_ENCODING_BYTES = 1024


@dataclass
class Detainee:
    id: str
    facility_id: str
    name: str
    admitted_on: date
    released_on: date | None = None
    refuses_video_visits: bool = False
    strict_management: bool = False
    serious_violation: bool = False
    foreign_national: bool = False
    in_detox_treatment: bool = False
    pending_criminal_transfer: bool = False
    #: Reference to the facility's photo of the detainee (enrolment for kiosk-side checks).
    photo_ref: str | None = None
    #: The enrolment of that photo's one face (``FACE_ENCODING_BYTES``), computed
    #: once at upload so a visit can check the kiosk side without the photo;
    #: ``None`` until a photo has been uploaded and enrolled.
    face_encoding: bytes | None = field(default=None, repr=False)

    def ineligibility(self, kind: FacilityKind, on: date) -> list[IneligibleReason]:
        """Every reason that rules out a video visit on ``on``; empty means eligible."""
        reasons: list[IneligibleReason] = []
        if self.released_on is not None and self.released_on <= on:
            reasons.append(IneligibleReason.RELEASED)
        if self.refuses_video_visits:
            reasons.append(IneligibleReason.REFUSED)
        if kind is FacilityKind.DETENTION_HOUSE and self.strict_management:
            reasons.append(IneligibleReason.STRICT_MANAGEMENT)
        # 严重违反管理规定 rules out a video visit in every kind of facility
        # (拘留所: 违反拘留所管理规定, which is why it shares the strict reason there).
        if self.serious_violation:
            if kind is FacilityKind.DETENTION_HOUSE:
                if IneligibleReason.STRICT_MANAGEMENT not in reasons:
                    reasons.append(IneligibleReason.STRICT_MANAGEMENT)
            else:
                reasons.append(IneligibleReason.SERIOUS_VIOLATION)
        if kind is FacilityKind.DETENTION_CENTRE and self.foreign_national:
            reasons.append(IneligibleReason.FOREIGN_NATIONAL)
        if kind is FacilityKind.DRUG_REHAB:
            if self.in_detox_treatment and on < self.admitted_on + DETOX_FIRST_WEEK:
                reasons.append(IneligibleReason.FIRST_WEEK_OF_DETOX)
            if self.pending_criminal_transfer:
                reasons.append(IneligibleReason.PENDING_CRIMINAL_TRANSFER)
        return reasons
