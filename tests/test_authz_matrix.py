"""Who may do what: every route × every role, over HTTP against a real server (SQLite and PostgreSQL).

The rule the server is held to: no credentials is 401 (the console sends a browser to the login page
instead); a route outside your role is 403; an object outside your reach (another partner's pickup, a
pickup never offered to you, another station's pickup or courier) is "not found", exactly like one that
does not exist; writing a zone of another station, or into one, is 403. A refused write changes nothing:
the event log (where every change is written) does not grow and the zones read back the same, as the
admin sees them. Streams, live and replayed with Last-Event-ID, carry only what the caller may read.

MATRIX below is the decision for each route and role. A route the app has and the table lacks fails
test_every_route_has_a_decision, so no new route ships without one.

The matrix has a database and a server of its own: a dispatcher's `PUT /api/v1/zones?replace=true`
that reaches beyond its station deactivates every other zone, and on the shared test database that
would take the rest of the suite down with this test.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import httpx
import msgspec
import pytest

from server.app import create_app
from server.demo import PARTNER_CODE
from server.settings import load_settings
from tests.conftest import (
    Api,
    Database,
    Personas,
    ServerProcess,
    demo_server,
    new_waybill,
    pickup_body,
    square,
)
from tests.test_webhook_deliveries import insert_delivery, run_sql

# The personas: station 1's courier and dispatcher, station 2's, the admin, and two partners. The pickup
# most routes are tried on is the first partner's, in station 1's zone, offered to station 1's courier.
ROLES = ("anon", "courier", "courier2", "disp", "disp2", "admin", "partner", "partner2")
KIND = {
    "courier": "courier",
    "courier2": "courier",
    "disp": "dispatcher",
    "disp2": "dispatcher",
    "admin": "admin",
    "partner": "partner",
    "partner2": "partner",
}
# Whose pickups, couriers and zones each role reads: its own station's, and never the other's.
SEES = {"courier": {1}, "courier2": {2}, "disp": {1}, "disp2": {2}, "admin": {1, 2}}

PICKUP = "/api/v1/pickups/{pickup_id:int}"
WEBHOOK = "/api/v1/partner/webhook"
DELIVERY = WEBHOOK + "/deliveries/{delivery_id:int}"
COURIER_PICKUP = "/api/v1/courier/pickups/{pickup_id:int}"
COURIER_ZONES = "/api/v1/couriers/{courier_id:int}/zones"
PUSH_SUBSCRIPTIONS = "/api/v1/courier/push-subscriptions"
ROW = "/console/pickups/{pickup_id:int}/row"
CONSOLE_COURIER = "/console/couriers/{courier_id:int}"
DRAWER = "/console/pickups/{pickup_id:int}"
STOP_SHIP = "/api/v1/stop-ship-areas"
STOP_SHIP_AREA = STOP_SHIP + "/{area_id:int}"


class Route(NamedTuple):
    method: str
    path: str  # as the app declares it
    case: str = ""  # which object, when one route is tried on several


def expect(*statuses: int) -> dict[str, int]:
    return dict(zip(ROLES, statuses, strict=True))


# fmt: off
MATRIX: dict[Route, dict[str, int]] = {
    # anon · courier and courier2 (stations 1, 2) · disp and disp2 (stations 1, 2) · admin · partner and partner2
    # route                                                                        anon cour cou2 disp dis2 admn part par2
    Route("GET", "/api/v1/me"):                                             expect(401, 200, 200, 200, 200, 200, 200, 200),
    # Partners, on their own pickups; another partner's is not found.
    Route("POST", "/api/v1/pickups"):                                       expect(401, 403, 403, 403, 403, 403, 201, 201),
    Route("POST", "/api/v1/pickups/batch"):                                 expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("GET", "/api/v1/pickups"):                                        expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("GET", PICKUP):                                                   expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", PICKUP + "/chase"):                                       expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", PICKUP + "/cancel"):                                      expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", PICKUP + "/reschedule"):                                  expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", PICKUP + "/address"):                                     expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", PICKUP + "/rating"):                                      expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", PICKUP + "/complaint"):                                   expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", "/api/v1/addresses/parse"):                               expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("GET", WEBHOOK):                                                  expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("PUT", WEBHOOK):                                                  expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("DELETE", WEBHOOK):                                               expect(401, 403, 403, 403, 403, 403, 204, 204),
    Route("GET", "/api/v1/serviceability"):                                 expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("GET", STOP_SHIP + "/active"):                                    expect(401, 403, 403, 403, 403, 403, 200, 200),
    # A partner's webhook deliveries: its own; another partner's do not exist. Re-arm acts on one's own
    # webhook: the first partner's is dead (200), the second's is not (409).
    Route("GET", WEBHOOK + "/deliveries"):                                  expect(401, 403, 403, 403, 403, 403, 200, 200),
    Route("GET", DELIVERY):                                                 expect(401, 403, 403, 403, 403, 403, 200, 404),
    Route("POST", DELIVERY + "/replay"):                                    expect(401, 403, 403, 403, 403, 403, 202, 404),
    Route("POST", WEBHOOK + "/rearm"):                                      expect(401, 403, 403, 403, 403, 403, 200, 409),
    # Couriers, on what was offered to them or what they hold; anything else is not found.
    Route("POST", "/api/v1/courier/duty"):                                  expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("POST", "/api/v1/courier/heartbeat"):                             expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("GET", "/api/v1/courier/pickups"):                                expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("GET", "/api/v1/courier/events", "live"):                         expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("GET", "/api/v1/courier/events", "replayed"):                     expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("GET", PUSH_SUBSCRIPTIONS + "/key"):                              expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("POST", PUSH_SUBSCRIPTIONS):                                      expect(401, 200, 200, 403, 403, 403, 403, 403),
    Route("DELETE", PUSH_SUBSCRIPTIONS):                                    expect(401, 204, 204, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/accept"):                              expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/contacted"):                           expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/decline"):                             expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/seen"):                                expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/arrived"):                             expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/collect"):                             expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/fail"):                                expect(401, 200, 404, 403, 403, 403, 403, 403),
    Route("POST", COURIER_PICKUP + "/photos"):                              expect(401, 201, 404, 403, 403, 403, 403, 403),
    # A parcel's photo: the pickup's partner and the staff over its station; to others it does not exist.
    Route("GET", PICKUP + "/photos/{photo_id:int}"):                        expect(401, 403, 403, 200, 404, 200, 200, 404),
    # Dispatchers (and admins), within their station subtree.
    Route("POST", "/api/v1/dispatch/assign"):                               expect(401, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", "/api/v1/dispatch/assign", "station 2's pickup to station 1's courier"):
                                                                            expect(401, 403, 403, 404, 404, 200, 403, 403),
    Route("POST", "/api/v1/dispatch/unassign"):                             expect(401, 403, 403, 200, 404, 200, 403, 403),
    Route("GET", "/api/v1/dispatch/stations"):                              expect(401, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/api/v1/zones"):                                          expect(401, 403, 403, 200, 200, 200, 403, 403),
    Route("PUT", "/api/v1/zones", "edit a zone of station 1"):              expect(401, 403, 403, 200, 403, 200, 403, 403),
    Route("PUT", "/api/v1/zones", "create a zone in station 1"):            expect(401, 403, 403, 200, 403, 200, 403, 403),
    Route("PUT", "/api/v1/zones", "create a zone in station 1 by ?station="):
                                                                            expect(401, 403, 403, 200, 403, 200, 403, 403),
    Route("PUT", "/api/v1/zones", "move a zone of station 1 to station 2"): expect(401, 403, 403, 403, 403, 200, 403, 403),
    Route("PUT", "/api/v1/zones", "move a zone of station 2 into station 1"):
                                                                            expect(401, 403, 403, 403, 403, 200, 403, 403),
    Route("PUT", "/api/v1/zones", "?replace=true with one's own zones"):    expect(401, 403, 403, 200, 200, 200, 403, 403),
    # Stop-ship areas: a dispatcher's own subtree's; another station's area is not found.
    Route("GET", STOP_SHIP):                                                expect(401, 403, 403, 200, 200, 200, 403, 403),
    Route("POST", STOP_SHIP, "an area of station 1"):                       expect(401, 403, 403, 201, 403, 201, 403, 403),
    Route("PUT", STOP_SHIP_AREA, "an area of station 1"):                   expect(401, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", STOP_SHIP_AREA + "/end", "an area of station 1"):         expect(401, 403, 403, 200, 404, 200, 403, 403),
    Route("PUT", COURIER_ZONES, "a courier of station 1"):                  expect(401, 403, 403, 200, 404, 200, 403, 403),
    Route("PUT", COURIER_ZONES, "station 2's courier onto station 1's zone"):
                                                                            expect(401, 403, 403, 404, 403, 200, 403, 403),
    Route("PUT", COURIER_ZONES, "station 2's courier in its own zone"):     expect(401, 403, 403, 404, 200, 200, 403, 403),
    # The console: a browser without a session goes to the login page; others get an HTML 403 page.
    Route("GET", "/console"):                                               expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/console/board"):                                         expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/console/couriers"):                                      expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/console/couriers/panel"):                                expect(303, 403, 403, 200, 200, 200, 403, 403),
    # The couriers page's courier: station 1's; another station's dispatcher finds none.
    Route("GET", CONSOLE_COURIER):                                          expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("GET", CONSOLE_COURIER + "/row"):                                 expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", CONSOLE_COURIER + "/duty"):                               expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", CONSOLE_COURIER + "/capacity"):                           expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", CONSOLE_COURIER + "/zones", "a courier of station 1"):    expect(303, 403, 403, 200, 404, 200, 403, 403),
    # Onto station 2's zone: a form error for station 1's dispatcher, nothing written.
    Route("POST", CONSOLE_COURIER + "/zones", "station 1's courier onto station 2's zone"):
                                                                            expect(303, 403, 403, 422, 404, 200, 403, 403),
    Route("GET", "/console/stations"):                                      expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", ROW):                                                      expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("GET", "/console/events", "live"):                                expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/console/events", "replayed"):                            expect(303, 403, 403, 200, 200, 200, 403, 403),
    # The zone form lists a zone outside the dispatcher's stations among the file's errors (422).
    Route("POST", "/console/zones", "create a zone in station 1"):          expect(303, 403, 403, 200, 422, 200, 403, 403),
    # The console's map data (JSON; refusals like the rest of the console): each dispatcher sees their
    # own stations'; a zone drawn outside them is an error of the form (422), as on the GeoJSON form.
    Route("GET", "/console/map/zones"):                                     expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/console/map/pickups"):                                   expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("GET", "/console/map/couriers"):                                  expect(303, 403, 403, 200, 200, 200, 403, 403),
    Route("POST", "/console/map/zones", "draw a zone in station 1"):        expect(303, 403, 403, 201, 422, 201, 403, 403),
    Route("POST", "/console/pickups/assign"):                               expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", "/console/pickups/unassign"):                             expect(303, 403, 403, 200, 404, 200, 403, 403),
    # The pickup drawer and its actions: another station's pickup is not found.
    Route("GET", DRAWER):                                                   expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", DRAWER + "/assign"):                                      expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", DRAWER + "/unassign"):                                    expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", DRAWER + "/cancel"):                                      expect(303, 403, 403, 200, 404, 200, 403, 403),
    Route("POST", DRAWER + "/note"):                                        expect(303, 403, 403, 200, 404, 200, 403, 403),
    # The courier app, the same way: the login page without a session, an HTML 403 page for others.
    Route("GET", "/app"):                                                   expect(303, 200, 200, 403, 403, 403, 403, 403),
    Route("GET", "/app/pickups"):                                           expect(303, 200, 200, 403, 403, 403, 403, 403),
    # Admins only.
    Route("POST", "/api/v1/users"):                                         expect(401, 403, 403, 403, 403, 201, 403, 403),
    Route("POST", "/api/v1/stations"):                                      expect(401, 403, 403, 403, 403, 201, 403, 403),
}
# fmt: on

# Open to anyone, signed in or not: what an anonymous caller gets.
PUBLIC = {
    ("GET", "/"): 302,
    ("GET", "/health"): 200,
    ("GET", "/readyz"): 200,  # the database answers (tests/test_metrics.py tries one that went away)
    # Loopback clients only while LANSHOU_METRICS_TOKEN is unset, as here; tests/test_metrics.py tries
    # a forwarded outside client (403) and the token (401 without it).
    ("GET", "/metrics"): 200,
    ("GET", "/favicon.ico"): 200,
    ("GET", "/sw.js"): 200,  # the courier app's service worker, from the root so its scope covers /app
    ("GET", "/auth/login"): 200,
    ("POST", "/auth/login"): 200,
    ("POST", "/auth/logout"): 200,
    # The customer's tracking page: the code is the key (tests/test_tracking.py tries real ones). Tried
    # here with the route's own pattern as the code, which no pickup has: the 404 page; a form post
    # without the page's CSRF token is refused first.
    ("GET", "/t/{code:str}"): 404,
    ("GET", "/t/{code:str}/status"): 404,
    ("GET", "/t/{code:str}/actions"): 404,
    ("GET", "/t/{code:str}/events"): 404,
    ("GET", "/t/{code:str}/areas"): 404,
    ("POST", "/t/{code:str}/chase"): 403,
    ("POST", "/t/{code:str}/cancel"): 403,
    ("POST", "/t/{code:str}/reschedule"): 403,
    ("POST", "/t/{code:str}/address"): 403,
    ("POST", "/t/{code:str}/rate"): 403,
    ("POST", "/t/{code:str}/complain"): 403,
    # The customer's booking page and its address block; a post without the form's CSRF token is refused.
    ("GET", "/book"): 200,
    ("GET", "/book/areas"): 200,
    ("POST", "/book"): 403,
}
PUBLIC_PREFIXES = ("/static/", "/schema")  # the apps' files and the API's description
PUBLIC_SAMPLES = {"/static/{file_path:path}": "/static/console.css", "/schema/{path:str}": "/schema/nothing"}

CELLS = [(route, role) for route in MATRIX for role in ROLES]
PASSWORD = "pw-matrix"
# A public address: webhooks to it are accepted (it is never delivered to: each probe removes it again).
WEBHOOK_URL = "https://93.184.215.14/lanshou-matrix"
_zone_numbers = itertools.count()


# -- streams ---------------------------------------------------------------------------------------------


class EventReader:
    """The events of an open text/event-stream response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "event" in fields or "data" in fields:
                data = fields.get("data", "")
                return {
                    "event": fields.get("event", "message"),
                    "id": fields.get("id"),
                    "data": msgspec.json.decode(data) if data.startswith("{") else data,
                }
            else:
                fields = {}
        raise EOFError("the stream ended")

    async def until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    seen.append(await self.next())
                    if done(seen[-1]):
                        return seen
        except TimeoutError:
            raise AssertionError(f"waited {timeout}s in vain; saw {[e['event'] for e in seen]}") from None

    async def aclose(self) -> None:
        await self._lines.aclose()  # type: ignore[attr-defined]


@asynccontextmanager
async def stream(
    api: Api, path: str, last_event_id: int | None = None
) -> AsyncIterator[tuple[httpx.Response, EventReader | None]]:
    """The response, and a reader when the stream was opened (None for a refusal, its body read)."""
    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    timeout = httpx.Timeout(10, read=None)
    async with api.client.stream("GET", path, headers=headers, timeout=timeout) as response:
        if response.status_code != 200:
            await response.aread()
            yield response, None
        else:
            reader = EventReader(response)
            try:
                yield response, reader
            finally:
                await reader.aclose()


def pickup_of(event: dict[str, Any]) -> int | None:
    return event["data"].get("pickup_id") if isinstance(event["data"], dict) else None


# -- the world the matrix is tried in ----------------------------------------------------------------------


class Snapshot(NamedTuple):
    log_head: int
    zones: list[dict[str, Any]]


class World:
    """Two stations under the demo city, each with a zone, a courier and a dispatcher; two partners;
    and the first partner's pickup in station 1's zone, offered to station 1's courier."""

    def __init__(self, people: Personas, database: Database) -> None:
        self.people = people
        self.database = database
        self.clients: dict[str, Api] = {}
        self.stations: dict[int, str] = {}
        self.zones: dict[int, dict[str, Any]] = {}  # the zone's feature
        self.couriers: dict[int, int] = {}  # courier ids
        self.courier_names: dict[int, str] = {}
        self.pickups: dict[int, set[int]] = {1: set(), 2: set()}  # every pickup made in each station
        self.pickup: dict[str, Any] = {}  # station 1's, offered to station 1's courier
        self.pickup2: dict[str, Any] = {}  # station 2's, offered to station 2's courier
        self.mark = 0  # the log's head before either pickup was made

    def api(self, role: str) -> Api:
        return self.clients[role]

    @property
    def admin(self) -> Api:
        return self.clients["admin"]

    def csrf(self, role: str) -> dict[str, str]:
        return {"x-csrftoken": self.api(role).client.cookies.get("lanshou_csrf") or ""}

    # set-up, all through the admin's API

    async def add_station(self) -> str:
        code = f"MX-{uuid.uuid4().hex[:8]}"
        body = {"code": code, "name": f"矩阵站 {code}", "parent": "HN-CS-TX"}
        r = await self.admin.post("/api/v1/stations", json=body)
        assert r.status_code == 201, r.text
        return code

    def zone_feature(self, station: int | None, **props: Any) -> dict[str, Any]:
        """A new zone (not yet imported) in a place of its own, far from the zones pickups go to."""
        n = next(_zone_numbers)
        code = f"MZ{n}-{uuid.uuid4().hex[:6]}"
        properties: dict[str, Any] = {"code": code, "name": f"矩阵区 {n}", "priority": 10, **props}
        if station is not None:
            properties["station"] = self.stations[station]
        geometry = square(113.40 + (n % 40) * 0.005, 28.40 + (n // 40) * 0.005)
        return {"type": "Feature", "geometry": geometry, "properties": properties}

    async def add_zone(self, station: int, **props: Any) -> dict[str, Any]:
        feature = self.zone_feature(station, **props)
        r = await self.admin.put("/api/v1/zones", json=collection(feature))
        assert r.status_code == 200, r.text
        return feature

    async def add_user(self, role: str, station: int, **fields: Any) -> dict[str, Any]:
        username = f"mx-{role[:4]}-{uuid.uuid4().hex[:8]}"
        body = {"username": username, "password": PASSWORD, "role": role, **fields}
        body["station"] = self.stations[station]
        r = await self.admin.post("/api/v1/users", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    async def add_courier(self, station: int) -> int:
        """A courier of the station working its zone (off duty: no offers go to them)."""
        zone = self.zones[station]["properties"]["code"]
        return int((await self.add_user("courier", station, zones=[{"zone": zone}]))["courier_id"])

    # fresh objects, so that a cell that changes one leaves the others as they were

    def pickup_body(self, station: int) -> dict[str, Any]:
        body = pickup_body()
        lng, lat = self.zones[station]["geometry"]["coordinates"][0][0]  # the south-west corner
        body["address"].update(lng=lng + 0.002, lat=lat + 0.002)
        return body

    async def new_pickup(self, station: int = 1) -> dict[str, Any]:
        """The first partner's pickup in the station's zone, offered to the station's courier."""
        r = await self.api("partner").post("/api/v1/pickups", json=self.pickup_body(station))
        assert r.status_code == 201, r.text
        pickup = r.json()
        assert pickup["zone"]["code"] == self.zones[station]["properties"]["code"], pickup
        assert pickup["status"] == "offered", pickup
        self.pickups[station].add(pickup["id"])
        return pickup

    async def held_pickup(self) -> dict[str, Any]:
        """A pickup of station 1 that station 1's courier has accepted."""
        pickup = await self.new_pickup(1)
        r = await self.api("courier").post(f"/api/v1/courier/pickups/{pickup['id']}/accept")
        assert r.status_code == 200, r.text
        return pickup

    async def set_webhook(self) -> None:
        r = await self.api("partner").put(WEBHOOK, json={"url": WEBHOOK_URL})
        assert r.status_code == 200, r.text

    async def webhook_url(self, role: str = "partner") -> str | None:
        r = await self.api(role).get(WEBHOOK)
        assert r.status_code == 200, r.text
        url: str | None = r.json()["url"]
        return url

    # reading back as the admin

    async def log_head(self) -> int:
        """The newest event id (every change the server makes writes an event)."""
        async with stream(self.admin, "/console/events") as (r, events):
            assert events is not None, r.text
            return int((await events.until(lambda e: e["event"] == "ready"))[-1]["id"])

    async def events_since(self, after: int) -> list[dict[str, Any]]:
        async with stream(self.admin, "/console/events", last_event_id=after) as (r, events):
            assert events is not None, r.text
            return (await events.until(lambda e: e["event"] == "ready"))[:-1]

    async def zones_now(self) -> list[dict[str, Any]]:
        r = await self.admin.get("/api/v1/zones")
        assert r.status_code == 200, r.text
        features: list[dict[str, Any]] = r.json()["features"]
        return features

    async def snapshot(self) -> Snapshot:
        return Snapshot(await self.log_head(), await self.zones_now())

    async def changes_since(self, before: Snapshot, *, log: bool) -> list[str]:
        """What changed since the snapshot (zones are put back as they were, for the cells after)."""
        problems = []
        zones = await self.zones_now()
        if zones != before.zones:
            was = {f["properties"]["code"]: f for f in before.zones}
            now = {f["properties"]["code"]: f for f in zones}
            problems.append(
                "zones changed: "
                f"added {sorted(set(now) - set(was))}, gone {sorted(set(was) - set(now))}, "
                f"edited {sorted(c for c in set(now) & set(was) if now[c] != was[c])}"
            )
            r = await self.admin.put(
                "/api/v1/zones", params={"replace": "true"}, json=collection(*before.zones)
            )
            assert r.status_code == 200, f"could not put the zones back: {r.text}"
        if log and (head := await self.log_head()) != before.log_head:
            written = [e["event"] for e in await self.events_since(before.log_head)]
            problems.append(f"the event log grew by {head - before.log_head}: {written}")
        return problems

    # what streams may carry

    async def check_live(self, role: str, events: EventReader) -> None:
        """A pickup of each station while the stream is open: it carries the one the role may see and
        not the other. The unseen one is made first, so the seen one arriving proves it was skipped."""
        await events.until(lambda e: e["event"] == "ready")
        seen = SEES[role]
        first, second = (2, 1) if seen == {1} else (1, 2)
        a, b = await self.new_pickup(first), await self.new_pickup(second)
        arrived = {pickup_of(e) for e in await events.until(lambda e: pickup_of(e) == b["id"])}
        assert (a["id"] in arrived) == (first in seen), (
            f"{role}, station {first}'s pickup {a['id']}: {arrived}"
        )

    async def check_replay(self, role: str, events: EventReader, *, courier: bool) -> None:
        """Replayed from before both pickups: the role's own station's is there, the other's is not
        (for a dispatcher: no pickup of the other station at all)."""
        replayed = {pickup_of(e) for e in (await events.until(lambda e: e["event"] == "ready"))[:-1]}
        for station, pickup in ((1, self.pickup), (2, self.pickup2)):
            if station in SEES[role]:
                assert pickup["id"] in replayed, f"{role} missed pickup {pickup['id']} in the replay"
            else:
                leaked = {pickup["id"]} if courier else self.pickups[station]
                assert not replayed & leaked, f"{role} was replayed station {station}'s {replayed & leaked}"


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def with_props(feature: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {**feature, "properties": {**feature["properties"], **props}}


@pytest.fixture(scope="module")
def matrix_server() -> Iterator[tuple[Database, ServerProcess, str]]:
    with demo_server(
        "lanshou-matrix-", LANSHOU_SCHEDULER_INTERVAL_MS="50", LANSHOU_WEBHOOK_INTERVAL_MS="100"
    ) as started:
        yield started


@pytest.fixture(scope="module")
async def world(matrix_server: tuple[Database, ServerProcess, str]) -> AsyncIterator[World]:
    database, server, api_key = matrix_server
    people = Personas(server, api_key)
    w = World(people, database)
    w.clients["admin"] = await people.user("admin")
    for n in (1, 2):
        w.stations[n] = await w.add_station()
        # Offers that never expire and time limits hours away: nothing happens in the log by itself.
        w.zones[n] = await w.add_zone(n, offer_ttl_s=3600, sla_minutes=600)
        courier = await w.add_user(
            "courier", n, capacity=200, zones=[{"zone": w.zones[n]["properties"]["code"]}]
        )
        w.couriers[n], w.courier_names[n] = courier["courier_id"], courier["username"]
        dispatcher = await w.add_user("dispatcher", n)
        suffix = "" if n == 1 else "2"
        w.clients["courier" + suffix] = await people.user(courier["username"], PASSWORD)
        w.clients["disp" + suffix] = await people.user(dispatcher["username"], PASSWORD)
    key = re.search(r"lsk_[A-Za-z0-9_\-]+", database.cli("partner", "create", "--code", "matrix-other"))
    assert key, "no API key printed"
    w.clients["partner"] = people.partner()
    w.clients["partner2"] = people.partner(key.group(0))
    w.clients["anon"] = people.anonymous()
    for role in ROLES:
        await w.api(role).get("/health")  # the CSRF cookie the console's forms need
    for role in ("courier", "courier2"):
        r = await w.api(role).post("/api/v1/courier/duty", json={"on_duty": True})
        assert r.status_code == 200, r.text
    w.mark = await w.log_head()
    w.pickup, w.pickup2 = await w.new_pickup(1), await w.new_pickup(2)
    yield w
    await people.close()


# -- how each route is tried: one probe per row of the matrix ----------------------------------------------

Send = Callable[[World, str, Any], Awaitable[httpx.Response]]


class Probe(NamedTuple):
    send: Send  # (world, role, target) -> response; checks what a 2xx answer may contain
    prepare: Callable[[World, str], Awaitable[Any]] | None = None  # (world, role) -> target
    keeps_zones: bool = False  # whoever sends it, the zones must read back the same
    after_refusal: Callable[[World, Any], Awaitable[None]] | None = None
    cleanup: Callable[[World, str, Any], Awaitable[None]] | None = None


PROBES: dict[Route, Probe] = {}


def probe(method: str, path: str, case: str = "", **options: Any) -> Callable[[Send], Send]:
    def register(send: Send) -> Send:
        PROBES[Route(method, path, case)] = Probe(send, **options)
        return send

    return register


# Targets made afresh for each cell (prepare=), so that a cell that changes one leaves the others alone.


async def offered_pickup(w: World, role: str) -> dict[str, Any]:
    return await w.new_pickup(1)


async def offered_pickup_2(w: World, role: str) -> dict[str, Any]:
    return await w.new_pickup(2)


async def held_pickup(w: World, role: str) -> dict[str, Any]:
    return await w.held_pickup()


async def collected_pickup(w: World, role: str) -> dict[str, Any]:
    pickup = await w.held_pickup()
    url = f"/api/v1/courier/pickups/{pickup['id']}/collect"
    r = await w.api("courier").post(url, json={"waybill_no": new_waybill()})
    assert r.status_code == 200, r.text
    return pickup


async def zone_1(w: World, role: str) -> dict[str, Any]:
    return await w.add_zone(1)


async def zone_2(w: World, role: str) -> dict[str, Any]:
    return await w.add_zone(2)


async def unsaved_zone_1(w: World, role: str) -> dict[str, Any]:
    return w.zone_feature(1)


async def courier_to_change(w: World, station: int, role: str) -> int:
    """A new courier of the station for whoever may change couriers' zones at all; the rest, whom the
    route refuses outright, try the station's own courier (making a user costs a password hash)."""
    if role in ("disp", "disp2", "admin"):
        return await w.add_courier(station)
    return w.couriers[station]


async def courier_1(w: World, role: str) -> int:
    return await courier_to_change(w, 1, role)


async def courier_2(w: World, role: str) -> int:
    return await courier_to_change(w, 2, role)


async def unique_name(w: World, role: str) -> str:
    return f"mx-{uuid.uuid4().hex[:10]}"


async def partner_webhook(w: World, role: str) -> None:
    await w.set_webhook()


@probe("GET", "/api/v1/me")
async def who_am_i(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/api/v1/me")
    if r.status_code == 200:
        assert r.json()["role"] == KIND[role], r.text
    return r


# partners


@probe("POST", "/api/v1/pickups")
async def create_pickup(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).post("/api/v1/pickups", json=w.pickup_body(2))
    if r.status_code == 201:
        w.pickups[2].add(r.json()["id"])
    return r


@probe("POST", "/api/v1/pickups/batch")
async def create_batch(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).post("/api/v1/pickups/batch", json={"items": [w.pickup_body(2)]})
    if r.status_code == 200:
        assert r.json()["results"][0]["status"] == "created", r.text
        w.pickups[2].add(r.json()["results"][0]["id"])
    return r


@probe("GET", "/api/v1/pickups")
async def list_pickups(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/api/v1/pickups", params={"limit": 200})
    if r.status_code == 200:
        ids = {p["id"] for p in r.json()["items"]}
        assert (w.pickup["id"] in ids) == (role == "partner"), f"{role} lists {sorted(ids)}"
    return r


@probe("GET", PICKUP)
async def read_pickup(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get(f"/api/v1/pickups/{w.pickup['id']}")


@probe("POST", PICKUP + "/chase", prepare=offered_pickup)
async def chase(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/pickups/{pickup['id']}/chase")


@probe("POST", PICKUP + "/cancel", prepare=offered_pickup)
async def cancel(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/pickups/{pickup['id']}/cancel", json={"reason": "matrix"})


@probe("POST", PICKUP + "/reschedule", prepare=offered_pickup)
async def reschedule(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    start = datetime.now(UTC) + timedelta(hours=2)
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    return await w.api(role).post(f"/api/v1/pickups/{pickup['id']}/reschedule", json={"window": window})


@probe("POST", PICKUP + "/address", prepare=offered_pickup)
async def change_address(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    address = {**w.pickup_body(1)["address"], "detail": "3号楼"}  # the same zone: nothing re-offered
    return await w.api(role).post(f"/api/v1/pickups/{pickup['id']}/address", json={"address": address})


@probe("POST", PICKUP + "/rating", prepare=collected_pickup)
async def rate(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/pickups/{pickup['id']}/rating", json={"stars": 5})


@probe("POST", PICKUP + "/complaint", prepare=collected_pickup)
async def complain(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/pickups/{pickup['id']}/complaint", json={"text": "late"})


@probe("POST", "/api/v1/addresses/parse")
async def parse_address(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).post("/api/v1/addresses/parse", json={"address": "湖南省长沙市开福区xx路12号"})


async def remove_partner_webhook(w: World, role: str, _: Any) -> None:
    await w.api("partner").delete(WEBHOOK)


async def remove_own_webhook(w: World, role: str, _: Any) -> None:
    if role in ("partner", "partner2"):
        await w.api(role).delete(WEBHOOK)


async def partner_webhook_kept(w: World, _: Any) -> None:
    assert await w.webhook_url("partner") == WEBHOOK_URL, "the partner's webhook was removed"


@probe("GET", WEBHOOK, prepare=partner_webhook, cleanup=remove_partner_webhook)
async def webhook_status(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get(WEBHOOK)
    if r.status_code == 200:
        assert (r.json()["url"] == WEBHOOK_URL) == (role == "partner"), r.text
    return r


@probe("PUT", WEBHOOK, cleanup=remove_own_webhook)
async def set_webhook(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).put(WEBHOOK, json={"url": WEBHOOK_URL})


@probe(
    "DELETE",
    WEBHOOK,
    prepare=partner_webhook,
    after_refusal=partner_webhook_kept,
    cleanup=remove_partner_webhook,
)
async def remove_webhook(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).delete(WEBHOOK)
    if role == "partner2":
        await partner_webhook_kept(w, None)
    return r


async def partner_delivery(w: World, role: str) -> int:
    """A delivery of the first partner's (written as the worker writes one: this server sends nowhere)."""
    await insert_delivery(w.database, PARTNER_CODE)
    r = await w.api("partner").get(WEBHOOK + "/deliveries", params={"limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["items"][0]["id"])


async def no_replay_left(w: World, role: str, _: Any) -> None:
    # A replay queued here would be sent as soon as a later cell sets the partner's (public) URL.
    await run_sql(w.database, "DELETE FROM webhook_deliveries WHERE replay_of IS NOT NULL")


async def partner_dead(w: World, role: str) -> None:
    await run_sql(
        w.database,
        "UPDATE partners SET webhook_dead_since = ? WHERE code = ?",
        datetime.now(UTC),
        PARTNER_CODE,
    )


async def partner_alive(w: World, role: str, _: Any) -> None:
    await run_sql(w.database, "UPDATE partners SET webhook_dead_since = NULL WHERE code = ?", PARTNER_CODE)


@probe("GET", WEBHOOK + "/deliveries", prepare=partner_delivery)
async def list_deliveries(w: World, role: str, delivery_id: int) -> httpx.Response:
    r = await w.api(role).get(WEBHOOK + "/deliveries", params={"limit": 200})
    if r.status_code == 200:
        ids = {d["id"] for d in r.json()["items"]}
        assert (delivery_id in ids) == (role == "partner"), f"{role} lists {sorted(ids)}"
    return r


@probe("GET", DELIVERY, prepare=partner_delivery)
async def read_delivery(w: World, role: str, delivery_id: int) -> httpx.Response:
    return await w.api(role).get(f"{WEBHOOK}/deliveries/{delivery_id}")


@probe("POST", DELIVERY + "/replay", prepare=partner_delivery, cleanup=no_replay_left)
async def replay_delivery(w: World, role: str, delivery_id: int) -> httpx.Response:
    return await w.api(role).post(f"{WEBHOOK}/deliveries/{delivery_id}/replay")


@probe("POST", WEBHOOK + "/rearm", prepare=partner_dead, cleanup=partner_alive)
async def rearm_webhook(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).post(WEBHOOK + "/rearm")


# couriers


@probe("POST", "/api/v1/courier/duty")
async def duty(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).post("/api/v1/courier/duty", json={"on_duty": True})


@probe("POST", "/api/v1/courier/heartbeat")
async def heartbeat(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).post("/api/v1/courier/heartbeat", json={})


@probe("GET", PUSH_SUBSCRIPTIONS + "/key")
async def push_key(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get(PUSH_SUBSCRIPTIONS + "/key")


def push_subscription(role: str) -> dict[str, Any]:
    # A public address literal passes the SSRF check without DNS; the probe removes it again.
    point = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    return {
        "endpoint": f"https://1.1.1.1/push/{role}",
        "keys": {"p256dh": point, "auth": "BTBZMqHH6r4Tts7J_aSIgg"},
    }


@probe("POST", PUSH_SUBSCRIPTIONS)
async def push_subscribe(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).post(PUSH_SUBSCRIPTIONS, json=push_subscription(role))
    if r.status_code == 200:
        await w.api(role).delete(PUSH_SUBSCRIPTIONS, params={"endpoint": push_subscription(role)["endpoint"]})
    return r


@probe("DELETE", PUSH_SUBSCRIPTIONS)
async def push_unsubscribe(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).delete(
        PUSH_SUBSCRIPTIONS, params={"endpoint": push_subscription(role)["endpoint"]}
    )


@probe("GET", "/api/v1/courier/pickups")
async def courier_pickups(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/api/v1/courier/pickups")
    if r.status_code == 200:
        ids = {p["id"] for items in r.json().values() for p in items}
        assert (w.pickup["id"] in ids) == (role == "courier"), f"{role} has {sorted(ids)}"
    return r


@probe("GET", "/api/v1/courier/events", "live")
async def courier_events(w: World, role: str, _: None) -> httpx.Response:
    async with stream(w.api(role), "/api/v1/courier/events") as (r, events):
        if events:
            await w.check_live(role, events)
    return r


@probe("GET", "/api/v1/courier/events", "replayed")
async def courier_events_replayed(w: World, role: str, _: None) -> httpx.Response:
    async with stream(w.api(role), "/api/v1/courier/events", last_event_id=w.mark) as (r, events):
        if events:
            await w.check_replay(role, events, courier=True)
    return r


@probe("POST", COURIER_PICKUP + "/accept", prepare=offered_pickup)
async def accept(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/courier/pickups/{pickup['id']}/accept")


@probe("POST", COURIER_PICKUP + "/decline", prepare=offered_pickup)
async def decline(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    url = f"/api/v1/courier/pickups/{pickup['id']}/decline"
    return await w.api(role).post(url, json={"reason": "too_far"})


@probe("POST", COURIER_PICKUP + "/seen", prepare=offered_pickup)
async def seen(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/courier/pickups/{pickup['id']}/seen")


@probe("POST", COURIER_PICKUP + "/arrived", prepare=held_pickup)
async def arrived(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/courier/pickups/{pickup['id']}/arrived")


@probe("POST", COURIER_PICKUP + "/contacted", prepare=held_pickup)
async def contacted(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"/api/v1/courier/pickups/{pickup['id']}/contacted")


@probe("POST", COURIER_PICKUP + "/collect", prepare=held_pickup)
async def collect(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    url = f"/api/v1/courier/pickups/{pickup['id']}/collect"
    return await w.api(role).post(url, json={"waybill_no": new_waybill()})


@probe("POST", COURIER_PICKUP + "/fail", prepare=held_pickup)
async def fail(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    url = f"/api/v1/courier/pickups/{pickup['id']}/fail"
    return await w.api(role).post(url, json={"reason": "customer_absent"})


PHOTO = b"\xff\xd8\xff\xe0" + bytes(200)  # what a JPEG starts with: the server reads the type from it


@probe("POST", COURIER_PICKUP + "/photos", prepare=held_pickup)
async def upload_photo(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    url = f"/api/v1/courier/pickups/{pickup['id']}/photos"
    return await w.api(role).post(url, content=PHOTO, headers={"content-type": "image/jpeg"})


async def pickup_with_photo(w: World, role: str) -> tuple[int, int]:
    pickup = await w.held_pickup()
    url = f"/api/v1/courier/pickups/{pickup['id']}/photos"
    r = await w.api("courier").post(url, content=PHOTO, headers={"content-type": "image/jpeg"})
    assert r.status_code == 201, r.text
    return pickup["id"], r.json()["photo_id"]


@probe("GET", PICKUP + "/photos/{photo_id:int}", prepare=pickup_with_photo)
async def read_photo(w: World, role: str, ids: tuple[int, int]) -> httpx.Response:
    r = await w.api(role).get(f"/api/v1/pickups/{ids[0]}/photos/{ids[1]}")
    if r.status_code == 200:
        assert r.content == PHOTO and r.headers["content-type"] == "image/jpeg", r.headers
    return r


# dispatchers


@probe("POST", "/api/v1/dispatch/assign", prepare=offered_pickup)
async def assign(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    body = {"pickup_ids": [pickup["id"]], "courier_id": w.couriers[1], "reason": "matrix"}
    return await w.api(role).post("/api/v1/dispatch/assign", json=body)


@probe(
    "POST", "/api/v1/dispatch/assign", "station 2's pickup to station 1's courier", prepare=offered_pickup_2
)
async def assign_across(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    body = {
        "pickup_ids": [pickup["id"]],
        "courier_id": w.couriers[1],
        "reason": "matrix",
        "allow_outside_zone": True,
    }
    return await w.api(role).post("/api/v1/dispatch/assign", json=body)


@probe("POST", "/api/v1/dispatch/unassign", prepare=held_pickup)
async def unassign(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    body = {"pickup_ids": [pickup["id"]], "reason": "matrix"}
    return await w.api(role).post("/api/v1/dispatch/unassign", json=body)


def station_codes(tree: list[dict[str, Any]]) -> set[str]:
    return {s["code"] for s in tree} | {c for s in tree for c in station_codes(s.get("children", []))}


@probe("GET", "/api/v1/dispatch/stations")
async def stations(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/api/v1/dispatch/stations")
    if r.status_code == 200:
        codes = station_codes(r.json())
        for n, code in w.stations.items():
            assert (code in codes) == (n in SEES[role]), f"{role} sees stations {sorted(codes)}"
    return r


@probe("GET", "/api/v1/zones")
async def export_zones(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/api/v1/zones")
    if r.status_code == 200:
        codes = {f["properties"]["code"] for f in r.json()["features"]}
        for n, zone in w.zones.items():
            code = zone["properties"]["code"]
            assert (code in codes) == (n in SEES[role]), f"{role} is shown station {n}'s zone {code}"
    return r


async def put_zones(w: World, role: str, *features: dict[str, Any], **params: str) -> httpx.Response:
    return await w.api(role).put("/api/v1/zones", params=params, json=collection(*features))


@probe("PUT", "/api/v1/zones", "edit a zone of station 1", prepare=zone_1)
async def edit_zone(w: World, role: str, zone: dict[str, Any]) -> httpx.Response:
    return await put_zones(w, role, with_props(zone, name=f"改名 {role}"))


@probe("PUT", "/api/v1/zones", "create a zone in station 1", prepare=unsaved_zone_1)
async def create_zone(w: World, role: str, feature: dict[str, Any]) -> httpx.Response:
    return await put_zones(w, role, feature)


@probe("PUT", "/api/v1/zones", "create a zone in station 1 by ?station=")
async def create_zone_by_default_station(w: World, role: str, _: None) -> httpx.Response:
    return await put_zones(w, role, w.zone_feature(None), station=w.stations[1])


@probe("PUT", "/api/v1/zones", "move a zone of station 1 to station 2", prepare=zone_1)
async def move_zone_out(w: World, role: str, zone: dict[str, Any]) -> httpx.Response:
    return await put_zones(w, role, with_props(zone, station=w.stations[2]))


@probe("PUT", "/api/v1/zones", "move a zone of station 2 into station 1", prepare=zone_2)
async def move_zone_in(w: World, role: str, zone: dict[str, Any]) -> httpx.Response:
    return await put_zones(w, role, with_props(zone, station=w.stations[1]))


@probe("PUT", "/api/v1/zones", "?replace=true with one's own zones", keeps_zones=True)
async def replace_zones(w: World, role: str, _: None) -> httpx.Response:
    """Everything the caller answers for, sent back whole: for them a no-op; it must not deactivate
    anyone else's zones."""
    # (A role refused the route sends station 2's.)
    own = None if role == "admin" else {w.stations[n] for n in SEES.get(role, {2})}
    features = [f for f in await w.zones_now() if own is None or f["properties"]["station"] in own]
    return await put_zones(w, role, *features, replace="true")


async def put_courier_zones(w: World, role: str, courier_id: int, *zones: tuple[int, str]) -> httpx.Response:
    body = {"zones": [{"zone": w.zones[n]["properties"]["code"], "role": kind} for n, kind in zones]}
    return await w.api(role).put(f"/api/v1/couriers/{courier_id}/zones", json=body)


@probe("PUT", COURIER_ZONES, "a courier of station 1", prepare=courier_1)
async def courier_zones(w: World, role: str, courier_id: int) -> httpx.Response:
    return await put_courier_zones(w, role, courier_id, (1, "backup"))


@probe("PUT", COURIER_ZONES, "station 2's courier onto station 1's zone", prepare=courier_2)
async def courier_zones_across(w: World, role: str, courier_id: int) -> httpx.Response:
    return await put_courier_zones(w, role, courier_id, (2, "primary"), (1, "backup"))


@probe("PUT", COURIER_ZONES, "station 2's courier in its own zone", prepare=courier_2)
async def courier_zones_own(w: World, role: str, courier_id: int) -> httpx.Response:
    return await put_courier_zones(w, role, courier_id, (2, "backup"))


# the console


@probe("GET", "/app")
async def courier_app(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get("/app")


@probe("GET", "/app/pickups")
async def courier_app_list(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get("/app/pickups")


@probe("GET", "/console")
async def console(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get("/console")


@probe("GET", "/console/board")
async def board(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/board")
    if r.status_code == 200:
        for n, pickup in ((1, w.pickup), (2, w.pickup2)):
            shown = pickup["tracking_code"] in r.text
            assert shown == (n in SEES[role]), f"{role}'s board and station {n}'s pickup: {shown}"
    return r


@probe("GET", "/console/couriers")
async def couriers(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/couriers")
    if r.status_code == 200:
        for n, name in w.courier_names.items():
            assert (name in r.text) == (n in SEES[role]), f"{role}'s courier list and station {n}'s {name}"
    return r


@probe("GET", "/console/couriers/panel")
async def couriers_panel(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/couriers/panel")
    if r.status_code == 200:
        for n, name in w.courier_names.items():
            assert (name in r.text) == (n in SEES[role]), f"{role}'s courier panel and station {n}'s {name}"
    return r


@probe("GET", CONSOLE_COURIER)
async def console_courier(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get(f"/console/couriers/{w.couriers[1]}")


@probe("GET", CONSOLE_COURIER + "/row")
async def console_courier_row(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get(f"/console/couriers/{w.couriers[1]}/row")


async def console_form(w: World, role: str, path: str, form: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(path, data=form, headers=w.csrf(role))


# A new courier (off duty) for whoever may change couriers: "off duty" again writes its event and
# offers nothing, so the matrix's own pickups stay as they were.
@probe("POST", CONSOLE_COURIER + "/duty", prepare=courier_1)
async def console_duty(w: World, role: str, courier_id: int) -> httpx.Response:
    return await console_form(w, role, f"/console/couriers/{courier_id}/duty", {"on_duty": "false"})


@probe("POST", CONSOLE_COURIER + "/capacity", prepare=courier_1)
async def console_capacity(w: World, role: str, courier_id: int) -> httpx.Response:
    return await console_form(w, role, f"/console/couriers/{courier_id}/capacity", {"capacity": "5"})


@probe("POST", CONSOLE_COURIER + "/zones", "a courier of station 1", prepare=courier_1)
async def console_courier_zones(w: World, role: str, courier_id: int) -> httpx.Response:
    form = {"zone": [w.zones[1]["properties"]["code"]], "role": ["backup"]}
    return await console_form(w, role, f"/console/couriers/{courier_id}/zones", form)


@probe("POST", CONSOLE_COURIER + "/zones", "station 1's courier onto station 2's zone", prepare=courier_1)
async def console_courier_zones_across(w: World, role: str, courier_id: int) -> httpx.Response:
    form = {
        "zone": [w.zones[1]["properties"]["code"], w.zones[2]["properties"]["code"]],
        "role": ["primary", "backup"],
    }
    return await console_form(w, role, f"/console/couriers/{courier_id}/zones", form)


@probe("GET", "/console/stations")
async def stations_page(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/stations")
    if r.status_code == 200:
        for n, code in w.stations.items():
            shown = f'data-code="{code}"' in r.text
            assert shown == (n in SEES[role]), f"{role}'s stations page and station {n}: {shown}"
    return r


@probe("GET", ROW)
async def row(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).get(f"/console/pickups/{w.pickup['id']}/row")


@probe("GET", "/console/events", "live")
async def console_events(w: World, role: str, _: None) -> httpx.Response:
    async with stream(w.api(role), "/console/events") as (r, events):
        if events:
            await w.check_live(role, events)
    return r


@probe("GET", "/console/events", "replayed")
async def console_events_replayed(w: World, role: str, _: None) -> httpx.Response:
    async with stream(w.api(role), "/console/events", last_event_id=w.mark) as (r, events):
        if events:
            await w.check_replay(role, events, courier=False)
    return r


@probe("POST", "/console/zones", "create a zone in station 1", prepare=unsaved_zone_1)
async def upload_zones(w: World, role: str, feature: dict[str, Any]) -> httpx.Response:
    form = {"geojson": json.dumps(collection(feature)), "datum": "wgs84"}
    return await w.api(role).post("/console/zones", data=form, headers=w.csrf(role))


@probe("GET", "/console/map/zones")
async def map_zones(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/map/zones")
    if r.status_code == 200:
        codes = {f["properties"]["code"] for f in r.json()["features"]}
        for n, zone in w.zones.items():
            shown = zone["properties"]["code"] in codes
            assert shown == (n in SEES[role]), f"{role}'s map and station {n}'s zone: {shown}"
    return r


@probe("GET", "/console/map/pickups")
async def map_pickups(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/map/pickups")
    if r.status_code == 200:
        ids = {p["id"] for p in r.json()["pickups"]}
        for n, pickup in ((1, w.pickup), (2, w.pickup2)):
            assert (pickup["id"] in ids) == (n in SEES[role]), f"{role}'s map and station {n}'s pickup"
        # Asked for by id, another station's pickup is not answered either.
        r2 = await w.api(role).get(
            "/console/map/pickups", params={"ids": f"{w.pickup['id']},{w.pickup2['id']}"}
        )
        asked = {p["id"] for p in r2.json()["pickups"]}
        assert asked == {p["id"] for n, p in ((1, w.pickup), (2, w.pickup2)) if n in SEES[role]}, r2.text
    return r


async def couriers_located(w: World, role: str) -> None:
    """Both stations' couriers send a heartbeat with a position (the map shows only located couriers)."""
    for n, suffix in ((1, ""), (2, "2")):
        lng, lat = w.zones[n]["geometry"]["coordinates"][0][0]
        r = await w.api("courier" + suffix).post(
            "/api/v1/courier/heartbeat", json={"lng": lng + 0.001, "lat": lat + 0.001, "datum": "wgs84"}
        )
        assert r.status_code == 200, r.text


@probe("GET", "/console/map/couriers", prepare=couriers_located)
async def map_couriers(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get("/console/map/couriers")
    if r.status_code == 200:
        ids = {c["id"] for c in r.json()["couriers"]}
        for n, courier_id in w.couriers.items():
            assert (courier_id in ids) == (n in SEES[role]), f"{role}'s map and station {n}'s courier"
    return r


@probe("POST", "/console/map/zones", "draw a zone in station 1", prepare=unsaved_zone_1)
async def draw_zone(w: World, role: str, feature: dict[str, Any]) -> httpx.Response:
    p = feature["properties"]
    body = {"code": p["code"], "name": p["name"], "station": p["station"], "geometry": feature["geometry"]}
    return await w.api(role).post("/console/map/zones", json=body, headers=w.csrf(role))


@probe("POST", "/console/pickups/assign", prepare=offered_pickup)
async def console_assign(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    form = {"pickup_ids": [str(pickup["id"])], "courier_id": str(w.couriers[1]), "reason": "matrix"}
    return await w.api(role).post("/console/pickups/assign", data=form, headers=w.csrf(role))


@probe("POST", "/console/pickups/unassign", prepare=held_pickup)
async def console_unassign(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    form = {"pickup_ids": [str(pickup["id"])], "reason": "matrix"}
    return await w.api(role).post("/console/pickups/unassign", data=form, headers=w.csrf(role))


@probe("GET", DRAWER)
async def console_drawer(w: World, role: str, _: None) -> httpx.Response:
    r = await w.api(role).get(f"/console/pickups/{w.pickup['id']}")
    if r.status_code == 200:
        assert w.pickup["tracking_code"] in r.text
    else:
        assert w.pickup["tracking_code"] not in r.text
    return r


@probe("POST", DRAWER + "/assign", prepare=offered_pickup)
async def drawer_assign(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    form = {"courier_id": str(w.couriers[1]), "reason": "matrix"}
    return await w.api(role).post(f"/console/pickups/{pickup['id']}/assign", data=form, headers=w.csrf(role))


@probe("POST", DRAWER + "/unassign", prepare=held_pickup)
async def drawer_unassign(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    form = {"reason": "matrix"}
    return await w.api(role).post(
        f"/console/pickups/{pickup['id']}/unassign", data=form, headers=w.csrf(role)
    )


@probe("POST", DRAWER + "/cancel", prepare=offered_pickup)
async def drawer_cancel(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    form = {"reason": "matrix"}
    return await w.api(role).post(f"/console/pickups/{pickup['id']}/cancel", data=form, headers=w.csrf(role))


@probe("POST", DRAWER + "/note", prepare=offered_pickup)
async def drawer_note(w: World, role: str, pickup: dict[str, Any]) -> httpx.Response:
    form = {"text": "matrix"}
    return await w.api(role).post(f"/console/pickups/{pickup['id']}/note", data=form, headers=w.csrf(role))


# serviceability and stop-ship areas


@probe("GET", "/api/v1/serviceability")
async def serviceability(w: World, role: str, _: None) -> httpx.Response:
    lng, lat = w.pickup_body(1)["address"]["lng"], w.pickup_body(1)["address"]["lat"]
    r = await w.api(role).get("/api/v1/serviceability", params={"lng": lng, "lat": lat, "datum": "wgs84"})
    if r.status_code == 200:
        assert r.json()["zone"]["code"] == w.zones[1]["properties"]["code"], r.text
    return r


def stop_ship_body(w: World, station: int) -> dict[str, Any]:
    # Named after a street no pickup gives: an area over the stations' zones would refuse the matrix's
    # own pickups.
    return {
        "name": "矩阵停发",
        "reason": "matrix",
        "admin_areas": [f"mx-{uuid.uuid4().hex[:8]}"],
        "station": w.stations[station],
    }


async def stop_ship_area_1(w: World, role: str) -> dict[str, Any]:
    r = await w.admin.post(STOP_SHIP, json=stop_ship_body(w, 1))
    assert r.status_code == 201, r.text
    area: dict[str, Any] = r.json()
    return area


async def area_unchanged(w: World, area: dict[str, Any]) -> None:
    r = await w.admin.get(STOP_SHIP)
    now = {a["id"]: a for a in r.json()}
    assert now[area["id"]]["reason"] == area["reason"] and now[area["id"]]["active"], now.get(area["id"])


@probe("GET", STOP_SHIP + "/active", prepare=stop_ship_area_1)
async def active_stop_ship(w: World, role: str, area: dict[str, Any]) -> httpx.Response:
    r = await w.api(role).get(STOP_SHIP + "/active")
    if r.status_code == 200:
        assert area["id"] in {a["id"] for a in r.json()}, r.text
    return r


@probe("GET", STOP_SHIP, prepare=stop_ship_area_1)
async def list_stop_ship(w: World, role: str, area: dict[str, Any]) -> httpx.Response:
    r = await w.api(role).get(STOP_SHIP)
    if r.status_code == 200:
        listed = area["id"] in {a["id"] for a in r.json()}
        assert listed == (1 in SEES[role]), f"{role} and station 1's area: {listed}"
    return r


@probe("POST", STOP_SHIP, "an area of station 1")
async def create_stop_ship(w: World, role: str, _: None) -> httpx.Response:
    return await w.api(role).post(STOP_SHIP, json=stop_ship_body(w, 1))


@probe("PUT", STOP_SHIP_AREA, "an area of station 1", prepare=stop_ship_area_1, after_refusal=area_unchanged)
async def update_stop_ship(w: World, role: str, area: dict[str, Any]) -> httpx.Response:
    body = {**stop_ship_body(w, 1), "reason": f"changed by {role}"}
    return await w.api(role).put(f"{STOP_SHIP}/{area['id']}", json=body)


@probe(
    "POST",
    STOP_SHIP_AREA + "/end",
    "an area of station 1",
    prepare=stop_ship_area_1,
    after_refusal=area_unchanged,
)
async def end_stop_ship(w: World, role: str, area: dict[str, Any]) -> httpx.Response:
    return await w.api(role).post(f"{STOP_SHIP}/{area['id']}/end")


# admins


async def username_still_free(w: World, username: str) -> None:
    body = {"username": username, "password": PASSWORD, "role": "courier"}
    r = await w.admin.post("/api/v1/users", json=body)
    assert r.status_code == 201, f"the refused user was made after all: {r.text}"


async def station_code_still_free(w: World, code: str) -> None:
    r = await w.admin.post("/api/v1/stations", json={"code": code, "name": code, "parent": "HN-CS-TX"})
    assert r.status_code == 201, f"the refused station was made after all: {r.text}"


@probe("POST", "/api/v1/users", prepare=unique_name, after_refusal=username_still_free)
async def create_user(w: World, role: str, username: str) -> httpx.Response:
    body = {"username": username, "password": PASSWORD, "role": "dispatcher", "station": w.stations[1]}
    return await w.api(role).post("/api/v1/users", json=body)


@probe("POST", "/api/v1/stations", prepare=unique_name, after_refusal=station_code_still_free)
async def create_station(w: World, role: str, code: str) -> httpx.Response:
    body = {"code": code, "name": f"矩阵站 {code}", "parent": "HN-CS-TX"}
    return await w.api(role).post("/api/v1/stations", json=body)


# -- the tests ---------------------------------------------------------------------------------------------


@contextmanager
def logging_left_as_it_was() -> Iterator[None]:
    """create_app configures logging for the process it serves in, and here that is pytest's: its
    handler would go on writing to a stream pytest has closed."""

    def loggers() -> list[logging.Logger]:
        known = logging.Logger.manager.loggerDict.values()
        return [logging.root, *(lg for lg in known if isinstance(lg, logging.Logger))]

    saved = {lg.name: (lg.level, list(lg.handlers), lg.propagate) for lg in loggers()}
    try:
        yield
    finally:
        for lg in loggers():
            level, handlers, propagate = saved.get(lg.name, (logging.NOTSET, [], True))
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


@functools.cache
def declared_routes() -> frozenset[tuple[str, str]]:
    """(method, path) of every route the app serves, built in-process (no database is opened).
    OPTIONS and HEAD, which Litestar answers by itself on every route, are tried in test_serve.py."""
    env = {"LANSHOU_DATABASE_URL": "sqlite:///unused.sqlite3", "LANSHOU_SECRET_KEY": "matrix-" * 6}
    with warnings.catch_warnings(), logging_left_as_it_was():
        warnings.simplefilter("ignore", DeprecationWarning)  # Litestar's 3.0 notices, not ours to act on
        app = create_app(load_settings(env))
    return frozenset(
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD")
    )


def test_every_route_has_a_decision(capsys: pytest.CaptureFixture[str]) -> None:
    routes = declared_routes()
    decided = {(r.method, r.path) for r in MATRIX} | set(PUBLIC)
    undecided = sorted(r for r in routes - decided if not r[1].startswith(PUBLIC_PREFIXES))
    in_matrix = {(r.method, r.path) for r in MATRIX}
    with capsys.disabled():
        print(
            f"\nauthorization matrix: {len(MATRIX)} rows over {len(in_matrix)} routes × {len(ROLES)} roles "
            f"= {len(CELLS)} cells; {len(routes - in_matrix)} public routes"
        )
    assert not undecided, f"routes with no decision in MATRIX (or PUBLIC): {undecided}"
    assert not decided - routes, f"MATRIX names routes the app no longer has: {sorted(decided - routes)}"
    assert set(PROBES) == set(MATRIX), set(PROBES) ^ set(MATRIX)


async def test_public_routes_need_no_credentials(world: World) -> None:
    anon = world.api("anon")
    for method, path in sorted(declared_routes()):
        if (method, path) in PUBLIC or not path.startswith(PUBLIC_PREFIXES):
            continue
        r = await anon.request(method, PUBLIC_SAMPLES.get(path, path))
        assert r.status_code == (404 if path == "/schema/{path:str}" else 200), (path, r.status_code)
    for (method, path), status in PUBLIC.items():
        if path == "/auth/login" and method == "POST":
            fresh = world.people.anonymous()
            body = {"username": world.courier_names[2], "password": PASSWORD}
            r = await fresh.post(path, json=body)
        else:
            r = await anon.request(method, path)
        assert r.status_code == status, (method, path, r.status_code, r.text[:200])


ERROR_CODES = {401: "not_authenticated", 404: "not_found"}


def answer_problems(route: Route, r: httpx.Response) -> list[str]:
    """A refusal in the shape its caller expects: our JSON error on the API, a page on the console."""
    status = r.status_code
    if route.path.startswith("/api/") and status in (401, 403, 404):
        try:
            body = r.json()
        except ValueError:
            return [f"{status} is not JSON: {r.text[:200]!r}"]
        code = ERROR_CODES.get(status)  # a 403 may say why in its own code
        if not {"code", "message", "errors"} <= set(body) or (code and body["code"] != code):
            return [f"{status} is not our error shape: {body}"]
    if route.path.startswith("/console"):
        if status == 303 and not r.headers.get("location", "").startswith("/auth/login"):
            return [f"303 to {r.headers.get('location')!r}, not the login page"]
        if status == 403 and not r.headers.get("content-type", "").startswith("text/html"):
            return [f"the console's 403 is {r.headers.get('content-type')}, not a page"]
    return []


def cell_id(route: Route, role: str) -> str:
    return f"{route.method} {route.path}{f' [{route.case}]' if route.case else ''} as {role}"


@pytest.mark.parametrize(("route", "role"), CELLS, ids=[cell_id(*cell) for cell in CELLS])
async def test_each_role_gets_what_the_matrix_says(world: World, route: Route, role: str) -> None:
    expected = MATRIX[route][role]
    probe = PROBES[route]
    target = await probe.prepare(world, role) if probe.prepare else None
    refused_write = route.method != "GET" and expected in (401, 403, 404, 422)
    before = await world.snapshot() if refused_write or probe.keeps_zones else None
    try:
        r = await probe.send(world, role, target)
        problems = []
        if r.status_code != expected:
            problems.append(f"answered {r.status_code}, not {expected}: {r.text[:300]}")
        else:
            problems += answer_problems(route, r)
        if before is not None:
            problems += await world.changes_since(before, log=refused_write)
        if refused_write and not problems and probe.after_refusal:
            await probe.after_refusal(world, target)
        assert not problems, f"{cell_id(route, role)}: " + "; ".join(problems)
    finally:
        if probe.cleanup:
            await probe.cleanup(world, role, target)
