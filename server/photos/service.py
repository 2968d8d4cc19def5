"""Photos of a pickup's parcel, taken by the courier at the door: stored as files under the photo
directory (LANSHOU_PHOTO_DIR), one row each, and shown only to the pickup's partner and to staff.

The image's type is read from its first bytes, never from the Content-Type the client sent: what is
stored and served back is a JPEG, PNG or WebP image, whatever the upload said it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from server.auth.principal import Principal
from server.dispatch.scope import scope_of
from server.errors import ApiError, not_found
from server.push.log import Actor, unit_of_work, utcnow
from server.tables import Pickup, PickupPhoto

# Phones shrink a photo to 1280 px and JPEG quality 0.8 before upload (scanner.js): 150-400 kB.
PHOTO_MAX_BYTES = 1_048_576
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
_HOLDING = ("accepted", "contacted")


def sniff_image(body: bytes) -> str | None:
    """The image type the bytes themselves say (magic numbers), or None when they are none of ours."""
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(body) >= 12 and body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    return None


def _write_file(directory: Path, name: str, body: bytes) -> None:
    """Write whole or not at all: a temporary name, then a rename."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(body)
    os.replace(partial, path)


async def add_photo(
    principal: Principal, pickup_id: int, declared_type: str, body: bytes, photo_dir: str
) -> int:
    """Store a photo of a pickup the courier holds; returns its id (sent later with collect)."""
    courier_id = principal.courier_id
    if courier_id is None:
        raise ApiError(403, "forbidden", "this account is not a courier")
    if declared_type not in PHOTO_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the photo as the raw body with Content-Type {', '.join(PHOTO_TYPES)} "
            f"(got {declared_type or 'none'!r})",
        )
    content_type = sniff_image(body)
    if content_type is None:
        raise ApiError(422, "validation_error", "the body is not a JPEG, PNG or WebP image", field="body")
    row = await Pickup.select(Pickup.status, Pickup.courier).where(Pickup.id == pickup_id).first()
    if row is None or row["courier"] != courier_id:
        raise not_found("pickup")  # as for any pickup the courier does not hold
    if row["status"] not in _HOLDING:
        raise ApiError(
            409, "illegal_transition", f"the pickup is {row['status']}", current_status=row["status"]
        )
    now = utcnow()
    name = f"{now:%Y/%m}/{secrets.token_hex(16)}{_EXTENSIONS[content_type]}"
    directory = Path(photo_dir)
    await asyncio.to_thread(_write_file, directory, name, body)
    try:
        async with unit_of_work() as uow:
            inserted = await PickupPhoto.insert(
                PickupPhoto(
                    pickup=pickup_id,
                    courier=courier_id,
                    content_type=content_type,
                    size=len(body),
                    sha256=hashlib.sha256(body).hexdigest(),
                    file_name=name,
                    created_at=now,
                )
            ).returning(PickupPhoto.id)
            photo_id = int(inserted[0]["id"])
            uow.add(
                "pickup.photo_added",
                actor=Actor("courier", courier_id),
                pickup_id=pickup_id,
                to=[courier_id],
                at=now,
                data={"photo_id": photo_id, "content_type": content_type, "size": len(body)},
            )
    except BaseException:
        (directory / name).unlink(missing_ok=True)  # no row, no file
        raise
    return photo_id


async def photo_of_collect(courier_id: int, pickup_id: int, photo_id: int) -> bool:
    """Whether this courier uploaded this photo of this pickup (what collect may bind)."""
    return await PickupPhoto.exists().where(
        (PickupPhoto.id == photo_id) & (PickupPhoto.pickup == pickup_id) & (PickupPhoto.courier == courier_id)
    )


async def read_photo(
    principal: Principal, pickup_id: int, photo_id: int, photo_dir: str
) -> tuple[bytes, str]:
    """(the image, its type) for the pickup's partner or a dispatcher whose scope holds the pickup's zone
    (admins: every pickup); to anyone else the photo does not exist."""
    pickup = await Pickup.select(Pickup.partner, Pickup.zone).where(Pickup.id == pickup_id).first()
    if pickup is None or not await _may_see(principal, pickup):
        raise not_found("photo")
    photo = (
        await PickupPhoto.select(PickupPhoto.content_type, PickupPhoto.file_name)
        .where((PickupPhoto.id == photo_id) & (PickupPhoto.pickup == pickup_id))
        .first()
    )
    if photo is None:
        raise not_found("photo")
    try:
        body = await asyncio.to_thread((Path(photo_dir) / photo["file_name"]).read_bytes)
    except FileNotFoundError:  # removed by hand from the photo directory
        raise not_found("photo") from None
    return body, photo["content_type"]


async def _may_see(principal: Principal, pickup: dict[str, Any]) -> bool:
    if principal.role == "partner":
        return bool(pickup["partner"] == principal.id)
    if principal.role in ("dispatcher", "admin"):
        return (await scope_of(principal)).covers_zone(pickup["zone"])
    return False
