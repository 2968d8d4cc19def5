"""Unit tests for server.domain.contact: mobile numbers, masking, waybill numbers, tracking codes."""

from __future__ import annotations

import math
import random

import pytest

from server.domain.contact import (
    check_waybill,
    looks_like_tracking_code,
    mask_phone,
    new_tracking_code,
    normalize_mobile,
    s10_check_digit,
)
from server.tables import Pickup

# -- mobile numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13912345678",
        "139 1234 5678",
        "139-1234-5678",
        "(139) 1234-5678",
        " 13912345678 ",
        "+8613912345678",
        "+86 139 1234 5678",
        "+86-139-1234-5678",
        "(+86) 13912345678",
        "008613912345678",
        "0086 139 1234 5678",
        "8613912345678",
        "86 139 1234 5678",
        "+86\u3000139\u30001234\u30005678",  # ideographic spaces from a Chinese input method
        "139\t1234\n5678",
    ],
)
def test_a_mainland_mobile_is_normalised_to_eleven_digits(raw: str) -> None:
    assert normalize_mobile(raw) == "13912345678"


@pytest.mark.parametrize("second", "3456789")
def test_every_mobile_second_digit_from_3_to_9_is_accepted(second: str) -> None:
    number = f"1{second}012345678"
    assert normalize_mobile(number) == number


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "not a phone",
        "1391234567",  # 10 digits
        "139123456789",  # 12 digits
        "12912345678",  # no mobile range starts 12
        "10012345678",
        "23912345678",
        "+86 1391234567",  # the prefix does not excuse a short number
        "+8613912345678 9",
        "+85213912345678",  # Hong Kong's country code
        "+1 13912345678",
        "0086+13912345678",
        "8686 13912345678",  # only one prefix is stripped
        "010-12345678",  # a Beijing landline
        "139.1234.5678",  # dots are not a separator we accept
        "13９12345678",  # a full-width digit: not a number a phone can dial
        "139١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    ],
)
def test_anything_else_is_not_a_mobile(raw: str) -> None:
    assert normalize_mobile(raw) is None


def test_a_normalised_mobile_is_plain_ascii_digits() -> None:
    normalised = normalize_mobile("+86 139 1234 5678")
    assert normalised is not None
    assert normalised.isascii() and normalised.isdigit() and len(normalised) == 11


def test_normalising_is_idempotent() -> None:
    once = normalize_mobile("0086 (139) 1234-5678")
    assert once is not None
    assert normalize_mobile(once) == once


# -- masking -----------------------------------------------------------------------------------------


def test_a_mobile_is_masked_to_its_first_three_and_last_four_digits() -> None:
    assert mask_phone("13912345678") == "139****5678"


def test_masking_keeps_the_length_so_the_shape_is_recognisable() -> None:
    for phone in ["13912345678", "021123456789", "+8613912345678"]:
        masked = mask_phone(phone)
        assert len(masked) == len(phone)
        assert masked.startswith(phone[:3]) and masked.endswith(phone[-4:])
        assert set(masked[3:-4]) == {"*"}


@pytest.mark.parametrize("short", ["", "1", "12345", "123456"])
def test_a_number_too_short_to_mask_partly_is_masked_entirely(short: str) -> None:
    assert mask_phone(short) == "*" * len(short)


# -- S10 waybill numbers ---------------------------------------------------------------------------

_UPU_WEIGHTS = [8, 6, 4, 2, 3, 5, 9, 7]


def upu_check_digit(serial: str) -> int:
    """The UPU S10 check digit, written from the standard (S10-12, annex A) independently of the module:
    weigh the 8 digits by 8 6 4 2 3 5 9 7, sum, C = 11 - (sum mod 11); C = 10 gives 0 and C = 11 gives 5.
    """
    total = 0
    for digit, weight in zip(serial, _UPU_WEIGHTS, strict=True):
        total += int(digit) * weight
    c = 11 - total % 11
    if c == 10:
        return 0
    if c == 11:
        return 5
    return c


def test_the_reference_check_digits_by_hand() -> None:
    # 1·8 + 2·6 + 3·4 + 4·2 + 5·3 + 6·5 + 7·9 + 8·7 = 204; 204 mod 11 = 6; 11 - 6 = 5
    assert upu_check_digit("12345678") == 5
    # 4·8 + 7·6 + 3·4 + 1·2 + 2·3 + 4·5 + 8·9 + 2·7 = 200; 200 mod 11 = 2; 11 - 2 = 9
    assert upu_check_digit("47312482") == 9


@pytest.mark.parametrize(
    "waybill",
    [
        "EE123456785CN",  # EMS China
        "EA123456785CN",
        "RR473124829GB",  # the UPU's own example serial, as a Royal Mail registered item
        "AA473124829GB",
        "CP000000005DE",  # serial 00000000: sum 0, C = 11 → 5
    ],
)
def test_known_valid_s10_numbers_pass(waybill: str) -> None:
    serial, check = waybill[2:10], int(waybill[10])
    assert s10_check_digit(serial) == check == upu_check_digit(serial)
    assert check_waybill(waybill) == (waybill, None)


def test_the_check_digit_matches_the_standard_for_every_kind_of_remainder() -> None:
    rng = random.Random(20261125)
    by_remainder: dict[int, str] = {}
    for _ in range(20_000):
        serial = f"{rng.randrange(10**8):08d}"
        assert s10_check_digit(serial) == upu_check_digit(serial), serial
        by_remainder.setdefault(
            sum(int(d) * w for d, w in zip(serial, _UPU_WEIGHTS, strict=True)) % 11, serial
        )
    # Every remainder was seen, including the two special cases (C = 11 → 5 and C = 10 → 0).
    assert sorted(by_remainder) == list(range(11))
    assert s10_check_digit(by_remainder[0]) == 5
    assert s10_check_digit(by_remainder[1]) == 0


def test_every_wrong_check_digit_is_refused() -> None:
    for digit in "0123456789":
        waybill = f"EE12345678{digit}CN"
        value, problem = check_waybill(waybill)
        if digit == "5":
            assert (value, problem) == (waybill, None)
        else:
            assert value is None and problem is not None and "check digit" in problem


def test_a_single_mistyped_serial_digit_is_caught() -> None:
    # The weights are all coprime to 11, so any one changed digit changes the remainder.
    good = "RR473124829GB"
    for position in range(2, 10):
        for digit in "0123456789":
            if digit == good[position]:
                continue
            typo = good[:position] + digit + good[position + 1 :]
            assert check_waybill(typo)[0] is None, typo


def test_a_waybill_is_normalised_to_upper_case_without_spaces() -> None:
    assert check_waybill(" ee 1234 5678 5cn ") == ("EE123456785CN", None)


@pytest.mark.parametrize(
    "waybill",
    [
        "SF1234567890123",
        "75312345678901",
        "YT7512345678901",
        "JDVA12345678901",
        "JT0001234567890",
        "773012345678901",
    ],
)
def test_other_carriers_numbers_pass_by_the_default_patterns(waybill: str) -> None:
    assert check_waybill(waybill) == (waybill, None)


@pytest.mark.parametrize("waybill", ["YT12345678", "ORDER20261125", "13912345678", "AB12345678"])
def test_a_number_no_carrier_uses_is_refused(waybill: str) -> None:
    value, problem = check_waybill(waybill)
    assert value is None and problem is not None
    assert "S10" in problem and "SF" in problem  # says what would have been accepted


def test_configured_patterns_replace_the_defaults() -> None:
    patterns = (("ACME", r"ACME[0-9]{6}"),)
    assert check_waybill("acme123456", patterns) == ("ACME123456", None)
    assert check_waybill("SF1234567890123", patterns)[0] is None
    # S10 numbers are checked by their check digit whatever the patterns say.
    assert check_waybill("EA123456785CN", patterns) == ("EA123456785CN", None)
    assert check_waybill("EA123456784CN", (("ANY", r".*"),))[0] is None
    # A pattern matches the whole number, not a part of it.
    assert check_waybill("XACME123456", patterns)[0] is None


@pytest.mark.parametrize(
    "waybill", ["", "1234567", "A" * 33, "EE-12345678", "单号12345678", "EE12345678５CN"]
)
def test_a_waybill_that_is_not_8_to_32_letters_or_digits_is_refused(waybill: str) -> None:
    value, problem = check_waybill(waybill)
    assert value is None
    assert problem == "a waybill number is 8 to 32 letters or digits"


# -- tracking codes -----------------------------------------------------------------------------------

_READ_ALOUD_SAFE = set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")


def test_tracking_codes_are_ls_and_twenty_characters_that_cannot_be_misheard() -> None:
    codes = [new_tracking_code() for _ in range(10_000)]
    for code in codes:
        assert len(code) == 22
        assert code.startswith("LS")
        assert set(code[2:]) <= _READ_ALOUD_SAFE
    assert len(set(codes)) == len(codes)
    # No 0/O or 1/I/L anywhere, and every allowed character does occur (the alphabet is all used).
    used = set("".join(c[2:] for c in codes))
    assert used == _READ_ALOUD_SAFE
    assert not used & set("01OIL")


def test_tracking_codes_carry_at_least_96_bits() -> None:
    # The code is the only key to the public tracking page (/t/<code>).
    assert (len(new_tracking_code()) - 2) * math.log2(len(_READ_ALOUD_SAFE)) >= 96


def test_tracking_codes_fit_the_column() -> None:
    assert len(new_tracking_code()) <= Pickup.tracking_code.length


def test_old_and_new_tracking_codes_are_recognised_and_nothing_else() -> None:
    assert looks_like_tracking_code(new_tracking_code())
    assert looks_like_tracking_code("LS23456789AB")  # issued before the codes grew: still valid
    for bad in (
        "",
        "LS",
        "LS2345678",
        "ls23456789AB",
        "LS23456789A0",
        "LS" + "2" * 31,
        "XX23456789AB",
        "LS23456789AB\n",
        "LS２3456789AB",
    ):
        assert not looks_like_tracking_code(bad), bad
