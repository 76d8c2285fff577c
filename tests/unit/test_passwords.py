"""argon2 hashing of officer passwords and the rules for a new password."""

from __future__ import annotations

import pytest

from sessions.errors import ValidationError
from sessions.passwords import MIN_PASSWORD_LENGTH, Argon2Hasher, validate_new_password
from tests.unit._domain import has_cjk

HASHER = Argon2Hasher(time_cost=1, memory_cost=8 * 1024)


def test_a_hash_verifies_against_its_own_secret_only() -> None:
    hashed = HASHER.hash("正确的密码correct-1")
    assert hashed.startswith("$argon2id$")
    assert "correct" not in hashed
    assert HASHER.verify(hashed, "正确的密码correct-1") is True
    assert HASHER.verify(hashed, "正确的密码correct-2") is False
    assert HASHER.verify(hashed, "") is False


def test_hashing_the_same_secret_twice_gives_different_salted_hashes() -> None:
    assert HASHER.hash("same-secret-1") != HASHER.hash("same-secret-1")


@pytest.mark.parametrize("garbage", ["", "not-a-hash", "$argon2id$v=19$broken"])
def test_a_malformed_stored_hash_verifies_as_false_rather_than_raising(garbage: str) -> None:
    assert HASHER.verify(garbage, "whatever-1") is False


def test_the_default_profile_hashes_and_verifies() -> None:
    hasher = Argon2Hasher()
    hashed = hasher.hash("default-profile-1")
    assert hasher.verify(hashed, "default-profile-1")
    assert not hasher.needs_rehash(hashed)
    assert hasher.needs_rehash(HASHER.hash("default-profile-1"))  # weaker profile


def test_the_minimum_length_is_ten() -> None:
    assert MIN_PASSWORD_LENGTH == 10
    assert validate_new_password("abcdefgh1!") == "abcdefgh1!"


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("abc123!", "password_too_short"),
        ("abcdefg12", "password_too_short"),
        ("", "password_too_short"),
        ("abcdefghijkl", "password_too_simple"),
        ("1234567890", "password_too_simple"),
        ("密码密码密码密码密码密码", "password_too_simple"),
    ],
)
def test_short_or_single_class_passwords_are_rejected(password: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_new_password(password)
    assert caught.value.code == code
    assert caught.value.field == "password"
    assert has_cjk(caught.value.zh)


@pytest.mark.parametrize(
    "password", ["password-!!", "1234567890x", "监所视频会见2026年", "   spaces 1"]
)
def test_passwords_mixing_letters_with_digits_or_symbols_are_accepted(password: str) -> None:
    assert validate_new_password(password) == password
