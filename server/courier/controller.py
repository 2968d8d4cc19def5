"""Courier JSON API: for the PWA, PDAs and native apps alike."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromQuery, HeaderParameter, JSONBody, Parameter
from litestar.response import ServerSentEvent

from server.auth.principal import Principal, courier_only
from server.courier import duty, service
from server.courier.schemas import ActionIn, CollectIn, DeclineIn, DutyIn, DutyOut, FailIn, HeartbeatIn
from server.pickups.schemas import PickupOut
from server.push.log import courier_events_since, latest_event_id
from server.push.sse import event_stream, parse_last_event_id
from server.validation import PathId, check_json_body
from server.webpush import service as webpush
from server.webpush.schemas import PushKeyOut, PushSubscriptionIn, PushSubscriptionOut


class CourierController(Controller):
    path = "/api/v1/courier"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [courier_only]
    tags = ["courier"]

    @post("/duty", status_code=200, summary="Go on or off duty")
    async def duty(self, request: Request[Principal, Any, Any], data: JSONBody[DutyIn]) -> DutyOut:
        return await duty.set_duty(request.user, data.on_duty)

    @post("/heartbeat", status_code=200, summary="I am alive (and here): last seen and position")
    async def heartbeat(
        self, request: Request[Principal, Any, Any], data: JSONBody[HeartbeatIn]
    ) -> dict[str, Any]:
        return await duty.heartbeat(request.user, data)

    @get("/push-subscriptions/key", summary="The server's VAPID public key (applicationServerKey)")
    async def push_key(self, request: Request[Principal, Any, Any]) -> PushKeyOut:
        return PushKeyOut(public_key=request.app.state.webpush.public_key)

    @post("/push-subscriptions", status_code=200, summary="Register this browser for Web Push offers")
    async def push_subscribe(
        self, request: Request[Principal, Any, Any], data: JSONBody[PushSubscriptionIn]
    ) -> PushSubscriptionOut:
        sender = request.app.state.webpush
        assert request.user.courier_id is not None  # courier_only guard
        return await webpush.subscribe(request.user.courier_id, data, sender.allowed, sender.public_key)

    @delete("/push-subscriptions", status_code=204, summary="Stop Web Push to this browser")
    async def push_unsubscribe(
        self,
        request: Request[Principal, Any, Any],
        endpoint: Annotated[str, Parameter(min_length=1, max_length=1000)],
    ) -> None:
        assert request.user.courier_id is not None  # courier_only guard
        await webpush.unsubscribe(request.user.courier_id, endpoint)

    @get("/pickups", summary="Your open offers and the pickups you hold")
    async def pickups(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await service.my_pickups(request.user)

    @get("/events", summary="Server-Sent Events: offers, withdrawals and changes to your pickups")
    async def events(
        self,
        request: Request[Principal, Any, Any],
        last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        last_event_id: FromQuery[str | None] = None,
    ) -> ServerSentEvent:
        courier_id = request.user.courier_id
        assert courier_id is not None  # courier_only guard
        after = parse_last_event_id(last_event_id_header, last_event_id)
        return event_stream(
            request.app.state.hub,
            attach=lambda hub: hub.attach_courier(courier_id),
            replay=lambda after_id, limit: courier_events_since(courier_id, after_id, limit),
            latest=lambda: latest_event_id(courier_id),
            last_event_id=after,
        )

    @post("/pickups/{pickup_id:int}/accept", status_code=200, summary="Accept an offered pickup")
    async def accept(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[ActionIn | None] = None
    ) -> PickupOut:
        return await service.accept(request.user, pickup_id, data or ActionIn())

    @post(
        "/pickups/{pickup_id:int}/decline",
        status_code=200,
        summary="Let an offered pickup pass, with a reason",
    )
    async def decline(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[DeclineIn]
    ) -> PickupOut:
        return await service.decline(request.user, pickup_id, data)

    @post(
        "/pickups/{pickup_id:int}/seen",
        status_code=200,
        summary="Record that the offer is on your screen (no SMS or call follows)",
    )
    async def seen(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[ActionIn | None] = None
    ) -> PickupOut:
        return await service.seen(request.user, pickup_id, data or ActionIn())

    @post("/pickups/{pickup_id:int}/arrived", status_code=200, summary="Record that you are at the door")
    async def arrived(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[ActionIn | None] = None
    ) -> PickupOut:
        return await service.arrived(request.user, pickup_id, data or ActionIn())

    @post(
        "/pickups/{pickup_id:int}/contacted", status_code=200, summary="Record that you reached the customer"
    )
    async def contacted(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[ActionIn | None] = None
    ) -> PickupOut:
        return await service.contacted(request.user, pickup_id, data or ActionIn())

    @post(
        "/pickups/{pickup_id:int}/collect", status_code=200, summary="Collect with the scanned waybill number"
    )
    async def collect(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[CollectIn]
    ) -> PickupOut:
        patterns = request.app.state.settings.waybill_patterns
        return await service.collect(request.user, pickup_id, data, patterns)

    @post("/pickups/{pickup_id:int}/fail", status_code=200, summary="Report that the pickup cannot be made")
    async def fail(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[FailIn]
    ) -> PickupOut:
        return await service.fail(request.user, pickup_id, data)
