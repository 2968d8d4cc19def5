"""SMS and voice-call alerts through a gateway, for offers a courier has not looked at.

The app rings and Web Push rings the phone, but a phone in a pocket on a scooter may not be heard. When
an offer has been neither seen (the card was on a visible screen: POST …/seen) nor answered within
LANSHOU_ALERT_GATEWAY_AFTER_S seconds, Lanshou asks a gateway (the operator's SMS / voice provider, or
a small adapter in front of it) to text the courier; with LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S, to call
them too if the offer is still untouched by then. The offer's own expiry and escalation run unchanged
beside this.

Each alert is a Timer row per offered courier (kind alert_sms or alert_voice), written with the offer,
deleted when the offer is seen, answered or withdrawn, and fired once across processes by the
scheduler's claim. The claiming transaction only decides and reads what the payload needs; the HTTP
request goes out after it commits, in a task of its own (the event loop and the database wait for
nothing), and the outcome is written afterwards as a `pickup.alert_sent` event. A process that dies
between the two loses that one alert (at most once: a courier is not texted twice for one stage).

The request: `POST <LANSHOU_ALERT_GATEWAY_URL>` with JSON
`{channel, courier_id, phone, pickup_id, tracking_code, zone, district, street, round, offered_at,
expires_at}`: the courier's full phone (the gateway must dial it), never the customer's. Signed as the
webhooks are: `X-Lanshou-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with
LANSHOU_ALERT_GATEWAY_SECRET; `X-Lanshou-Alert` names the alert (pickup, round, courier, channel) for
the gateway to drop a repeat. It goes through the webhooks' SSRF-checked sender: public addresses, or
those LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS allows (an on-premise gateway).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec

from server.dispatch.rules import epoch_ms
from server.push.log import SYSTEM, UnitOfWork, unit_of_work
from server.settings import Settings
from server.tables import Courier, Pickup, PickupOffer, Timer
from server.webhooks.destinations import (
    AllowedHosts,
    RefusedDestination,
    allowed_hosts,
    check_destination,
    delivery_client,
    post_to_checked_address,
    public_error,
)
from server.webhooks.service import sign
from server.zones.service import directory

log = logging.getLogger("lanshou.alerts")

SMS, VOICE = "alert_sms", "alert_voice"
ALERT_KINDS = (SMS, VOICE)
CHANNELS = {SMS: "sms", VOICE: "voice"}
# A whole attempt (resolve, connect, send, answer) ends by then.
SEND_DEADLINE_S = 15.0
_encoder = msgspec.json.Encoder()


class Gateway(msgspec.Struct, frozen=True):
    url: str
    secret: str
    after_s: int
    voice_after_s: int  # 0: no voice stage
    allowed: AllowedHosts


# Set by the running app (None: no gateway, and no alert timers are written). The CLI runs without it.
_gateway: Gateway | None = None


def configure(settings: Settings | None) -> None:
    global _gateway
    if settings is None or not settings.alert_gateway_url:
        _gateway = None
        return
    _gateway = Gateway(
        url=settings.alert_gateway_url,
        secret=settings.alert_gateway_secret,
        after_s=settings.alert_gateway_after_s,
        voice_after_s=settings.alert_gateway_voice_after_s,
        allowed=allowed_hosts(settings.alert_gateway_allowed_hosts),
    )


def alert_timer_rows(
    pickup_id: int, courier_ids: list[int], round_no: int, offered_at: datetime
) -> list[dict[str, Any]]:
    """The timers rows of new offers' alerts (none when the gateway is off)."""
    gateway = _gateway
    if gateway is None or not courier_ids:
        return []
    stages = [(SMS, gateway.after_s)] + ([(VOICE, gateway.voice_after_s)] if gateway.voice_after_s else [])
    return [
        {
            "kind": kind,
            "pickup": pickup_id,
            "courier": courier_id,
            "due_ms": epoch_ms(offered_at + timedelta(seconds=after_s)),
            "round": round_no,
        }
        for courier_id in courier_ids
        for kind, after_s in stages
    ]


async def drop_alerts(pickup_id: int, courier_ids: list[int]) -> None:
    """These couriers saw or answered (or lost) their offer of the pickup: no SMS or call for it."""
    if courier_ids:
        await Timer.delete().where(
            (Timer.pickup == pickup_id)
            & Timer.courier.is_in(sorted(set(courier_ids)))
            & Timer.kind.is_in(list(ALERT_KINDS))
        )


class Alert(msgspec.Struct, frozen=True):
    pickup_id: int
    courier_id: int
    channel: str
    key: str
    payload: dict[str, Any]


async def on_alert_due(uow: UnitOfWork, timer: dict[str, Any]) -> Callable[[], Awaitable[None]] | None:
    """A timer handler (inside the scheduler's claim): when the courier's offer of that round is still
    open and unseen, return the send to run after the claim commits; otherwise nothing (stale)."""
    gateway = _gateway
    if gateway is None or timer["courier"] is None:
        return None  # the gateway was turned off since the timer was written
    offer = (
        await PickupOffer.select(PickupOffer.offered_at, PickupOffer.expires_at)
        .where(
            (PickupOffer.pickup == timer["pickup"])
            & (PickupOffer.courier == timer["courier"])
            & (PickupOffer.round == timer["round"])
            & PickupOffer.outcome.is_null()
            & PickupOffer.seen_at.is_null()
        )
        .first()
    )
    if offer is None:
        return None
    pickup = await Pickup.select().where(Pickup.id == timer["pickup"]).first()
    courier = (
        await Courier.select(Courier.user.phone.as_alias("phone"))
        .where(Courier.id == timer["courier"])
        .first()
    )
    if pickup is None or pickup["status"] != "offered" or courier is None or not courier["phone"]:
        if courier is not None and not courier["phone"]:
            log.warning("courier %s has no phone: no %s alert", timer["courier"], CHANNELS[timer["kind"]])
        return None
    zone = directory.zones.get(pickup["zone"]) if pickup["zone"] else None
    channel = CHANNELS[timer["kind"]]
    alert = Alert(
        pickup_id=pickup["id"],
        courier_id=timer["courier"],
        channel=channel,
        key=f"{pickup['id']}-{timer['round']}-{timer['courier']}-{channel}",
        payload={
            "channel": channel,
            "courier_id": timer["courier"],
            "phone": courier["phone"],
            "pickup_id": pickup["id"],
            "tracking_code": pickup["tracking_code"],
            "zone": zone.code if zone else None,
            "district": pickup["district"],
            "street": pickup["street"],
            "round": timer["round"],
            "offered_at": offer["offered_at"].isoformat(),
            "expires_at": offer["expires_at"].isoformat() if offer["expires_at"] else None,
        },
    )
    return lambda: send_alert(gateway, alert)


async def send_alert(gateway: Gateway, alert: Alert) -> None:
    """POST the alert to the gateway (outside any transaction), then record the attempt as an event."""
    body = _encoder.encode(alert.payload)
    headers = {
        "content-type": "application/json",
        "user-agent": "Lanshou-Alert/1",
        "x-lanshou-signature": sign(gateway.secret, int(time.time()), body),
        "x-lanshou-alert": alert.key,
    }
    outcome: dict[str, Any]
    try:
        async with asyncio.timeout(SEND_DEADLINE_S), delivery_client() as client:
            destination = await check_destination(gateway.url, gateway.allowed)
            status = await post_to_checked_address(client, destination, body, headers)
        outcome = {"ok": 200 <= status < 300, "status": status}
    except (RefusedDestination, httpx.HTTPError, TimeoutError) as exc:
        detail = exc.detail if isinstance(exc, RefusedDestination) else repr(exc)
        log.warning("%s alert for pickup %s failed: %s", alert.channel, alert.pickup_id, detail)
        outcome = {"ok": False, "error": public_error(exc)}
    if not outcome["ok"] and "status" in outcome:
        log.warning(
            "%s alert for pickup %s: gateway answered HTTP %s", alert.channel, alert.pickup_id, status
        )
    async with unit_of_work() as uow:
        uow.add(
            "pickup.alert_sent",
            actor=SYSTEM,
            pickup_id=alert.pickup_id,
            data={"channel": alert.channel, "courier_id": alert.courier_id, **outcome},
        )
