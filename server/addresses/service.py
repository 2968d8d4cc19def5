"""One-line addresses: the step that turns a partner's one-line address into an Address before the
create checks, so a one-line address goes through exactly the checks a structured one does.

The splitting itself is server/domain/oneline.py (cpca, normalised to GB/T 2260 names).
"""

from __future__ import annotations

from server.domain.oneline import problems, split_address
from server.errors import field_errors
from server.pickups.schemas import Address


def structured_address(address: Address | str, field: str = "address") -> Address:
    """The Address as sent, or the one-line address split into one; a 422 naming every part
    (`address.city`, ...) the line lacks or leaves ambiguous."""
    if isinstance(address, Address):
        return address
    split = split_address(address)
    errors = problems(split, field)
    if errors:
        raise field_errors(errors)
    return Address(
        province=split.province,
        city=split.city,
        district=split.district,
        street=split.street,
        detail=split.detail,
    )
