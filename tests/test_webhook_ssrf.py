"""Webhooks cannot reach inside the network (SSRF), against a server with no allowed internal hosts
(the session server allows loopback for the other webhook tests): such URLs are refused when a partner
registers them and again at every delivery, and a receiver listening on 127.0.0.1 gets nothing.

This module has a database and server of its own: on the shared database the session server, which
may reach loopback, would deliver to the receivers these tests expect to stay silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import (
    Api,
    Database,
    Personas,
    ServerProcess,
    demo_server,
    free_port,
    make_zone,
    pickup_body,
)
from tests.test_webhooks import Receiver, new_partner, webhook_status_once, write_webhook_url

NOT_ALLOWED = "refused: address not allowed or host not found"


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[Database, ServerProcess, str]]:
    """A database of its own and a server on it with no LANSHOU_WEBHOOK_ALLOWED_HOSTS."""
    with demo_server(
        "lanshou-ssrf-", LANSHOU_WEBHOOK_INTERVAL_MS="100", LANSHOU_SCHEDULER_INTERVAL_MS="50"
    ) as started:
        yield started


@pytest.fixture
async def people(guarded: tuple[Database, ServerProcess, str]) -> AsyncIterator[Personas]:
    _, server, api_key = guarded
    personas = Personas(server, api_key)
    yield personas
    await personas.close()


@pytest.fixture
def db(guarded: tuple[Database, ServerProcess, str]) -> Database:
    return guarded[0]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A live endpoint on loopback: everything these tests do must leave it without a single call."""
    listening = Receiver()
    yield listening
    listening.close()


def loopback_spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://localhost:{port}/hook",
        f"http://LOCALHOST.:{port}/hook",
        f"http://127.1:{port}/hook",
        f"http://2130706433:{port}/hook",
        f"http://0x7f000001:{port}/hook",
        f"http://0177.0.0.1:{port}/hook",
        f"http://0x7f.1:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://[::ffff:7f00:1]:{port}/hook",
        f"http://[::127.0.0.1]:{port}/hook",
        f"http://[2002:7f00:1::]:{port}/hook",
        f"http://[64:ff9b::7f00:1]:{port}/hook",
        f"http://0.0.0.0:{port}/hook",
        f"http://[::]:{port}/hook",
        f"http://good.example@127.0.0.1:{port}/hook",
        f"http://good.example:pw@127.0.0.1:{port}/hook",
    ]


INSIDE = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[fe80::1]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.10/",
    "http://does-not-exist.invalid/hook",
]
NOT_HTTP_OR_MALFORMED = [
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "javascript:alert(1)//",
    "http://[::1",
    "http://[::1]:99999/",
    "http://example.com:port/",
    "http://[example.com]/",
    "http:///nohost",
    "http://exa mple.com/",
    "http://user@93.184.216.34/",
]


async def refused(partner: Api, url: str) -> dict[str, str]:
    r = await partner.put("/api/v1/partner/webhook", json={"url": url})
    assert r.status_code == 422, f"{url}: {r.status_code} {r.text}"
    body = r.json()
    assert body["code"] == "bad_webhook_url"
    assert [e["field"] for e in body["errors"]] == ["url"]
    return body["errors"][0]


@pytest.mark.parametrize("url", INSIDE)
async def test_it_refuses_a_webhook_inside_the_network(people: Personas, url: str) -> None:
    error = await refused(people.partner(), url)
    assert "public internet" in error["message"]


@pytest.mark.parametrize("url", NOT_HTTP_OR_MALFORMED)
async def test_it_refuses_a_webhook_url_that_is_not_plain_http_with_422_not_500(
    people: Personas, url: str
) -> None:
    await refused(people.partner(), url)


async def test_it_refuses_every_spelling_of_loopback_and_the_receiver_there_hears_nothing(
    people: Personas, db: Database, receiver: Receiver
) -> None:
    partner = people.partner(new_partner(db))
    messages = [(await refused(partner, url))["message"] for url in loopback_spellings(receiver.port)]
    assert any("four decimal numbers" in m for m in messages)
    assert any("user name or password" in m for m in messages)
    assert all("127.0.0.1" not in m and "Errno" not in m for m in messages)
    assert (await partner.get("/api/v1/partner/webhook")).json()["url"] is None
    zone = await make_zone(people)
    await partner.post("/api/v1/pickups", json=pickup_body(zone))
    await asyncio.sleep(1.5)  # many delivery passes
    assert receiver.calls == []


@pytest.mark.parametrize("where", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.1"])
async def test_a_stored_url_inside_the_network_is_refused_again_at_delivery(
    people: Personas, db: Database, receiver: Receiver, where: str
) -> None:
    # As a URL stored before these checks existed, or a name whose DNS answer changed since it was
    # registered: delivery checks again, and the partner learns only that it was refused.
    code = f"ssrf-{free_port()}"
    partner = people.partner(new_partner(db, code))
    await write_webhook_url(db, code, f"http://{where}:{receiver.port}/hook")
    zone = await make_zone(people)
    await partner.post("/api/v1/pickups", json=pickup_body(zone))
    # Two attempts: the retry after the first back-off is refused too.
    status = await webhook_status_once(partner, lambda s: s["failed_attempts"] >= 2)
    expected = "refused: URL not valid" if where == "127.1" else NOT_ALLOWED
    assert status["last_error"] == expected
    assert receiver.calls == []
