"""Photos over HTTP: the courier uploads one as the raw request body; the pickup's partner and staff
read it back. Not the JSON API's body check (check_json_body): the body here is an image."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post

from server.auth.principal import Principal, courier_only, require_roles
from server.courier.schemas import PhotoOut
from server.photos import service
from server.photos.service import PHOTO_MAX_BYTES
from server.validation import PathId

PHOTO_UPLOAD_PATH = "/api/v1/courier/pickups/{pickup_id}/photos"
PHOTO_READ_PATH = "/api/v1/pickups/{pickup_id}/photos/{photo_id}"


class CourierPhotoController(Controller):
    path = "/api/v1/courier/pickups"
    guards = [courier_only]
    tags = ["courier"]

    @post(
        "/{pickup_id:int}/photos",
        status_code=201,
        summary="Upload a photo of the parcel (before collecting)",
        description=(
            "The raw body is one image, at most 1 MiB, with Content-Type image/jpeg, image/png or "
            "image/webp; its type is read from its bytes. Answers the photo_id to send with collect."
        ),
        request_max_body_size=PHOTO_MAX_BYTES,
    )
    async def upload(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> PhotoOut:
        declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        photo_dir = request.app.state.settings.photo_dir
        return PhotoOut(photo_id=await service.add_photo(request.user, pickup_id, declared, body, photo_dir))


class PickupPhotoController(Controller):
    path = "/api/v1/pickups"
    guards = [require_roles("partner", "dispatcher")]
    tags = ["pickups"]

    @get(
        "/{pickup_id:int}/photos/{photo_id:int}",
        summary="A photo the courier took of the parcel (the pickup's partner and staff only)",
    )
    async def read(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, photo_id: PathId
    ) -> Response[bytes]:
        body, content_type = await service.read_photo(
            request.user, pickup_id, photo_id, request.app.state.settings.photo_dir
        )
        return Response(
            content=body,
            media_type=content_type,
            headers={"cache-control": "private, max-age=86400", "x-content-type-options": "nosniff"},
        )
