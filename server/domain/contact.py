"""Phone numbers, waybill numbers and tracking codes: parsing and checks with no I/O."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import lru_cache

# [0-9], not \d: \d also matches full-width and other Unicode digits, which are no phone number.
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_SEPARATORS = re.compile(r"[\s\-()]")
_S10 = re.compile(r"^[A-Z]{2}(\d{8})(\d)[A-Z]{2}$")
_WAYBILL = re.compile(r"^[A-Z0-9]{8,32}$")
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
# No 0/O, 1/I/L: tracking codes are read aloud over the phone.
_TRACKING_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def normalize_mobile(raw: str) -> str | None:
    """A mainland-China mobile number as 11 digits, or None if it is not one (+86 / 0086 prefixes ok)."""
    digits = _SEPARATORS.sub("", raw)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == 11 + len(prefix):
            digits = digits[len(prefix) :]
            break
    return digits if _MOBILE.match(digits) else None


def mask_phone(phone: str) -> str:
    """138****5678: enough for a person to recognise their number, not enough to call it."""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


_DIGITS = re.compile(r"[0-9０-９]")


def mask_detail(detail: str) -> str:
    """The address detail with its numbers hidden (building, unit, door): the customer recognises the
    place, someone with the link does not learn the door. Text without digits keeps its first 2 chars."""
    if _DIGITS.search(detail):
        return _DIGITS.sub("*", detail)
    return detail[:2] + "*" * min(max(len(detail) - 2, 0), 6)


def s10_check_digit(serial: str) -> int:
    """UPU S10 check digit of the 8-digit serial (EMS and international postal items)."""
    total = sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


# Other carriers' numbers have no check digit the waybill carries; their shape is what can be checked.
# (name, regular expression matched against the whole normalised number); LANSHOU_WAYBILL_PATTERNS
# replaces the list. These are the common shapes of the big mainland carriers' numbers.
DEFAULT_WAYBILL_PATTERNS: tuple[tuple[str, str], ...] = (
    ("SF", r"SF[0-9]{12,13}"),  # 顺丰 SF Express
    ("YTO", r"YT[0-9]{12,13}"),  # 圆通
    ("ZTO", r"7[0-9]{13}|[0-9]{12}"),  # 中通: 14 digits from 7, older 12 digits
    ("STO", r"77[0-9]{13}"),  # 申通
    ("YUNDA", r"[0-9]{13}|[0-9]{15}"),  # 韵达 (13 digits are also China Post's domestic numbers)
    ("JT", r"JT[0-9]{13}"),  # 极兔 J&T
    ("JD", r"JD[A-Z0-9]{11,13}"),  # 京东
)


@lru_cache(maxsize=8)
def compile_waybill_patterns(
    patterns: tuple[tuple[str, str], ...],
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The configured patterns compiled once (settings hand the same tuple to every request)."""
    return tuple((name, re.compile(regex)) for name, regex in patterns)


def check_waybill(
    raw: str, patterns: Sequence[tuple[str, str]] = DEFAULT_WAYBILL_PATTERNS
) -> tuple[str | None, str | None]:
    """(normalised waybill number, None) or (None, why it is refused).

    Every number is 8-32 letters or digits. One in the UPU S10 form (two letters, 8 digits, a check
    digit, two letters: EMS and international post) must carry the right check digit, which catches
    most mis-scans and typos; any other must match one carrier's pattern (`patterns`), so that a
    scanned order number or a phone number is not taken for a waybill.
    """
    value = raw.strip().upper().replace(" ", "")
    if not _WAYBILL.match(value):
        return None, "a waybill number is 8 to 32 letters or digits"
    s10 = _S10.match(value)
    if s10:
        if s10_check_digit(s10.group(1)) != int(s10.group(2)):
            return None, "the S10 check digit does not match: re-scan the waybill"
        return value, None
    compiled = compile_waybill_patterns(tuple(patterns))
    if any(regex.fullmatch(value) for _, regex in compiled):
        return value, None
    names = ", ".join(name for name, _ in compiled)
    return None, (
        "not a waybill number: neither a UPU S10 number (e.g. EA123456785CN) nor one of the carriers' "
        f"formats ({names or 'none configured'})"
    )


# 20 characters of 31 are 20·log2(31) ≈ 99 bits: the tracking page at /t/<code> is public, so the code is
# its only key and must not be guessable even by someone trying billions. Codes issued before (LS + 10
# characters, ≈ 50 bits) stay valid: they are looked up as they are.
TRACKING_CODE_CHARS = 20
TRACKING_CODE_MAX = 32  # pickups.tracking_code is varchar(32) (migration 2026-11-26T01:40)
_TRACKING_CODE = re.compile(rf"LS[{_TRACKING_ALPHABET}]{{10,{TRACKING_CODE_MAX - 2}}}")


_TRACKING_CODES = len(_TRACKING_ALPHABET) ** TRACKING_CODE_CHARS


def new_tracking_code() -> str:
    """LS + 20 characters from a 31-letter alphabet: about 99 bits of entropy, unguessable.

    One uniform draw below 31^20, written in base 31: the same distribution as 20 `secrets.choice`
    calls, with one read of the system's random source instead of twenty (a tenth of the cost)."""
    n = secrets.randbelow(_TRACKING_CODES)
    chars = []
    for _ in range(TRACKING_CODE_CHARS):
        n, digit = divmod(n, len(_TRACKING_ALPHABET))
        chars.append(_TRACKING_ALPHABET[digit])
    return "LS" + "".join(chars)


def looks_like_tracking_code(value: str) -> bool:
    """Whether `value` has the shape of a tracking code Lanshou issued (old 12-character ones too)."""
    return _TRACKING_CODE.fullmatch(value) is not None
