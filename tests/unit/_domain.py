"""Builders shared by the domain unit tests (no fixtures, no I/O, no wall clock)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sessions.applications import Visitor
from sessions.officers import Officer, Role

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai

_CJK = re.compile(r"[\u4e00-\u9fff]")

# Written out again here on purpose: the tests must not borrow the code under test.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"


def has_cjk(text: str | None) -> bool:
    return text is not None and _CJK.search(text) is not None


def mod11_2(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character, independent of ``sessions.identity``."""
    assert len(first17) == 17 and first17.isdigit()
    total = 0
    for digit, weight in zip(first17, ID_WEIGHTS, strict=True):
        total += int(digit) * weight
    return ID_CHECK_CHARS[total % 11]


def id_number(region: str = "110105", born: date = date(1980, 5, 17), seq: str = "123") -> str:
    body = f"{region}{born:%Y%m%d}{seq}"
    return body + mod11_2(body)


def officer(*roles: Role, id: str = "o1", facility_id: str = "f1", active: bool = True) -> Officer:
    return Officer(
        id=id,
        facility_id=facility_id,
        username=f"user-{id}",
        display_name="王警官",
        password_hash="h:x",
        roles=frozenset(roles),
        active=active,
    )


def visitor(n: int = 0, *, relationship: str = "spouse") -> Visitor:
    return Visitor.validated(
        name=["张三", "李四", "王五", "赵六", "钱七"][n % 5],
        id_number=id_number(seq=f"{100 + n:03d}"),
        phone=f"1380013{8000 + n:04d}",
        relationship=relationship,
        id_photo_ref=f"photos/{n}.jpg",
        today=TODAY,
    )
