"""Offers fanned out to a grab zone: each courier's message carries what that courier needs and no one
else's id, and a zone of a couple of hundred couriers hears an offer once each, over real SSE."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from server.push.hub import KEEPALIVE_FRAME, Outgoing, PushHub, stop_task
from server.push.log import PushMessage
from server.push.sse import to_sse
from tests.bench.bench_create_pickup import Served
from tests.bench.load import CourierStream
from tests.bench.load import pickup_body as load_pickup_body
from tests.conftest import (
    ROOT,
    Database,
    Personas,
    SSEStream,
    login_couriers,
    make_zone,
    migrated_database,
    pickup_body,
)
from tests.test_console import HX, dispatcher

# What a courier is told of an offer (besides id, type, at and pickup_id): nothing about other couriers.
OFFER_KEYS = {"id", "type", "at", "pickup_id", "round", "zone", "mode", "reason", "expires_at", "pickup"}


# The pickup as an offered courier sees it (server/dispatch/offers.py offer_snapshot).
SNAPSHOT_KEYS = {
    "id", "tracking_code", "zone", "sender_name", "sender_phone", "district", "street", "address_detail",
    "lat", "lng", "window_start", "window_end", "parcel_count", "weight_kg", "note", "due_at",
}  # fmt: skip


async def test_a_courier_offered_a_pickup_is_not_told_who_else_was(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    couriers = await login_couriers(people, zone)
    streams = [SSEStream(c) for c in couriers]
    for stream in streams:
        await stream.__aenter__()
    try:
        r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
        assert r.status_code == 201 and r.json()["status"] == "offered", r.text
        pickup = r.json()
        heard = await asyncio.gather(
            *(s.next_event("pickup.offered", pickup_id=pickup["id"]) for s in streams)
        )
    finally:
        for stream in streams:
            await stream.close()
    for offer in heard:
        assert set(offer.data) == OFFER_KEYS, offer.data
        assert set(offer.data["pickup"]) == SNAPSHOT_KEYS, offer.data
        assert offer.data["pickup"]["tracking_code"] == pickup["tracking_code"]
    assert heard[0].data == heard[1].data  # one message for both
    # The same from the log, for a courier resuming from before the offer.
    async with SSEStream(couriers[0], last_event_id=str(int(heard[0].id or 0) - 1)) as resumed:
        replayed = await resumed.next_event("pickup.offered", pickup_id=pickup["id"])
    assert replayed.data == heard[0].data
    # Who was offered it is still in the log: the dispatcher's drawer counts the two.
    api = await dispatcher(people)
    r = await api.get(f"/console/pickups/{pickup['id']}", headers=HX)
    assert r.status_code == 200 and "派给 2 名揽投员" in r.text, r.text


class RecordingStream(CourierStream):
    """A courier's stream that also keeps the data of each pickup.offered it hears."""

    def __init__(self, index: int, port: int, session: str, heard: list[tuple[int, dict[str, Any]]]) -> None:
        super().__init__(index, port, session, lambda *_: None)
        self.heard = heard

    def _event(self, block: bytes) -> None:
        super()._event(block)
        if b"event: pickup.offered" in block:
            data = next(line[6:] for line in block.split(b"\r\n") if line.startswith(b"data: "))
            self.heard.append((self.index, msgspec.json.decode(data)))


@pytest.fixture
def zone_of_200() -> Iterator[tuple[Database, dict[str, Any]]]:
    """A database of its own with one grab zone of 200 couriers on duty, each with a session, seeded in
    one go (tests/bench/load_seed.py): through the admin API that would be 200 password hashes."""
    with migrated_database("lanshou-fanout-") as database:
        seeding = subprocess.run(
            [sys.executable, "-m", "tests.bench.load_seed", json.dumps({"zones": 1, "couriers": 200})],
            cwd=ROOT,
            env=database.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seeding.returncode == 0, seeding.stderr
        yield database, json.loads(seeding.stdout)


async def test_a_grab_zone_of_200_couriers_hears_each_offer_exactly_once(
    zone_of_200: tuple[Database, dict[str, Any]], tmp_path: Path
) -> None:
    database, seeded = zone_of_200
    command = [sys.executable, "-m", "server", "serve"]
    env = database.env(LANSHOU_API_RATE_LIMIT="0")
    with Served(command, env, tmp_path / "server.log") as served:
        heard: list[tuple[int, dict[str, Any]]] = []
        streams = [
            RecordingStream(i, served.port, c["session"], heard) for i, c in enumerate(seeded["couriers"])
        ]
        connecting = asyncio.Semaphore(50)
        for stream in streams:
            stream.task = asyncio.create_task(stream.run(connecting))
        try:
            deadline = time.monotonic() + 30
            while not all(s.ready.is_set() for s in streams):
                assert not [s.error for s in streams if s.error], [s.error for s in streams if s.error]
                assert time.monotonic() < deadline, "streams not ready"
                await asyncio.sleep(0.02)
            zone = seeded["zones"][0]
            headers = {"authorization": f"Bearer {seeded['api_key']}", "content-type": "application/json"}
            pickup_ids = []
            async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=30) as partner:
                for n in range(2):
                    r = await partner.post(
                        "/api/v1/pickups", content=load_pickup_body(zone["lng"], zone["lat"], n)
                    )
                    assert r.status_code == 201 and r.json()["status"] == "offered", r.text
                    pickup_ids.append(r.json()["id"])
            expected = {(i, p) for i in range(len(streams)) for p in pickup_ids}
            for _ in range(300):  # at most 15 s
                if {(i, d["pickup_id"]) for i, d in heard} == expected:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a duplicate would come right behind
        finally:
            for stream in streams:
                if stream.task is not None:
                    stream.task.cancel()
            await asyncio.gather(*(s.task for s in streams if s.task), return_exceptions=True)
    counts = Counter((i, d["pickup_id"]) for i, d in heard)
    assert set(counts) == expected, f"{len(expected - set(counts))} offers never heard"
    assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1][:10]
    # Every courier was sent the same message: nothing in it differs by courier, nor lists them.
    for pickup_id in pickup_ids:
        bodies = {msgspec.json.encode(d) for _, d in heard if d["pickup_id"] == pickup_id}
        assert len(bodies) == 1
        (body,) = bodies
        assert set(msgspec.json.decode(body)) == OFFER_KEYS
        assert len(body) < 2000, len(body)  # the same size at 200 couriers as at one


async def test_a_message_to_many_streams_is_encoded_once_and_every_stream_keeps_alive() -> None:
    hub = PushHub()
    conns = [hub.attach_courier(c) for c in range(1, 301)] + [hub.attach_console()]
    encoded: list[int] = []

    def encode(message: PushMessage) -> bytes:
        encoded.append(message.id)
        return to_sse(message)

    message = PushMessage(
        id=9,
        type="pickup.offered",
        at="",
        pickup_id=5,
        data={"round": 1, "couriers": [1, 2]},
        to=list(range(1, 301)),
    )
    hub.route(message)
    frames = []
    for conn in conns:
        (item,) = await conn.take()
        assert isinstance(item, Outgoing)
        frames.append(item.frame(encode))
    assert encoded == [9] and len({id(f) for f in frames}) == 1  # one encoding, the same bytes for all
    assert b'"couriers"' not in frames[0]  # nor the list an offer written before this change held
    # One timer for all: within one interval every stream, courier or console, gets its keepalive.
    ticker = asyncio.create_task(hub.keep_alive(interval_s=0.3, slices=3))
    try:
        got = await asyncio.wait_for(asyncio.gather(*(c.take() for c in conns)), 2)
    finally:
        await stop_task(ticker)
    assert all(items == [KEEPALIVE_FRAME] for items in got)
