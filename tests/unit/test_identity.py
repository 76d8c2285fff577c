"""GB 11643 identity numbers, phone numbers and names."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions.errors import ValidationError
from sessions.identity import (
    PROVINCE_CODES,
    check_digit,
    validate_id_number,
    validate_name,
    validate_phone,
)
from tests.unit._domain import has_cjk, id_number, mod11_2

TODAY = date(2026, 3, 2)
ALPHABET = "0123456789X"


@st.composite
def valid_id_numbers(draw: st.DrawFn, today: date = TODAY) -> str:
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    area = draw(st.text("0123456789", min_size=4, max_size=4))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=today))
    seq = draw(st.integers(0, 999))
    body = f"{province:02d}{area}{born:%Y%m%d}{seq:03d}"
    return body + mod11_2(body)


# --- the independent oracle agrees with known numbers ------------------------------------------


def test_the_test_oracle_reproduces_the_published_example_check_digit() -> None:
    # The GB 11643-1999 sample number 11010519491231002X.
    assert mod11_2("11010519491231002") == "X"


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the standard's own example
        "110101190001010006",  # born on the first day allowed (sum 50, 50 % 11 = 6)
        "820000200001010016",  # Hong Kong resident permit (sum 94, 94 % 11 = 6)
        "310115202603020018",  # born on `today` (sum 136, 136 % 11 = 4 -> "8")
    ],
)
def test_real_format_examples_are_accepted_unchanged(number: str) -> None:
    assert validate_id_number(number, today=TODAY) == number


def test_a_lowercase_check_x_is_normalised_to_uppercase() -> None:
    assert validate_id_number("11010519491231002x", today=TODAY) == "11010519491231002X"


def test_spaces_around_and_inside_the_number_are_removed() -> None:
    assert validate_id_number(" 110105 19491231 002X ", today=TODAY) == "11010519491231002X"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_id_numbers())
def test_every_well_formed_number_with_the_right_check_digit_is_accepted(number: str) -> None:
    assert validate_id_number(number, today=TODAY) == number
    assert check_digit(number[:17]) == number[17]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_id_numbers())
def test_every_single_character_corruption_is_rejected(number: str) -> None:
    for position in range(18):
        for replacement in ALPHABET:
            if replacement == number[position]:
                continue
            corrupted = number[:position] + replacement + number[position + 1 :]
            with pytest.raises(ValidationError):
                validate_id_number(corrupted, today=TODAY)


def test_a_wrong_check_digit_is_reported_as_such_in_chinese_and_english() -> None:
    good = id_number()
    wrong = next(c for c in ALPHABET if c != good[17])
    with pytest.raises(ValidationError) as caught:
        validate_id_number(good[:17] + wrong, today=TODAY, field="visitors.0.id_number")
    assert caught.value.code == "id_number_check_digit"
    assert caught.value.field == "visitors.0.id_number"
    assert has_cjk(caught.value.zh)
    assert "check digit" in caught.value.en


def _with_check(body17: str) -> str:
    return body17 + mod11_2(body17)


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (_with_check("99010519800101123"), "id_number_region"),  # 99 is no region
        (_with_check("10010519800101123"), "id_number_region"),
        (_with_check("11010519800230123"), "id_number_birth_date"),  # 30 February
        (_with_check("11010519801301123"), "id_number_birth_date"),  # month 13
        (_with_check("11010518991231123"), "id_number_birth_date"),  # before 1900
        (_with_check("11010520260303123"), "id_number_birth_date"),  # tomorrow
        ("1101051980010112", "id_number_format"),  # 16 characters
        ("11010519800101123X1", "id_number_format"),  # 19 characters
        ("1101051980010112X3", "id_number_format"),  # X not last
        ("11010519800101123Y", "id_number_format"),
        ("", "id_number_format"),
    ],
)
def test_each_kind_of_bad_number_fails_with_its_own_code_and_bilingual_message(
    number: str, code: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_id_number(number, today=TODAY)
    assert caught.value.code == code
    assert caught.value.field == "id_number"
    assert has_cjk(caught.value.zh)
    assert caught.value.en and not has_cjk(caught.value.en)
    assert caught.value.message("zh") == caught.value.zh
    assert caught.value.message("en") == caught.value.en


def test_a_person_born_today_is_accepted_but_not_one_born_tomorrow() -> None:
    assert validate_id_number(id_number(born=TODAY), today=TODAY) == id_number(born=TODAY)
    tomorrow = TODAY + timedelta(days=1)
    with pytest.raises(ValidationError) as caught:
        validate_id_number(id_number(born=tomorrow), today=TODAY)
    assert caught.value.code == "id_number_birth_date"


def test_the_region_codes_include_every_province_and_the_hk_macao_taiwan_permits() -> None:
    assert len(PROVINCE_CODES) == 35
    assert {11, 31, 44, 65, 71, 81, 82, 83} <= PROVINCE_CODES
    assert not {0, 10, 20, 39, 66, 80, 84, 99} & PROVINCE_CODES


def test_check_digit_refuses_anything_but_seventeen_digits() -> None:
    for bad in ("1101051949123100", "110105194912310021", "1101051949123100X"):
        with pytest.raises(ValueError):
            check_digit(bad)


# --- phones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        (" 138 0013 8000 ", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("+86 199-1234-5678", "19912345678"),
    ],
)
def test_mainland_mobile_numbers_are_accepted_and_normalised(raw: str, expected: str) -> None:
    assert validate_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "1380013800", "138001380001", "12800138000", "23800138000", "010-12345678", "1380013800a"],
)
def test_anything_but_an_eleven_digit_mobile_number_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_phone(raw, field="visitors.1.phone")
    assert caught.value.code == "phone_format"
    assert caught.value.field == "visitors.1.phone"
    assert has_cjk(caught.value.zh)


# --- names -------------------------------------------------------------------------------------


def test_names_have_runs_of_whitespace_collapsed() -> None:
    assert validate_name("  欧阳   娜娜 ") == "欧阳 娜娜"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("张", "name_length"), ("x" * 41, "name_length"), ("张<b>", "name_characters")],
)
def test_names_too_short_too_long_or_with_markup_are_rejected(raw: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_name(raw)
    assert caught.value.code == code
