"""Batch create: up to MAX_BATCH pickups in one request, one result per item, partial success.

Each item passes exactly the checks of a single create (service.check_pickup) and is written by the
same insert path (service.insert_pickups), all in one transaction: rows, events, timers and first
offers in a few multi-row statements rather than a few per pickup. An envelope that is not a list of
1..MAX_BATCH items, or not JSON, is refused as a whole and nothing is written.
"""

from __future__ import annotations

from typing import Any

import msgspec

from server.auth.principal import Principal
from server.db.engine import UNIQUE_VIOLATION
from server.errors import ApiError, field_errors
from server.pickups.schemas import MAX_BATCH, BatchItemResult, BatchOut, PickupCreate
from server.pickups.service import CheckedPickup, check_pickup, existing_orders, insert_pickups
from server.push.log import Actor, unit_of_work
from server.validation import check_body, decode_json_bytes

_SHAPE = f'a JSON object {{"items": [...]}} with 1 to {MAX_BATCH} pickups'


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    items: list[msgspec.Raw]


def read_envelope(body: bytes) -> list[msgspec.Raw]:
    """The items of a batch body, each still undecoded; 400 or 422 for anything else."""
    try:
        items = msgspec.json.decode(body, type=_Envelope).items
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        decode_json_bytes(body)  # 400 when it is not JSON at all
        raise field_errors([{"field": "items", "message": f"send {_SHAPE}"}]) from None
    if not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(
            422,
            "batch_too_large" if items else "validation_error",
            f"a batch holds 1 to {MAX_BATCH} pickups, this one {len(items)}",
            field="items",
        )
    return items


def _prefixed(index: int, exc: ApiError) -> BatchItemResult:
    errors = [{**e, "field": f"items[{index}].{e['field']}"} for e in exc.errors if "field" in e]
    return BatchItemResult(index=index, status="invalid", code=exc.code, message=exc.message, errors=errors)


async def create_batch(partner: Principal, body: bytes) -> BatchOut:
    """Check every item, then write the good ones at once; duplicates name the pickup holding the
    partner_order_no (an earlier item of the same batch included)."""
    results: list[BatchItemResult | None] = []
    good: list[tuple[int, CheckedPickup]] = []
    for index, raw in enumerate(read_envelope(body)):
        try:
            data = check_body(bytes(raw), PickupCreate)
            good.append((index, await check_pickup(data)))
            results.append(None)
        except ApiError as exc:
            results.append(_prefixed(index, exc))
    for _ in range(3):  # a concurrent create can take an order number between our read and insert
        try:
            created = await _write(partner, good, results)
            break
        except UNIQUE_VIOLATION:
            continue
    else:
        raise ApiError(409, "conflict", "pickups with these order numbers are being created meanwhile; retry")
    final = [r for r in created if r is not None]
    return BatchOut(
        created=sum(r.status == "created" for r in final),
        duplicates=sum(r.status == "duplicate" for r in final),
        invalid=sum(r.status == "invalid" for r in final),
        results=final,
    )


async def _write(
    partner: Principal, good: list[tuple[int, CheckedPickup]], results: list[BatchItemResult | None]
) -> list[BatchItemResult | None]:
    out = list(results)
    async with unit_of_work() as uow:
        order_nos = sorted({c.data.partner_order_no for _, c in good if c.data.partner_order_no})
        taken = await existing_orders(partner.id, order_nos) if order_nos else {}
        first_in_batch: dict[str, int] = {}  # order number -> index of the item that creates it
        fresh: list[tuple[int, CheckedPickup]] = []
        later_copies: list[tuple[int, str]] = []
        for index, c in good:
            number = c.data.partner_order_no
            if number and number in taken:
                out[index] = _duplicate(index, number, taken[number])
            elif number and number in first_in_batch:
                later_copies.append((index, number))
            else:
                if number:
                    first_in_batch[number] = index
                fresh.append((index, c))
        written = await insert_pickups(uow, Actor("partner", partner.id), partner.id, [c for _, c in fresh])
        ids: dict[int, Any] = {}
        for (index, _), pickup in zip(fresh, written, strict=True):
            ids[index] = pickup["id"]
            out[index] = BatchItemResult(
                index=index, status="created", id=pickup["id"], tracking_code=pickup["tracking_code"]
            )
        for index, number in later_copies:
            out[index] = _duplicate(index, number, ids[first_in_batch[number]])
    return out


def _duplicate(index: int, number: str, pickup_id: int) -> BatchItemResult:
    return BatchItemResult(
        index=index,
        status="duplicate",
        id=pickup_id,
        code="duplicate_partner_order_no",
        message=f"a pickup with partner_order_no {number!r} exists already",
        errors=[{"field": f"items[{index}].partner_order_no", "message": "used before"}],
    )
