"""Officer roles (岗位), permission checks and usernames."""

from __future__ import annotations

import pytest

from sessions.errors import PermissionDenied, ValidationError
from sessions.officers import Role, parse_roles, validate_username
from tests.unit._domain import has_cjk, officer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("intake", {Role.INTAKE}),
        ("受理岗", {Role.INTAKE}),
        ("审核岗,值班岗", {Role.REVIEWER, Role.DUTY}),
        (" leader , admin ", {Role.LEADER, Role.ADMIN}),
        ("所领导,leader", {Role.LEADER}),
        ("管理员,,", {Role.ADMIN}),
        (["reviewer", "值班岗"], {Role.REVIEWER, Role.DUTY}),
    ],
)
def test_roles_parse_by_value_and_by_chinese_label(
    raw: str | list[str], expected: set[Role]
) -> None:
    assert parse_roles(raw) == frozenset(expected)


def test_every_role_parses_from_its_own_value_and_label() -> None:
    for role in Role:
        assert parse_roles(role.value) == {role}
        assert parse_roles(role.label_zh) == {role}
        assert has_cjk(role.label_zh) and not has_cjk(role.label_en)


@pytest.mark.parametrize("raw", ["boss", "intake,boss", "INTAKE", "受理"])
def test_an_unknown_role_is_rejected_and_named(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_roles(raw)
    assert caught.value.code == "role_unknown"
    assert caught.value.field == "roles"
    assert has_cjk(caught.value.zh)


@pytest.mark.parametrize("raw", ["", " , ", []])
def test_at_least_one_role_is_required(raw: str | list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_roles(raw)
    assert caught.value.code == "role_missing"


def test_an_officer_holding_a_role_passes_its_check_and_no_other() -> None:
    o = officer(Role.INTAKE, Role.REVIEWER)
    o.require(Role.INTAKE)
    o.require(Role.REVIEWER)
    for role in (Role.DUTY, Role.LEADER, Role.ADMIN):
        with pytest.raises(PermissionDenied) as caught:
            o.require(role)
        assert caught.value.code == "role_required"
        assert role.label_zh in caught.value.zh
        assert caught.value.status == 403


def test_admin_is_not_a_master_key() -> None:
    with pytest.raises(PermissionDenied):
        officer(Role.ADMIN).require(Role.LEADER)


def test_a_deactivated_officer_passes_no_role_check() -> None:
    o = officer(*Role, active=False)
    for role in Role:
        with pytest.raises(PermissionDenied):
            o.require(role)


def test_an_officer_may_only_touch_their_own_facility() -> None:
    o = officer(Role.ADMIN, facility_id="f1")
    o.require_facility("f1")
    with pytest.raises(PermissionDenied) as caught:
        o.require_facility("f2")
    assert caught.value.code == "other_facility"
    assert has_cjk(caught.value.zh)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("WangWei", "wangwei"), ("  li.na_01 ", "li.na_01"), ("abc", "abc"), ("a" * 32, "a" * 32)],
)
def test_usernames_are_trimmed_and_lowercased(raw: str, expected: str) -> None:
    assert validate_username(raw) == expected


@pytest.mark.parametrize("raw", ["ab", "a" * 33, "wang wei", "wang@wei", "", "王/伟"])
def test_malformed_usernames_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_username(raw)
    assert caught.value.code == "username_format"
