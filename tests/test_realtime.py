"""Push over SSE: resuming after a dropped connection, couriers churning while offers flow, and two
server processes sharing one stream (Redis on SQLite runs, LISTEN/NOTIFY on PostgreSQL runs)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from typing import Any

import httpx
import msgspec
import pytest

from server.push.hub import PushHub
from server.push.log import PushMessage
from tests.conftest import (
    ON_POSTGRES,
    Database,
    Personas,
    ServerProcess,
    SSEEvent,
    SSEStream,
    login_couriers,
    make_zone,
    pickup_body,
    square,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


async def create_pickup(partner: Any, zone: Any) -> int:
    r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "offered", r.json()
    return int(r.json()["id"])


async def history(partner: Any, pickup_id: int) -> list[dict[str, Any]]:
    r = await partner.get(f"/api/v1/pickups/{pickup_id}")
    assert r.status_code == 200, r.text
    return r.json()["events"]


async def offered_event_ids(partner: Any, pickup_ids: list[int]) -> dict[int, int]:
    """The log's `pickup.offered` event id for each pickup (grab mode: one offer to everyone on duty)."""
    result = {}
    for pickup_id in pickup_ids:
        offers = [e["id"] for e in await history(partner, pickup_id) if e["type"] == "pickup.offered"]
        assert len(offers) == 1, (pickup_id, offers)
        result[pickup_id] = offers[0]
    return result


def offered_ids(events: list[SSEEvent], pickup_ids: set[int]) -> list[int]:
    return [
        int(e.id or -1) for e in events if e.event == "pickup.offered" and e.data["pickup_id"] in pickup_ids
    ]


def last_id(events: list[SSEEvent], default: str) -> str:
    """What a browser's EventSource sends as Last-Event-ID: the id of the last event that had one."""
    ids = [e.id for e in events if e.id is not None]
    return ids[-1] if ids else default


async def connections(base_url: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        return int((await client.get("/health")).json()["connections"])


async def wait_for_connections(base_url: str, expected: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (count := await connections(base_url)) != expected:
        assert time.monotonic() < deadline, f"/health counts {count} connections, expected {expected}"
        await asyncio.sleep(0.05)


# -- 1. resume ---------------------------------------------------------------------------------------------


async def test_a_reconnecting_courier_gets_the_offer_made_while_it_was_away(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    partner = people.partner()

    async with SSEStream(courier) as first:
        ready = first.seen[-1]
        assert ready.event == "ready" and ready.id is not None
    pickup_id = await create_pickup(partner, zone)  # offered while the courier is offline

    async with SSEStream(courier, last_event_id=ready.id) as resumed:
        offered = resumed.seen[0]  # replayed from the log, before `ready`
        assert offered.event == "pickup.offered" and offered.data["pickup_id"] == pickup_id
        assert [e.event for e in resumed.seen] == ["pickup.offered", "ready"]
        assert offered.id == str(offered.data["id"])  # SSE ids are event ids
        await resumed.next_event("ready")  # consume what was replayed
        await resumed.expect_none("pickup.offered", within=0.5)  # not again from the live push

    # The same through ?last_event_id= (for clients that cannot set headers): only what came after.
    second_id = await create_pickup(partner, zone)
    path = f"/api/v1/courier/events?last_event_id={offered.id}"
    async with SSEStream(courier, path=path) as by_query:
        replayed = offered_ids(by_query.seen, {pickup_id, second_id})
        assert replayed == list((await offered_event_ids(partner, [second_id])).values())
        await by_query.next_event("ready")
        await by_query.expect_none("pickup.offered", within=0.5)


async def test_a_last_event_id_this_log_never_gave_starts_the_stream_afresh(people: Personas) -> None:
    """Not a number, negative, 2^63 and more, or beyond the newest event (say, the database was
    replaced): a 400 would make EventSource give up for good, so the stream starts as if none was sent."""
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    await create_pickup(people.partner(), zone)  # the courier has events to (wrongly) replay from 0
    async with SSEStream(courier) as fresh:
        newest = fresh.seen[-1].id
    assert newest is not None and int(newest) > 0
    beyond = str(int(newest) + 10**12)
    for bad in ("yesterday", "-5", "1e3", "1_0", str(2**63), str(2**64), "9" * 40, beyond):
        async with SSEStream(courier, last_event_id=bad) as stream:
            assert [(e.event, e.id) for e in stream.seen] == [("ready", newest)], bad
    # Through the query string too, digits that are not ASCII included.
    for bad in ("yesterday", "%EF%BC%91%EF%BC%92", "-1"):
        async with SSEStream(courier, path=f"/api/v1/courier/events?last_event_id={bad}") as stream:
            assert [(e.event, e.id) for e in stream.seen] == [("ready", newest)], bad
    admin = await people.user("admin")
    for bad in ("yesterday", beyond):
        async with SSEStream(admin, path="/console/events", last_event_id=bad) as stream:
            assert [e.event for e in stream.seen] == ["ready"] and int(stream.seen[0].id or 0) >= int(newest)


# -- the long gap: more missed events than one read of the log returns --------------------------------------

GAP = 700  # REPLAY_PAGE is 500: a replay needs more than one page


async def chase(partner: Any, pickup_id: int, times: int) -> None:
    """The partner chases a pickup `times` times (a few at once): each is an event to its holder."""
    gate = asyncio.Semaphore(6)

    async def once() -> None:
        async with gate:
            r = await partner.post(f"/api/v1/pickups/{pickup_id}/chase")
            assert r.status_code == 200, r.text

    await asyncio.gather(*(once() for _ in range(times)))


async def chased_ids(partner: Any, pickup_id: int) -> list[int]:
    return [e["id"] for e in await history(partner, pickup_id) if e["type"] == "pickup.chased"]


async def received_chases(stream: SSEStream, pickup_id: int, want: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        got = [
            int(e.id or -1)
            for e in stream.seen
            if e.event == "pickup.chased" and e.data["pickup_id"] == pickup_id
        ]
        if len(got) >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


async def resume_across_a_long_gap(people: Personas, api: Any, path: str) -> None:
    """`api` misses GAP chases of a held pickup, resumes from its last id while more chases arrive,
    and must get every one of them once, in id order: the missed ones first, then the live ones."""
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    partner = people.partner()
    pickup_id = await create_pickup(partner, zone)
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    api = api or courier
    async with SSEStream(api, path=path) as before:
        resume_from = before.seen[-1].id
    assert resume_from is not None
    await chase(partner, pickup_id, GAP)

    stream = SSEStream(api, path=path, last_event_id=resume_from)
    try:
        more = asyncio.create_task(chase(partner, pickup_id, 30))  # live while the replay runs
        await stream.__aenter__()
        await more
        want = await chased_ids(partner, pickup_id)
        assert len(want) == GAP + 30
        got = await received_chases(stream, pickup_id, len(want))
        assert len(got) == len(want), f"{len(want) - len(got)} of {len(want)} chases never arrived"
        assert got == want  # in order, each once
        ready = next(i for i, e in enumerate(stream.seen) if e.event == "ready")
        replayed = [e for e in stream.seen[:ready] if e.event == "pickup.chased"]
        assert len(replayed) >= GAP  # the gap came from the log, before `ready`
        ids = [int(e.id) for e in stream.seen if e.id is not None and e.event != "ready"]
        assert ids == sorted(set(ids))  # the whole stream in id order, nothing twice
    finally:
        await stream.close()


async def test_a_courier_resuming_after_a_long_gap_gets_every_missed_event(people: Personas) -> None:
    await resume_across_a_long_gap(people, None, "/api/v1/courier/events")


async def test_the_console_resuming_after_a_long_gap_gets_every_missed_event(people: Personas) -> None:
    await resume_across_a_long_gap(people, await people.user("admin"), "/console/events")


# -- 2. churn ----------------------------------------------------------------------------------------------


async def _churn(
    api: Any, start_id: str, stop: asyncio.Event, rng: random.Random
) -> tuple[list[SSEEvent], str, int]:
    """Connect, stay a random short while (sometimes not even until `ready`), drop, resume; repeat.
    Returns what it received over all its connections, the id to resume from, and how many it made."""
    received: list[SSEEvent] = []
    resume_from = start_id
    made = 0
    while not stop.is_set() and made < 300:  # bounded; the partner finishes long before
        made += 1
        stream = SSEStream(api, last_event_id=resume_from)
        if rng.random() < 0.25:
            stream._task = asyncio.create_task(stream._read())  # drop mid-handshake
            await asyncio.sleep(rng.uniform(0, 0.01))
        else:
            await stream.__aenter__()
            await asyncio.sleep(rng.uniform(0, 0.06))
        await stream.close()
        received += stream.seen
        resume_from = last_id(stream.seen, resume_from)
    return received, resume_from, made


async def test_couriers_churning_while_offers_flow_miss_nothing(people: Personas) -> None:
    """Four couriers hold one stream each; four more drop and resume all the time, while four partners
    create pickups. Every offer in the log reaches each courier once, in id order, and the server's
    connection count comes back to what is open."""
    baseline = await connections(people.server.url)
    zone = await make_zone(people, couriers=8)
    couriers = await login_couriers(people, zone)
    stable_apis, churn_apis = couriers[:4], couriers[4:]
    partner = people.partner()  # reads the log at the end
    rng = random.Random(4894)

    stable = [SSEStream(c) for c in stable_apis]
    await asyncio.gather(*(s.__aenter__() for s in stable))
    # Each churning courier starts from its own `ready`, as an app would on first launch.
    starts = []
    for api in churn_apis:
        async with SSEStream(api) as s:
            ready = s.seen[-1]
            assert ready.event == "ready" and ready.id is not None
            starts.append(ready.id)
    try:
        stop = asyncio.Event()
        churners = [
            asyncio.create_task(_churn(api, start, stop, random.Random(rng.random())))
            for api, start in zip(churn_apis, starts, strict=True)
        ]

        # Four partners at once: on PostgreSQL concurrent transactions commit out of event-id order
        # unless the log hands out ids in commit order (see UnitOfWork), and resuming "after id N"
        # relies on that.
        async def create_some(partner: Any, rng: random.Random) -> list[int]:
            made = []
            for _ in range(20):
                made.append(await create_pickup(partner, zone))
                await asyncio.sleep(rng.uniform(0, 0.06))
            return made

        batches = await asyncio.gather(
            *(create_some(people.partner(), random.Random(rng.random())) for _ in range(4))
        )
        pickup_ids = [pickup_id for batch in batches for pickup_id in batch]
        stop.set()
        churned = await asyncio.gather(*churners)
        # The churn was real: every churning courier reconnected many times while offers were flowing.
        assert all(reconnects >= 5 for _, _, reconnects in churned), [c[2] for c in churned]

        expected = await offered_event_ids(partner, pickup_ids)
        want = sorted(expected.values())
        ours = set(pickup_ids)

        # Stable streams: every offer once, in id order (waiting for the tail to arrive).
        deadline = time.monotonic() + 10
        for _ in range(200):
            if (
                all(len(offered_ids(s.seen, ours)) >= len(want) for s in stable)
                or time.monotonic() > deadline
            ):
                break
            await asyncio.sleep(0.05)
        for s in stable:
            assert offered_ids(s.seen, ours) == want

        # Churning couriers: a last resume catches up; across all their connections, each offer once.
        final = [
            SSEStream(api, last_event_id=resume)
            for api, (_, resume, _) in zip(churn_apis, churned, strict=True)
        ]
        await asyncio.gather(*(s.__aenter__() for s in final))
        for (events, _, _), last in zip(churned, final, strict=True):
            got = offered_ids(events, ours) + offered_ids(last.seen, ours)
            assert got == want, f"missing {sorted(set(want) - set(got))}, twice {len(got) - len(set(got))}"

        # Every courier was addressed every offer (the log agrees with what was pushed).
        for api in couriers:
            offers = (await api.get("/api/v1/courier/pickups")).json()["offers"]
            assert ours <= {o["id"] for o in offers}

        # No leaked connections: the hub counts exactly the streams still open.
        await wait_for_connections(people.server.url, baseline + len(stable) + len(final))
        await asyncio.gather(*(s.close() for s in final))
        await wait_for_connections(people.server.url, baseline + len(stable))
    finally:
        await asyncio.gather(*(s.close() for s in stable))
    await wait_for_connections(people.server.url, baseline)


# -- too big for one NOTIFY --------------------------------------------------------------------------------


def test_a_huge_batch_goes_out_in_messages_postgresql_accepts() -> None:
    """Unassigning 500 pickups writes some 2000 events in one transaction. PostgreSQL refuses a NOTIFY
    over 8000 bytes, and a refused publish ends Litestar's publishing task for good (no push would
    leave that process again), so even the list of event ids must be split."""

    class RecordingChannels:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def publish(self, data: bytes, channels: str) -> None:
            self.sent.append(data)

    hub = PushHub()
    channels = RecordingChannels()
    hub._channels = channels  # type: ignore[assignment]
    messages = [
        PushMessage(id=12_345_678 + i, type="pickup.unassigned", at="", pickup_id=i, data={}, to=[7])
        for i in range(2000)
    ]
    hub.publish(messages)
    assert len(channels.sent) > 1
    assert all(len(payload) < 8000 for payload in channels.sent)
    refs = [ref for payload in channels.sent for ref in msgspec.json.decode(payload)["refs"]]
    assert refs == [m.id for m in messages]


# -- 3. two processes ---------------------------------------------------------------------------------------


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def next_event_with_id(stream: SSEStream, event_type: str, event_id: int, timeout: float) -> SSEEvent:
    """Waits for one particular event (Redis pub/sub is global to the Redis server, so a stream could
    in principle also see another test run's events with the same pickup ids: match the event id)."""
    deadline = time.monotonic() + timeout
    while True:
        for event in stream.seen:
            if event.event == event_type and event.id == str(event_id):
                return event
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"no {event_type} {event_id} within {timeout}s; saw {[e.event for e in stream.seen]}"
            )
        try:
            await asyncio.wait_for(stream.events.get(), remaining)
        except TimeoutError:
            pass


async def test_two_processes_share_offers_zones_and_withdrawals(
    fresh_db: tuple[Database, dict[str, str]],
) -> None:
    database, demo = fresh_db
    if ON_POSTGRES:
        channels_url = database.url  # LISTEN/NOTIFY on the same database
    else:
        if not _redis_reachable():
            pytest.skip("Redis at 127.0.0.1:6379 is unreachable; the SQLite run shares push through Redis")
        channels_url = REDIS_URL
    prefix = f"lanshou-test-{database.name}"  # Redis pub/sub is server-wide: keep runs apart
    a = ServerProcess(database, LANSHOU_CHANNELS_URL=channels_url, LANSHOU_CHANNELS_PREFIX=prefix).start()
    try:
        b = ServerProcess(database, LANSHOU_CHANNELS_URL=channels_url, LANSHOU_CHANNELS_PREFIX=prefix).start()
    except BaseException:
        a.stop()
        raise
    on_a, on_b = Personas(a, demo["api_key"]), Personas(b, demo["api_key"])
    try:
        # The zone (and its couriers) are made through B; A learns of it through zones.changed.
        zone = await make_zone(on_b, couriers=2)
        alice = await on_a.user(zone.couriers[0], "pw-" + zone.couriers[0].split("-")[-1])
        bob = await on_b.user(zone.couriers[1], "pw-" + zone.couriers[1].split("-")[-1])
        r = await alice.post("/api/v1/courier/duty", json={"on_duty": True})
        assert r.json()["zones"] == [zone.code], "A's zone directory did not reload"
        r = await bob.post("/api/v1/courier/duty", json={"on_duty": True})
        assert r.json()["zones"] == [zone.code]
        partner_a, partner_b = on_a.partner(), on_b.partner()

        async with SSEStream(alice) as alice_on_a, SSEStream(bob) as bob_on_b:
            # Created through B, pushed to Alice on A within a second.
            r = await partner_b.post("/api/v1/pickups", json=pickup_body(zone))
            created_at = time.monotonic()
            assert r.status_code == 201 and r.json()["zone"]["code"] == zone.code, r.text
            from_b = r.json()["id"]
            (offer_id,) = (await offered_event_ids(partner_b, [from_b])).values()
            await next_event_with_id(alice_on_a, "pickup.offered", offer_id, timeout=1.0)
            assert time.monotonic() - created_at < 1.0

            # Created through A: A matches the zone made through B.
            r = await partner_a.post("/api/v1/pickups", json=pickup_body(zone))
            assert r.status_code == 201, r.text
            assert r.json()["zone"]["code"] == zone.code and r.json()["status"] == "offered"
            from_a = r.json()["id"]
            (offer_id,) = (await offered_event_ids(partner_a, [from_a])).values()
            await next_event_with_id(bob_on_b, "pickup.offered", offer_id, timeout=1.0)

            # Alice accepts on A; Bob, streaming from B, sees the offer withdrawn.
            r = await alice.post(f"/api/v1/courier/pickups/{from_a}/accept", json={})
            assert r.status_code == 200, r.text
            withdrawn = [e for e in await history(partner_a, from_a) if e["type"] == "pickup.withdrawn"]
            assert len(withdrawn) == 1
            event = await next_event_with_id(bob_on_b, "pickup.withdrawn", withdrawn[0]["id"], timeout=1.0)
            assert event.data["reason"] == "taken"

        # A stop-ship area made through B refuses a pickup made through A (stop_ship.changed).
        admin_b = await on_b.user("admin")
        area = {
            "name": "停发",
            "reason": "两进程",
            "geometry": square(zone.lng - 0.001, zone.lat - 0.001, 0.002),
        }
        r = await admin_b.post("/api/v1/stop-ship-areas", json={**area, "datum": "wgs84"})
        assert r.status_code == 201, r.text
        point = {"lng": zone.lng, "lat": zone.lat, "datum": "wgs84"}
        for _ in range(100):  # the push reaches A within moments: ask A (a read) until it knows
            r = await partner_a.get("/api/v1/serviceability", params=point)
            if r.json()["code"] == "stop_ship_area":
                break
            await asyncio.sleep(0.02)
        r = await partner_a.post("/api/v1/pickups", json=pickup_body(zone))
        assert r.status_code == 422 and r.json()["reason"] == "两进程", r.text
    finally:
        await on_a.close()
        await on_b.close()
        a.stop()
        b.stop()
