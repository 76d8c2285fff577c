"""Officer accounts and their roles (岗位).

The seed's process names four posts: 受理岗 accepts, 审核岗 reviews, 值班岗
schedules and runs the visit, 所领导 grants exceptions; admin sets the facility
up. Each command in the domain names the role it needs, so a console page
can never do more than the post behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .errors import PermissionDenied, ValidationError


class Role(StrEnum):
    INTAKE = "intake"  # 受理岗
    REVIEWER = "reviewer"  # 审核岗
    DUTY = "duty"  # 值班岗
    LEADER = "leader"  # 所领导
    ADMIN = "admin"

    @property
    def label_zh(self) -> str:
        return _ROLE_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _ROLE_LABELS[self][1]


_ROLE_LABELS = {
    Role.INTAKE: ("受理岗", "intake officer"),
    Role.REVIEWER: ("审核岗", "reviewing officer"),
    Role.DUTY: ("值班岗", "duty officer"),
    Role.LEADER: ("所领导", "facility leader"),
    Role.ADMIN: ("管理员", "administrator"),
}


def parse_roles(values: str | list[str]) -> frozenset[Role]:
    items = values.split(",") if isinstance(values, str) else values
    roles: set[Role] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        match = next((r for r in Role if item in (r.value, r.label_zh)), None)
        if match is None:
            raise ValidationError(
                "role_unknown", f"未知的岗位：{item}", f"Unknown role: {item}", field="roles"
            )
        roles.add(match)
    if not roles:
        raise ValidationError(
            "role_missing", "至少需要一个岗位", "At least one role is needed", field="roles"
        )
    return frozenset(roles)


@dataclass
class Officer:
    id: str
    facility_id: str
    username: str
    display_name: str
    password_hash: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    active: bool = True

    def require(self, role: Role) -> None:
        if not self.active or role not in self.roles:
            raise PermissionDenied(
                "role_required",
                f"此操作需要{role.label_zh}权限",
                f"This needs the {role.label_en} role",
            )

    def require_facility(self, facility_id: str) -> None:
        if self.facility_id != facility_id:
            raise PermissionDenied(
                "other_facility", "无权操作其他监所的数据", "This belongs to another facility"
            )


def validate_username(raw: str) -> str:
    username = raw.strip().lower()
    if not (3 <= len(username) <= 32) or not all(c.isalnum() or c in "._-" for c in username):
        raise ValidationError(
            "username_format",
            "用户名应为3至32位字母、数字或 . _ -",
            "A username is 3 to 32 letters, digits or . _ -",
            field="username",
        )
    return username
