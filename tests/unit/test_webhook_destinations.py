"""Unit tests for server.webhooks.destinations: which webhook URLs and addresses may be reached, and a
delivery that goes to the checked address while TLS still verifies the name (real sockets, no DB)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from server.webhooks import destinations
from server.webhooks.destinations import (
    NOT_ALLOWED,
    AllowedHosts,
    Destination,
    RefusedDestination,
    allowed_hosts,
    check_destination,
    delivery_client,
    is_public,
    normalise_allowed_host,
    parse_webhook_url,
    post_to_checked_address,
    public_error,
)

NOBODY = AllowedHosts()

# -- which addresses are public ------------------------------------------------------------------------

NOT_PUBLIC = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "0.1.2.3",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast, which Python calls global
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",  # site-local, which Python calls global
    "ff02::1",  # multicast
    "ff0e::1",
    "2001:db8::1",
    "100::1",  # discard-only
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible is deprecated altogether
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1, which Python calls global
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2001::1",  # Teredo
]
PUBLIC = [
    "8.8.8.8",
    "93.184.216.34",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_inside_or_reserved_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_globally_routable_unicast_is_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


# -- parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://example.com/", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http://good.example@127.0.0.1/", "user name or password"),
        ("http://user:pass@example.com/", "user name or password"),
        ("http://@example.com/", "user name or password"),
        ("http://[::1", "not a valid URL"),
        ("http://[::1]:99999/", "not a valid URL"),
        ("http://example.com:abc/", "not a valid URL"),
        ("http://[example.com]/", "not a valid URL"),
        ("http://[127.0.0.1]/", "not a valid URL"),
        ("http://example.com:0/", "port"),
        ("http:///path", "needs a host"),
        ("http://exa mple.com/", "not a valid URL"),
        ("http://exa\tmple.com/", "not a valid URL"),
        ("http://example.com\\@127.0.0.1/", "not a valid URL"),
        ("http://127.0.0.%31/", "not a valid URL"),
        ("http://[fe80::1%25eth0]/", "not a valid URL"),
        ("http://2130706433/", "four decimal numbers"),
        ("http://0x7f000001/", "four decimal numbers"),
        ("http://0177.0.0.1/", "four decimal numbers"),
        ("http://127.1/", "four decimal numbers"),
        ("http://0x7f.1/", "four decimal numbers"),
        ("http://127.0.0.1.1/", "four decimal numbers"),
        ("http://under_.score-/", "not a valid host name"),
    ],
)
def test_it_refuses_urls_that_are_not_plain_http_to_a_host(url: str, says: str) -> None:
    with pytest.raises(RefusedDestination) as caught:
        parse_webhook_url(url)
    assert says in caught.value.message


def test_a_url_keeps_its_name_port_path_and_query_for_the_request() -> None:
    url = parse_webhook_url(" HTTPS://Hooks.Example.COM./lanshou/v1?key=a#frag ")
    assert (url.scheme, url.host, url.port, url.target) == (
        "https",
        "hooks.example.com",
        443,
        "/lanshou/v1?key=a",
    )
    assert url.address is None
    assert url.host_header == "hooks.example.com"
    assert (
        url.for_address(ipaddress.ip_address("93.184.216.34")) == "https://93.184.216.34:443/lanshou/v1?key=a"
    )
    assert (
        url.for_address(ipaddress.ip_address("2606:4700::1")) == "https://[2606:4700::1]:443/lanshou/v1?key=a"
    )


def test_a_non_default_port_and_an_ipv6_literal_appear_in_the_host_header() -> None:
    assert parse_webhook_url("http://hooks.example.com:8080").host_header == "hooks.example.com:8080"
    url = parse_webhook_url("http://[2606:4700::1]:8443/x")
    assert url.address == ipaddress.ip_address("2606:4700::1")
    assert url.host_header == "[2606:4700::1]:8443"


def test_an_internationalised_name_is_kept_in_its_ascii_form() -> None:
    assert parse_webhook_url("https://回调.例子.cn/hook").host == "xn--zbss05j.xn--fsqu00a.cn"


# -- the check: every address, allow-list -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[::]/",
        "http://0.0.0.0:8000/",
        "http://localhost:8000/",  # a name that resolves inside
        "http://LocalHost./",
        "http://does-not-exist.invalid/",  # a name that does not resolve reads the same
    ],
)
async def test_it_refuses_destinations_inside_the_network_alike(url: str) -> None:
    with pytest.raises(RefusedDestination) as caught:
        await check_destination(url, NOBODY)
    assert caught.value.status == NOT_ALLOWED
    assert "public internet" in caught.value.message
    assert "127.0.0.1" not in caught.value.message  # what it resolved to is for the log only


async def test_a_public_address_passes_and_is_what_delivery_connects_to() -> None:
    destination = await check_destination("https://93.184.216.34/hook", NOBODY)
    assert destination.addresses == (ipaddress.ip_address("93.184.216.34"),)


async def test_allowed_networks_and_names_open_only_what_they_name() -> None:
    allowed = allowed_hosts(
        tuple(normalise_allowed_host(e) for e in ["127.0.0.1", "10.20.0.0/16", "LocalHost"])
    )
    assert (await check_destination("http://127.0.0.1:9000/", allowed)).addresses
    assert (await check_destination("http://10.20.3.4/", allowed)).addresses
    assert (await check_destination("http://[::ffff:127.0.0.1]/", allowed)).addresses
    named = await check_destination("http://localhost:9000/", allowed)
    assert ipaddress.ip_address("127.0.0.1") in named.addresses
    for still_refused in [
        "http://127.0.0.2/",
        "http://10.21.0.1/",
        "http://169.254.169.254/",
        "http://[::1]/",
    ]:
        with pytest.raises(RefusedDestination):
            await check_destination(still_refused, allowed)


@pytest.mark.parametrize(
    ("answer", "passes"),
    [
        (["93.184.216.34", "2606:4700::1111"], True),
        (["93.184.216.34", "10.0.0.1"], False),  # one inside among public ones
        (["2606:4700::1111", "::1"], False),
        (["93.184.216.34", "127.0.0.1"], False),
    ],
)
async def test_every_address_a_name_resolves_to_must_be_public(
    monkeypatch: pytest.MonkeyPatch, answer: list[str], passes: bool
) -> None:
    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        assert (host, port) == ("hooks.partner.test", 443)
        return [ipaddress.ip_address(a) for a in answer]

    monkeypatch.setattr(destinations, "resolve", resolve)  # a DNS answer we choose
    if passes:
        checked = await check_destination("https://hooks.partner.test/hook", NOBODY)
        assert [str(a) for a in checked.addresses] == answer
    else:
        with pytest.raises(RefusedDestination):
            await check_destination("https://hooks.partner.test/hook", NOBODY)


@pytest.mark.parametrize(
    ("entry", "kept"),
    [
        ("127.0.0.1", "127.0.0.1/32"),
        (" 10.1.0.0/16 ", "10.1.0.0/16"),
        ("[::1]", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("ERP.Internal.", "erp.internal"),
        ("localhost", "localhost"),
    ],
)
def test_allowed_host_entries_are_normalised(entry: str, kept: str) -> None:
    assert normalise_allowed_host(entry) == kept


@pytest.mark.parametrize(
    "entry", ["*", "10.0.0.1/8", "10.0.0.0/33", "127.1", "0x7f000001", "http://erp", "a..b", "::g"]
)
def test_allowed_host_entries_that_are_neither_name_nor_network_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        normalise_allowed_host(entry)


# -- what the partner is told --------------------------------------------------------------------------


def test_connection_failures_read_alike_whatever_the_port_did() -> None:
    request = httpx.Request("POST", "http://93.184.216.34/")
    refused = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    timeout = httpx.ConnectTimeout("timed out", request=request)
    assert public_error(refused) == public_error(timeout) == "could not connect"
    assert public_error(httpx.ReadTimeout("", request=request)) == "timed out"
    assert public_error(TimeoutError()) == "timed out"
    assert public_error(RefusedDestination("x", status=NOT_ALLOWED)) == NOT_ALLOWED


# -- TLS to the checked address, verified against the name --------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throw-away CA and a certificate for hooks.partner.test signed by it (openssl CLI)."""
    tmp = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=Lanshou test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=hooks.partner.test")  # fmt: skip
    (tmp / "san.ext").write_text("subjectAltName=DNS:hooks.partner.test\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    yield tmp


class TlsReceiver:
    """An HTTPS endpoint on 127.0.0.1 that records the SNI name and Host header it was sent."""

    def __init__(self) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.hosts.append(headers["host"])
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def tls_receiver(certificates: Path) -> AsyncIterator[tuple[TlsReceiver, int]]:
    receiver = TlsReceiver()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    context.sni_callback = lambda _sock, name, _ctx: receiver.sni.append(name)  # type: ignore[assignment, func-returns-value]
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver, port


async def test_delivery_connects_to_the_checked_address_and_tls_verifies_the_name(
    certificates: Path, tls_receiver: tuple[TlsReceiver, int]
) -> None:
    receiver, port = tls_receiver
    # The name resolves nowhere: the request can only have reached the receiver through the checked address.
    url = parse_webhook_url(f"https://hooks.partner.test:{port}/hook")
    destination = Destination(url, (ipaddress.ip_address("127.0.0.1"),))
    trust_test_ca = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    async with delivery_client(trust_test_ca) as client:
        status = await post_to_checked_address(
            client, destination, b"{}", {"content-type": "application/json"}
        )
    assert status == 204
    assert receiver.sni == ["hooks.partner.test"]
    assert receiver.hosts == [f"hooks.partner.test:{port}"]


async def test_a_certificate_for_another_name_is_refused(
    certificates: Path, tls_receiver: tuple[TlsReceiver, int]
) -> None:
    _receiver, port = tls_receiver
    url = parse_webhook_url(f"https://other.partner.test:{port}/hook")
    destination = Destination(url, (ipaddress.ip_address("127.0.0.1"),))
    trust_test_ca = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    async with delivery_client(trust_test_ca) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await post_to_checked_address(client, destination, b"{}", {})
    assert public_error(caught.value) == "TLS handshake failed"


async def test_the_next_checked_address_is_tried_when_one_cannot_be_connected_to(
    certificates: Path, tls_receiver: tuple[TlsReceiver, int]
) -> None:
    receiver, port = tls_receiver
    url = parse_webhook_url(f"https://hooks.partner.test:{port}/hook")
    # 127.0.0.2 answers nothing on that port (connection refused): 127.0.0.1 is tried next.
    destination = Destination(url, (ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")))
    trust_test_ca = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    async with delivery_client(trust_test_ca) as client:
        assert await post_to_checked_address(client, destination, b"{}", {}) == 204
    assert receiver.hosts == [f"hooks.partner.test:{port}"]
