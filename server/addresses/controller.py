"""Partner API: try how Lanshou splits a one-line address, without creating anything."""

from __future__ import annotations

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody

from server.auth.principal import partner_only
from server.domain.oneline import AddressSplit, split_address
from server.pickups.schemas import OneLineAddress
from server.validation import check_json_body


class ParseIn(msgspec.Struct, forbid_unknown_fields=True):
    address: OneLineAddress


class AddressController(Controller):
    path = "/api/v1/addresses"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [partner_only]
    tags = ["addresses"]

    @post(
        "/parse",
        status_code=200,
        summary="Split a one-line address into province, city, district, street and detail",
        description=(
            "The same split a pickup create does with a one-line `address`. Always 200 for a line "
            "within bounds: `missing` lists the parts not found (the create would refuse it with a "
            "422 naming them), `candidates` the places an ambiguous district name may mean."
        ),
    )
    async def parse(self, data: JSONBody[ParseIn]) -> AddressSplit:
        return split_address(data.address)
