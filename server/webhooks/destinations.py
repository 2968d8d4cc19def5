"""Where a webhook may be sent: one check, made when a partner registers a URL and again before every
delivery, and a sender that connects only to the addresses that check approved.

A webhook is a request Lanshou makes on a partner's say-so, so it must not reach into the network
Lanshou runs in (SSRF). Refused: schemes other than http(s), user names or passwords in the URL,
anything that is not a well-formed URL, IPv4 addresses spelled other than a.b.c.d (resolvers read
2130706433, 0x7f000001, 0177.0.0.1 and 127.1 as 127.0.0.1), and every address that is not globally
routable unicast — loopback, link-local (cloud metadata at 169.254.169.254), private, shared (CGNAT),
reserved, documentation, multicast, broadcast, unspecified — including the IPv6 forms that carry an
IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64).

A host name is resolved and EVERY address it resolves to must pass; the request then goes to one of
those checked addresses, with the name in the Host header and in TLS SNI (so the certificate is still
verified against the name). Nothing resolves the name again between check and connect, so a DNS answer
that changes in between (rebinding) cannot steer the request inside. Redirects are never followed.

LANSHOU_WEBHOOK_ALLOWED_HOSTS names the exceptions for on-premise integrations: host names (trusted with
whatever they resolve to) and IP networks (addresses inside them are allowed).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_TIMEOUT_S = 5.0
# Partner-facing words for a refused destination. One message for "does not resolve" and "resolves
# somewhere internal", so a partner cannot use the answer to map internal DNS names.
NOT_ALLOWED = "refused: address not allowed or host not found"
NOT_VALID = "refused: URL not valid"
_NOT_ALLOWED_MESSAGE = (
    "the webhook URL must point to a host on the public internet; this one does not resolve, "
    "or resolves to an address that is not allowed"
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# What inet_aton would read as (part of) an IPv4 address: decimal, octal (leading 0) or 0x-hex.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


class RefusedDestination(ValueError):
    """A webhook URL or address that may not be used.

    `message` tells the partner why at registration, `status` is what their webhook status shows after a
    refused delivery, `detail` (addresses, resolver errors) goes only to the server log.
    """

    def __init__(self, message: str, *, status: str = NOT_VALID, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail or message


def host_name(raw: str) -> str:
    """A DNS name as compared and resolved: lowercase ASCII (an IDN in its xn-- form), no final dot.

    ValueError if it is not a DNS name, or ends in a numeric label: no real name does, while
    resolvers read such a "name" as an IPv4 address in one of its odd spellings.
    """
    name = raw.strip().lower().removesuffix(".")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("not a valid host name") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError("not a valid host name")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise ValueError("write an IPv4 address as four decimal numbers (a.b.c.d)")
    return name


def normalise_allowed_host(entry: str) -> str:
    """One LANSHOU_WEBHOOK_ALLOWED_HOSTS entry as settings keep it: a canonical IP network (an address
    is a network of one) or a host name. ValueError says what is wrong with it."""
    text = entry.strip().lower()
    try:
        # strict: host bits set (10.0.0.1/8) are a typo, not a wish to allow 10.0.0.0/8.
        return str(ipaddress.ip_network(text.strip("[]")))
    except ValueError as exc:
        if "/" in text or ":" in text:
            raise ValueError(f"not a valid IP address or network ({exc})") from None
    return host_name(text)


@dataclass(frozen=True)
class AllowedHosts:
    """Internal destinations an operator allowed (LANSHOU_WEBHOOK_ALLOWED_HOSTS)."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows(self, address: IPAddress) -> bool:
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        return any(a in network for a in candidates for network in self.networks)


@functools.cache
def allowed_hosts(entries: tuple[str, ...]) -> AllowedHosts:
    """From the normalised entries in Settings.webhook_allowed_hosts."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError:
            names.add(entry)
    return AllowedHosts(frozenset(names), tuple(networks))


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast, judged by the IPv4 address inside for the IPv6 forms that carry one."""
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not (
            address.is_multicast or address.is_reserved or address.is_unspecified
        )
    if address in _IPV4_COMPATIBLE:
        return False  # ::a.b.c.d, deprecated (RFC 4291); includes :: and ::1
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and address in _NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is not None:
        return is_public(embedded)
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_site_local
        or address.is_link_local
        or address.is_private
        or address.is_loopback
        or address.is_unspecified
    )


@dataclass(frozen=True)
class WebhookUrl:
    """A parsed webhook URL: only what is needed to rebuild the request for a checked address."""

    scheme: str
    host: str  # a normalised host name, or an IP address without brackets
    port: int
    target: str  # path and query
    address: IPAddress | None  # the host, when the URL names an address

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def for_address(self, address: IPAddress) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def parse_webhook_url(url: str) -> WebhookUrl:
    """Syntax only (no DNS): RefusedDestination for anything but a plain http(s)://host[:port]/path."""
    text = url.strip()
    # urlsplit silently drops tabs and newlines, and parsers disagree on backslashes: refuse them.
    if not text or any(ord(c) < 0x21 or c in "\x7f\\" for c in text):
        raise RefusedDestination("the webhook URL is not a valid URL (no spaces or control characters)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise RefusedDestination(f"the webhook URL is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedDestination("the webhook URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise RefusedDestination("the webhook URL must not contain a user name or password")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise RefusedDestination("the webhook URL needs a host, as in https://hooks.example.com/lanshou")
    if "%" in raw_host:  # percent-escapes in a name, or an IPv6 zone: neither names a public host
        raise RefusedDestination("the webhook URL is not a valid URL (no % in the host)")
    if port == 0:
        raise RefusedDestination("the webhook URL's port must be from 1 to 65535")
    address: IPAddress | None
    try:
        address = ipaddress.ip_address(raw_host)  # a.b.c.d, or IPv6 (urlsplit checked the brackets)
        host = str(address)
    except ValueError:
        address = None
        try:
            host = host_name(raw_host)
        except ValueError as exc:
            raise RefusedDestination(f"the webhook URL's host is refused: {exc}") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookUrl(scheme, host, port or (443 if scheme == "https" else 80), target, address)


@dataclass(frozen=True)
class Destination:
    """A URL and the addresses it was checked to reach; deliver only to these."""

    url: WebhookUrl
    addresses: tuple[IPAddress, ...]


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to, resolved off the event loop (asyncio's getaddrinfo)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise RefusedDestination(
            _NOT_ALLOWED_MESSAGE, status=NOT_ALLOWED, detail=f"{host}: {exc!r}"
        ) from None
    # A link-local IPv6 answer may carry a zone ("fe80::1%eth0"): the address alone is what is judged.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise RefusedDestination(_NOT_ALLOWED_MESSAGE, status=NOT_ALLOWED, detail=f"{host}: no addresses")
    return list(dict.fromkeys(addresses))


async def check_destination(url: str, allowed: AllowedHosts) -> Destination:
    """Parse `url`, resolve its host and check every address: the one check for registration and
    delivery. RefusedDestination unless all may be reached."""
    parsed = parse_webhook_url(url)
    if parsed.address is not None:
        addresses = [parsed.address]
    else:
        addresses = await resolve(parsed.host, parsed.port)
        if parsed.host in allowed.names:
            return Destination(parsed, tuple(addresses))
    refused = [a for a in addresses if not (is_public(a) or allowed.allows(a))]
    if refused:
        raise RefusedDestination(
            _NOT_ALLOWED_MESSAGE,
            status=NOT_ALLOWED,
            detail=f"{parsed.host} resolves to {', '.join(map(str, refused))}, which is not allowed",
        )
    return Destination(parsed, tuple(addresses))


def delivery_client(verify: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """The client every delivery goes through.

    No redirects (a 3xx could point anywhere). No proxy from the environment (a proxy would resolve
    the name again, out of our check). No idle connections: httpx pools by address and port, so a
    kept connection could carry one partner's events over a TLS session verified for another
    partner's name on the same address. SSL_CERT_FILE / SSL_CERT_DIR still choose the CA bundle.
    """
    transport = httpx.AsyncHTTPTransport(
        verify=verify or httpx.create_ssl_context(), limits=httpx.Limits(max_keepalive_connections=0)
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(10.0, connect=5.0),
        follow_redirects=False,
        trust_env=False,
    )


async def post_to_checked_address(
    client: httpx.AsyncClient, destination: Destination, body: bytes, headers: Mapping[str, str]
) -> int:
    """POST to one of the destination's checked addresses, named as the URL names it (Host header, TLS
    SNI and certificate check); the next address is tried only when one cannot be connected to.
    Returns the status code (the body is not read). Raises httpx.HTTPError."""
    url = destination.url
    extensions = {"sni_hostname": url.host} if url.scheme == "https" and url.address is None else {}
    failure: httpx.HTTPError | None = None
    for address in destination.addresses:
        try:
            async with client.stream(
                "POST",
                url.for_address(address),
                content=body,
                headers={**headers, "host": url.host_header},
                extensions=extensions,
            ) as response:
                return response.status_code
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc  # e.g. an IPv6 answer first on a host without an IPv6 route
    assert failure is not None
    raise failure


def public_error(exc: BaseException) -> str:
    """What a partner is told about a failed delivery: what went wrong, never what the network looks
    like behind it (connection refused and connect timeout read alike)."""
    if isinstance(exc, RefusedDestination):
        return exc.status
    if isinstance(exc, httpx.ConnectError) and _caused_by(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return "could not connect"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timed out"
    if isinstance(exc, httpx.HTTPError):
        return "connection failed"
    return "delivery failed"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # a chain, not a cycle, but never loop on a bad one
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
