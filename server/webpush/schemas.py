"""What the courier app sends to register for Web Push: the browser's PushSubscription.toJSON()."""

from __future__ import annotations

from typing import Annotated

import msgspec

from server.validation import Url

# base64url as browsers write it (no padding); checked for what it decodes to in the service.
Base64Url = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+={0,2}$")]


class PushKeys(msgspec.Struct, forbid_unknown_fields=True):
    p256dh: Base64Url
    auth: Base64Url


class PushSubscriptionIn(
    msgspec.Struct, forbid_unknown_fields=True, rename={"expiration_time": "expirationTime"}
):
    endpoint: Url
    keys: PushKeys
    # Sent by PushSubscription.toJSON(); push services re-issue, and a gone endpoint answers 404/410.
    expiration_time: Annotated[int, msgspec.Meta(ge=0)] | None = None


class PushSubscriptionOut(msgspec.Struct):
    endpoint: str
    public_key: str  # the server's VAPID key, the applicationServerKey to subscribe with


class PushKeyOut(msgspec.Struct):
    public_key: str
