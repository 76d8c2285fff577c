"""Facilities, their kinds, and the visit rules each kind starts with.

The numbers come from the seeds (see DESIGN.md): 看守所 1–2 visits a calendar
month of up to an hour; 拘留所 at most 2 in the whole detention of up to 30
minutes; 强制隔离戒毒所 per facility rule, 30 minutes by video; 收容教育所 once
a month. Up to three people a visit everywhere. A facility may change its own
numbers; going beyond them for one visit needs a leader's exception
(``sessions.quotas``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ValidationError


class FacilityKind(StrEnum):
    DETENTION_CENTRE = "detention_centre"  # 看守所
    DETENTION_HOUSE = "detention_house"  # 拘留所
    DRUG_REHAB = "drug_rehab"  # 强制隔离戒毒所
    CUSTODY_EDUCATION = "custody_education"  # 收容教育所

    @property
    def label_zh(self) -> str:
        return _KIND_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _KIND_LABELS[self][1]


_KIND_LABELS = {
    FacilityKind.DETENTION_CENTRE: ("看守所", "detention centre"),
    FacilityKind.DETENTION_HOUSE: ("拘留所", "administrative detention house"),
    FacilityKind.DRUG_REHAB: ("强制隔离戒毒所", "compulsory drug rehabilitation centre"),
    FacilityKind.CUSTODY_EDUCATION: ("收容教育所", "custody and education centre"),
}


class QuotaPeriod(StrEnum):
    CALENDAR_MONTH = "calendar_month"
    WHOLE_DETENTION = "whole_detention"


class UnexpectedFacePolicy(StrEnum):
    ALERT_ONLY = "alert_only"
    AUTO_CUT = "auto_cut"


@dataclass(frozen=True)
class OpeningHours:
    """Daily windows (facility local time) in which visits may be scheduled."""

    windows: tuple[tuple[time, time], ...] = (
        (time(8, 30), time(12, 0)),
        (time(14, 0), time(17, 0)),
    )

    def __post_init__(self) -> None:
        for start, end in self.windows:
            if not start < end:
                raise ValidationError(
                    "opening_hours_order",
                    "开放时段的开始时间必须早于结束时间",
                    "An opening window must start before it ends",
                    field="opening_hours",
                )

    def contains(self, start: datetime, end: datetime, tz: ZoneInfo) -> bool:
        local_start, local_end = start.astimezone(tz), end.astimezone(tz)
        if local_start.date() != local_end.date():
            # Only a slot ending exactly at the next midnight may cross the date line; its end
            # is then 24:00, inside a window only if the window runs to the end of the day.
            if local_end.time() != time(0) or local_end.date() - local_start.date() != timedelta(1):
                return False
            return any(
                w_start <= local_start.time() and w_end == time.max
                for w_start, w_end in self.windows
            )
        return any(
            w_start <= local_start.time() and local_end.time() <= w_end
            for w_start, w_end in self.windows
        )

    def as_text(self) -> str:
        return ",".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in self.windows)

    @classmethod
    def parse(cls, text: str) -> OpeningHours:
        """Parse ``"08:30-12:00,14:00-17:00"``."""
        try:
            windows = []
            for part in text.split(","):
                a, b = part.strip().split("-")
                windows.append((time.fromisoformat(a.strip()), time.fromisoformat(b.strip())))
        except ValueError as exc:
            raise ValidationError(
                "opening_hours_format",
                "开放时段格式应为 08:30-12:00,14:00-17:00",
                "Opening hours must look like 08:30-12:00,14:00-17:00",
                field="opening_hours",
            ) from exc
        return cls(tuple(windows))


@dataclass(frozen=True)
class FacilityRules:
    visits_per_period: int
    period: QuotaPeriod
    max_visit_minutes: int
    max_people: int = 3
    unexpected_face_policy: UnexpectedFacePolicy = UnexpectedFacePolicy.ALERT_ONLY
    opening_hours: OpeningHours = field(default_factory=OpeningHours)

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.visits_per_period <= 31, "visits_per_period", "会见次数", "visit count"),
            (5 <= self.max_visit_minutes <= 240, "max_visit_minutes", "会见时长", "visit length"),
            (1 <= self.max_people <= 10, "max_people", "会见人数", "people per visit"),
        ]
        for ok, name, zh, en in checks:
            if not ok:
                raise ValidationError(
                    f"{name}_range", f"{zh}超出允许范围", f"The {en} is out of range", field=name
                )

    @classmethod
    def default_for(cls, kind: FacilityKind) -> FacilityRules:
        return _DEFAULT_RULES[kind]

    def with_changes(self, **changes: object) -> FacilityRules:
        return replace(self, **changes)  # type: ignore[arg-type]


_DEFAULT_RULES = {
    FacilityKind.DETENTION_CENTRE: FacilityRules(2, QuotaPeriod.CALENDAR_MONTH, 60),
    FacilityKind.DETENTION_HOUSE: FacilityRules(2, QuotaPeriod.WHOLE_DETENTION, 30),
    # "per facility rule (monthly)": two a month until the facility sets its own.
    FacilityKind.DRUG_REHAB: FacilityRules(2, QuotaPeriod.CALENDAR_MONTH, 30),
    FacilityKind.CUSTODY_EDUCATION: FacilityRules(1, QuotaPeriod.CALENDAR_MONTH, 30),
}


def validate_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            "time_zone_unknown",
            f"未知的时区：{name}",
            f"Unknown time zone: {name}",
            field="time_zone",
        ) from exc


@dataclass
class Facility:
    id: str
    name: str
    kind: FacilityKind
    rules: FacilityRules
    time_zone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        validate_time_zone(self.time_zone)

    @classmethod
    def new(
        cls, id: str, name: str, kind: FacilityKind, time_zone: str = "Asia/Shanghai"
    ) -> Facility:
        return cls(
            id=id, name=name, kind=kind, rules=FacilityRules.default_for(kind), time_zone=time_zone
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def local_date(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    def visit_length(self, extra_minutes: int = 0) -> timedelta:
        return timedelta(minutes=self.rules.max_visit_minutes + extra_minutes)
