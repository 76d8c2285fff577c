"""Builders for service-level tests: a facility with its staff, a detainee, a
kiosk and valid applicants, created through the service like a real set-up."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sessions.clock import ManualClock
from sessions.detainees import Detainee
from sessions.facilities import Facility, FacilityKind, FacilityRules
from sessions.identity import check_digit
from sessions.ids import new_id
from sessions.officers import Officer, Role
from sessions.passwords import SecretHasher
from sessions.repository import UnitOfWork
from sessions.services import VisitGateService, VisitorInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: A Monday morning: where the app tests' clock starts (the demo seeded at that time).
APP_START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
PASSWORD = "correct-horse-42"


class Sha256Hasher:
    """A fast, real (salted) hasher for tests that are not about argon2's cost."""

    def hash(self, secret: str) -> str:
        salt = new_id()[:16]
        return f"{salt}${hashlib.sha256((salt + secret).encode()).hexdigest()}"

    def verify(self, hashed: str, secret: str) -> bool:
        salt, digest = hashed.split("$", 1)
        return hashlib.sha256((salt + secret).encode()).hexdigest() == digest


def id_number(born: date = date(1970, 3, 8), sequence: str = "123", region: str = "330102") -> str:
    first17 = f"{region}{born:%Y%m%d}{sequence}"
    return first17 + check_digit(first17)


def visitor(
    name: str = "李秀英",
    relationship: str = "parent",
    sequence: str = "123",
    phone: str = "13800138000",
) -> VisitorInput:
    return VisitorInput(
        name, id_number(sequence=sequence), phone, relationship, f"photos/{sequence}.jpg"
    )


@dataclass
class World:
    service: VisitGateService
    clock: ManualClock
    facility: Facility
    officers: dict[Role, Officer]
    detainee: Detainee
    kiosk_id: str
    kiosk_token: str

    def local(self, y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
        return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)

    async def approved_application(self, *visitors: VisitorInput) -> str:
        app = await self.service.submit_application(
            facility_id=self.facility.id,
            detainee_name=self.detainee.name,
            visitors=list(visitors) or [visitor()],
            reason="family_emergency",
        )
        await self.service.accept(self.officers[Role.INTAKE].id, app.id)
        await self.service.approve(self.officers[Role.REVIEWER].id, app.id)
        return app.id


async def build_world(
    uow_factory: Callable[[], UnitOfWork],
    *,
    kind: FacilityKind = FacilityKind.DETENTION_CENTRE,
    start: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI),
    rules: FacilityRules | None = None,
    hasher: SecretHasher | None = None,
    username_prefix: str = "officer",
) -> World:
    clock = ManualClock(start)
    service = VisitGateService(uow_factory, clock, hasher or Sha256Hasher())
    facility = await service.create_facility("测试看守所", kind, rules=rules)
    officers = {
        role: await service.create_officer(
            facility_id=facility.id,
            username=f"{username_prefix}-{role.value}",
            display_name=role.label_zh,
            password=PASSWORD,
            roles=frozenset({role}),
        )
        for role in Role
    }
    detainee = await service.register_detainee(
        Detainee(new_id(), facility.id, "张伟", admitted_on=start.date() - timedelta(days=40))
    )
    kiosk, token = await service.register_kiosk(facility.id, "一号终端")
    return World(service, clock, facility, officers, detainee, kiosk.id, token)
