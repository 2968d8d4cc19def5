"""What goes to a push service: the payload encrypted for the browser (RFC 8291) and a VAPID token."""

from __future__ import annotations

import base64
import secrets
import time

import http_ece
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from server.push.log import PushMessage
from server.webpush.keys import generate_private_key
from server.webpush.service import PushSender, audience, encrypt, offer_payload


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser() -> tuple[ec.EllipticCurvePrivateKey, bytes, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    auth = secrets.token_bytes(16)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return key, auth, b64url(point), b64url(auth)


def test_only_the_subscribed_browser_can_read_the_payload() -> None:
    key, auth, p256dh, auth_text = browser()
    body = encrypt(b'{"type":"offer"}', p256dh, auth_text)
    assert (
        http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm") == b'{"type":"offer"}'
    )
    other_key, other_auth, *_ = browser()
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        http_ece.decrypt(body, private_key=other_key, auth_secret=other_auth, version="aes128gcm")


def test_every_message_has_a_fresh_sender_key_and_salt() -> None:
    _, _, p256dh, auth = browser()
    first, second = encrypt(b"x", p256dh, auth), encrypt(b"x", p256dh, auth)
    assert first[:16] != second[:16]  # the salt
    assert first[21:86] != second[21:86]  # the sender's public key (keyid, 65 bytes)


def test_the_payload_names_the_pickup_and_where_to_open_it() -> None:
    message = PushMessage(
        id=1,
        type="pickup.offered",
        at="",
        pickup_id=42,
        to=[7],
        data={"pickup": {"district": "岳麓区", "street": "桔子洲街道", "parcel_count": 3}},
    )
    assert msgspec.json.decode(offer_payload(message)) == {
        "type": "offer",
        "pickup_id": 42,
        "title": "新揽收任务",
        "body": "岳麓区 桔子洲街道 · 3 件",
        "tag": "pickup-42",
        "url": "/app/?offer=42",
    }


def test_the_vapid_token_is_for_the_push_services_origin_and_verifies() -> None:
    sender = PushSender(generate_private_key(), "mailto:ops@example.com")
    header = sender.authorization("https://fcm.googleapis.com/fcm/send/abc?x=1")
    assert Vapid02.verify(header)
    token = header.split("t=")[1].split(",")[0]
    claims = msgspec.json.decode(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert (
        claims["aud"] == "https://fcm.googleapis.com" == audience("https://fcm.googleapis.com/fcm/send/abc")
    )
    assert claims["sub"] == "mailto:ops@example.com"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert sender.authorization("https://fcm.googleapis.com/other") == header  # reused per service


def test_only_offers_are_queued_and_a_sender_without_a_key_queues_nothing() -> None:
    offered = PushMessage(id=1, type="pickup.offered", at="", pickup_id=5, to=[1, 2], data={})
    withdrawn = PushMessage(id=2, type="pickup.withdrawn", at="", pickup_id=5, to=[1], data={})
    sender = PushSender(generate_private_key(), "mailto:ops@example.com")
    sender.notice([offered, withdrawn])
    assert sender.queue.qsize() == 1 and sender.queue.get_nowait().couriers == [1, 2]
    disabled = PushSender("", "mailto:ops@example.com")
    disabled.notice([offered])
    assert disabled.queue.qsize() == 0
