"""Webhooks a partner can audit: the list of deliveries with their answers and attempts, one delivery's
events, a replay that leaves the ordered stream alone, the dead letter after the give-up time and the
re-arm that resumes in order; another partner's deliveries do not exist for you. And the README's
signature check, run as written against a real delivery.

Receivers listen on 127.0.0.1, which the session server allows (LANSHOU_WEBHOOK_ALLOWED_HOSTS).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import (
    ON_POSTGRES,
    ROOT,
    Api,
    Database,
    Personas,
    ServerProcess,
    make_zone,
    migrated_database,
    pickup_body,
)
from tests.test_webhooks import Receiver, new_partner, wait_for

HOOK = "/api/v1/partner/webhook"


async def run_sql(db: Database, statement: str, *args: Any) -> None:
    """One statement straight on the test database (`?` placeholders), past the API."""
    if ON_POSTGRES:
        import asyncpg

        for n in range(1, len(args) + 1):
            statement = statement.replace("?", f"${n}", 1)
        conn = await asyncpg.connect(db.url)
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()
    else:
        import sqlite3

        values = [str(a) if isinstance(a, datetime) else a for a in args]  # as Piccolo stores them
        with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
            conn.execute(statement, values)


async def insert_delivery(db: Database, partner_code: str, status: str = "delivered") -> None:
    """A finished delivery of one event for the partner, written as the worker would have."""
    await run_sql(
        db,
        "INSERT INTO webhook_deliveries (partner, status, events, through_event_id, attempts, "
        "last_status_code, first_attempt_ms, created_at, last_attempt_at) "
        'SELECT id, ?, \'[{"id":1,"type":"pickup.created"}]\', 1, 1, 200, 0, ?, ? FROM partners WHERE code = ?',
        status,
        datetime.now(UTC),
        datetime.now(UTC),
        partner_code,
    )


async def deliveries(partner: Api, **params: Any) -> list[dict[str, Any]]:
    r = await partner.get(f"{HOOK}/deliveries", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def delivery_once(partner: Api, delivery_id: int, condition, timeout: float = 10) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The delivery as soon as `condition(delivery)` holds."""
    last: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal last
        last = (await partner.get(f"{HOOK}/deliveries/{delivery_id}")).json()
        return bool(condition(last))

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"delivery {delivery_id} never matched: {last}")
        await asyncio.sleep(0.05)
    return last


def sent_events(receiver: Receiver, call: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = msgspec.json.decode(receiver.calls[call][1])["events"]
    return events


async def test_the_list_shows_failures_and_the_success_with_answers_and_attempts(
    people: Personas, db: Database
) -> None:
    receiver = Receiver(fail_first=2, fail_status=503)
    try:
        partner = people.partner(new_partner(db))
        await partner.put(HOOK, json={"url": receiver.url})
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        await wait_for(lambda: receiver.calls)
        (first,) = await deliveries(partner)
        failing = await delivery_once(partner, first["id"], lambda d: d["status"] == "failing")
        assert failing["last_status_code"] == 503 and failing["last_error"] == "HTTP 503"
        delivered = await delivery_once(partner, first["id"], lambda d: d["status"] == "delivered", 15)
        assert delivered["attempts"] == 3
        assert delivered["last_status_code"] == 200 and delivered["last_error"] is None
        assert delivered["delivered_at"] and delivered["dead_at"] is None
        # Every attempt carried the same events, and they are the ones the delivery lists.
        # (On PostgreSQL the pickup's later events may follow in a batch of their own.)
        assert [c[0]["x-lanshou-delivery-id"] for c in receiver.calls[:3]] == [str(first["id"])] * 3
        carried = [{"id": e["id"], "type": e["type"]} for e in sent_events(receiver, 2)]
        assert delivered["events"] == carried and delivered["event_count"] == len(carried)
        assert all(sent_events(receiver, n) == sent_events(receiver, 2) for n in (0, 1))

        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        await wait_for(lambda: len(receiver.calls) >= 4)
        newest = await deliveries(partner)
        assert [d["id"] for d in newest] == sorted((d["id"] for d in newest), reverse=True)
        second = await delivery_once(partner, newest[0]["id"], lambda d: d["status"] == "delivered")
        assert second["attempts"] == 1 and second["last_status_code"] == 200
        assert second["first_event_id"] > delivered["last_event_id"]
        # One at a time: the next page starts after the first.
        r = await partner.get(f"{HOOK}/deliveries", params={"limit": 1})
        page = r.json()
        assert [d["id"] for d in page["items"]] == [second["id"]] and page["next_cursor"]
        rest = await deliveries(partner, limit=1, cursor=page["next_cursor"])
        assert [d["id"] for d in rest] == [first["id"]]
    finally:
        receiver.close()


async def test_an_unreachable_endpoint_shows_no_answer_and_says_why(people: Personas, db: Database) -> None:
    receiver = Receiver()
    receiver.close()  # nothing listens there any more: the connection is refused
    partner = people.partner(new_partner(db))
    await partner.put(HOOK, json={"url": receiver.url})
    try:
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        deadline = asyncio.get_running_loop().time() + 10
        while not (items := await deliveries(partner)) or items[0]["attempts"] < 1:
            assert asyncio.get_running_loop().time() < deadline, items
            await asyncio.sleep(0.05)
        assert items[0]["status"] == "failing"
        assert items[0]["last_status_code"] is None and items[0]["last_error"] == "could not connect"
    finally:
        await partner.delete(HOOK)


async def test_a_replay_resends_the_same_events_and_leaves_the_stream_where_it_was(
    people: Personas, db: Database
) -> None:
    receiver = Receiver()
    try:
        partner = people.partner(new_partner(db))
        secret = (await partner.put(HOOK, json={"url": receiver.url})).json()["secret"]
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        await wait_for(lambda: receiver.delivered())
        (original,) = await deliveries(partner)
        original = await delivery_once(partner, original["id"], lambda d: d["status"] == "delivered")
        acknowledged = (await partner.get(HOOK)).json()["acknowledged_event_id"]

        r = await partner.post(f"{HOOK}/deliveries/{original['id']}/replay")
        assert r.status_code == 202, r.text
        replay = r.json()
        assert replay["replay_of"] == original["id"] and replay["id"] != original["id"]
        assert replay["events"] == original["events"]
        await wait_for(lambda: any(c[0].get("x-lanshou-replay-of") for c in receiver.calls))
        headers, body, _ = receiver.calls[-1]
        assert headers["x-lanshou-replay-of"] == str(original["id"])
        assert headers["x-lanshou-delivery-id"] == str(replay["id"])
        assert [e["id"] for e in msgspec.json.decode(body)["events"]] == [e["id"] for e in original["events"]]
        t, v1 = re.match(r"t=(\d+),v1=([0-9a-f]{64})$", headers["x-lanshou-signature"]).groups()  # type: ignore[union-attr]
        assert hmac.compare_digest(
            v1, hmac.new(secret.encode(), f"{t}.".encode() + body, "sha256").hexdigest()
        )
        done = await delivery_once(partner, replay["id"], lambda d: d["status"] == "delivered")
        assert done["attempts"] == 1 and done["last_status_code"] == 200
        # The ordered stream was not moved back (the pickup's later events may move it on), and goes on
        # from where it was: nothing of it sent twice or out of order (below).
        assert (await partner.get(HOOK)).json()["acknowledged_event_id"] >= acknowledged
        again = await delivery_once(partner, original["id"], lambda d: True)
        assert again["status"] == "delivered" and again["attempts"] == original["attempts"]
        later = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        await wait_for(lambda: any(e["pickup"]["id"] == later["id"] for e in receiver.delivered()))
        streamed = [
            e["id"] for h, b, _ in receiver.calls if "x-lanshou-replay-of" not in h for e in sent_events_of(b)
        ]
        assert streamed == sorted(set(streamed)), "the stream came out of order or twice"
    finally:
        receiver.close()


def sent_events_of(body: bytes) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = msgspec.json.decode(body)["events"]
    return events


async def test_another_partner_can_neither_see_nor_replay_my_deliveries(
    people: Personas, db: Database
) -> None:
    code = f"hook-mine-{datetime.now(UTC).timestamp():.0f}"
    mine = people.partner(new_partner(db, code))
    theirs = people.partner(new_partner(db))
    await insert_delivery(db, code)
    (delivery,) = await deliveries(mine)
    assert (await mine.get(f"{HOOK}/deliveries/{delivery['id']}")).status_code == 200
    for r in (
        await theirs.get(f"{HOOK}/deliveries/{delivery['id']}"),
        await theirs.post(f"{HOOK}/deliveries/{delivery['id']}/replay"),
    ):
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    assert await deliveries(theirs) == []
    assert len(await deliveries(mine)) == 1, "the refused replay was recorded"


@pytest.fixture
def give_up_server() -> Iterator[tuple[Database, ServerProcess]]:
    """A server of its own that gives a failing batch up after 1 s (the session server's is 24 h), on a
    database of its own without the demo city (seeding it would cost more than the test)."""
    with migrated_database("lanshou-deadletter-") as database:
        server = ServerProcess(
            database,
            LANSHOU_WEBHOOK_GIVE_UP_S="1",
            LANSHOU_WEBHOOK_INTERVAL_MS="50",
            LANSHOU_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        ).start()
        try:
            yield database, server
        finally:
            server.stop()


async def test_a_batch_failing_past_the_give_up_time_goes_dead_and_rearm_resumes_in_order(
    give_up_server: tuple[Database, ServerProcess],
) -> None:
    database, server = give_up_server
    receiver = Receiver(fail_first=10**6, fail_status=500)
    api_key = new_partner(database)
    people = Personas(server, api_key)
    try:
        partner = people.partner(api_key)
        await partner.put(HOOK, json={"url": receiver.url})
        zone = None  # no zones here: an unmatched pickup's events go to its partner all the same
        first = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        await wait_for(lambda: receiver.calls)
        (given_up,) = await deliveries(partner)
        # While it is being tried it cannot be replayed (a copy would overtake the stream).
        r = await partner.post(f"{HOOK}/deliveries/{given_up['id']}/replay")
        assert r.status_code == 409 and r.json()["code"] == "delivery_in_progress", r.text

        await delivery_once(partner, given_up["id"], lambda d: d["status"] == "failing")
        status = (await partner.get(HOOK)).json()
        assert status["state"] == "failing" and status["dead_since"] is None
        dead = await delivery_once(partner, given_up["id"], lambda d: d["status"] == "dead", 10)
        assert dead["attempts"] >= 2 and dead["last_status_code"] == 500 and dead["dead_at"]
        status = (await partner.get(HOOK)).json()
        assert status["state"] == "dead" and status["dead_since"], status
        assert status["last_error"] == "HTTP 500"

        # Dead: nothing more is sent, also for new events.
        second = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        calls = len(receiver.calls)
        await asyncio.sleep(0.5)
        assert len(receiver.calls) == calls, "a dead webhook was sent to"

        receiver.fail_first = 0  # the partner fixed its endpoint
        r = await partner.post(f"{HOOK}/rearm")
        assert r.status_code == 200 and r.json()["state"] in ("delivering", "failing"), r.text
        await wait_for(
            lambda: {e["pickup"]["id"] for e in receiver.delivered()} >= {first["id"], second["id"]}
        )
        ids = [e["id"] for e in receiver.delivered()]
        assert ids == sorted(set(ids)), "out of order or twice after the re-arm"
        assert receiver.delivered()[0]["pickup"]["id"] == first["id"], "it did not resume where it stopped"
        assert [{"id": e["id"], "type": e["type"]} for e in receiver.delivered()][
            : dead["event_count"]
        ] == dead["events"]
        rearmed = await delivery_once(partner, given_up["id"], lambda d: True)
        assert rearmed["status"] == "dead" and rearmed["rearmed_at"]
        status = (await partner.get(HOOK)).json()
        assert status["state"] == "delivering" and status["dead_since"] is None
        r = await partner.post(f"{HOOK}/rearm")
        assert r.status_code == 409 and r.json()["code"] == "webhook_not_dead", r.text
    finally:
        await people.close()
        receiver.close()


def readme_block(language: str) -> str:
    """The first `language` code block of the README's "Checking webhook signatures" section."""
    readme = (Path(ROOT) / "README.md").read_text()
    section = readme.split("## Checking webhook signatures", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} example in the README's signature section"
    return match.group(1)


async def test_the_readme_signature_check_accepts_a_real_delivery_and_refuses_tampering_and_staleness(
    people: Personas, db: Database
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("python"), "README.md", "exec"), namespace)
    check = namespace["lanshou_signature_ok"]
    receiver = Receiver()
    try:
        partner = people.partner(new_partner(db))
        secret = (await partner.put(HOOK, json={"url": receiver.url})).json()["secret"]
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        await wait_for(lambda: receiver.calls)
        headers, body, _ = receiver.calls[0]
        header = headers["x-lanshou-signature"]
        t = int(re.search(r"t=(\d+)", header).group(1))  # type: ignore[union-attr]
        tampered = body.replace(b'"events"', b'"Events"', 1)
        assert tampered != body

        def signed_at(when: int) -> str:
            digest = hmac.new(secret.encode(), f"{when}.".encode() + body, hashlib.sha256).hexdigest()
            return f"t={when},v1={digest}"

        assert check(secret, header, body)
        assert not check(secret, header, tampered)
        assert not check("whsec_someone-else", header, body)
        assert not check(secret, header, body, now=t + 301), "a delivery 5 minutes old was accepted"
        assert check(secret, header, body, now=t + 299)
        assert not check(secret, signed_at(t - 400), body), "a genuine but stale signature was accepted"
        assert not check(secret, "garbage", body)

        # The Node example, the same way, where Node is installed.
        if shutil.which("node") is None:
            return
        script = readme_block("js") + (
            "\nconst [secret, header, body, t] = process.argv.slice(1);\n"
            "const raw = Buffer.from(body, 'base64');\n"
            "console.log([lanshouSignatureOk(secret, header, raw), "
            "lanshouSignatureOk(secret, header, Buffer.concat([raw, Buffer.from(' ')])), "
            "lanshouSignatureOk(secret, header, raw, Number(t) + 301)].join(','));\n"
        )
        node = await asyncio.create_subprocess_exec(
            "node",
            "-e",
            script,
            secret,
            header,
            base64.b64encode(body).decode(),
            str(t),
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(node.communicate(), 30)
        out = stdout.decode().strip()
        assert out == "true,false,false", out
    finally:
        receiver.close()
