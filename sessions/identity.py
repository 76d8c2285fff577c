"""Resident identity numbers (GB 11643-1999) and phone numbers.

An applicant is known by the 18-character citizen identity number on the ID
card whose photo they upload; the check digit catches every single-character
typo, so we refuse a bad number at the form rather than after review.
"""

from __future__ import annotations

import re
from datetime import date

from .errors import ValidationError

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"

#: First two digits: provinces, autonomous regions, municipalities; 81/82/83 are
#: the residence permits of Hong Kong, Macao and Taiwan residents living in the
#: mainland (same format, same check digit).
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)

_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_PHONE = re.compile(r"^1[3-9]\d{9}$")


def check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def normalise_id_number(raw: str) -> str:
    return raw.strip().replace(" ", "").upper()


def birth_date_of(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def validate_id_number(raw: str, *, today: date, field: str = "id_number") -> str:
    """Return the normalised number or raise ``ValidationError`` saying what is wrong."""
    number = normalise_id_number(raw)
    if not _ID_SHAPE.match(number):
        raise ValidationError(
            "id_number_format",
            "身份证号码应为18位，前17位为数字，最后一位为数字或X",
            "The ID number must be 18 characters: 17 digits then a digit or X",
            field=field,
        )
    if int(number[:2]) not in PROVINCE_CODES:
        raise ValidationError(
            "id_number_region",
            "身份证号码的地区码无效",
            "The region code of the ID number is not valid",
            field=field,
        )
    try:
        born = birth_date_of(number)
    except ValueError:
        born = None
    if born is None or born.year < 1900 or born > today:
        raise ValidationError(
            "id_number_birth_date",
            "身份证号码中的出生日期无效",
            "The birth date inside the ID number is not valid",
            field=field,
        )
    if check_digit(number[:17]) != number[17]:
        raise ValidationError(
            "id_number_check_digit",
            "身份证号码校验位不正确，请核对后重新输入",
            "The check digit of the ID number is wrong; please check the number",
            field=field,
        )
    return number


def validate_phone(raw: str, *, field: str = "phone") -> str:
    """Mainland mobile numbers only: the notifier sends the visit code by SMS."""
    phone = re.sub(r"[\s-]", "", raw.strip())
    if phone.startswith("+86"):
        phone = phone[3:]
    if not _PHONE.match(phone):
        raise ValidationError(
            "phone_format",
            "请输入11位手机号码",
            "Please enter an 11-digit mainland mobile number",
            field=field,
        )
    return phone


def validate_name(raw: str, *, field: str = "name") -> str:
    name = " ".join(raw.split())
    if not 2 <= len(name) <= 40:
        raise ValidationError(
            "name_length",
            "姓名应为2至40个字符",
            "A name must be 2 to 40 characters",
            field=field,
        )
    if any(ch in name for ch in "<>\"'&;\\/{}[]"):
        raise ValidationError(
            "name_characters",
            "姓名中含有不允许的字符",
            "The name contains characters that are not allowed",
            field=field,
        )
    return name
