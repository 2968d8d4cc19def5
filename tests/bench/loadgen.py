"""A minimal HTTP/1.1 keep-alive load generator on raw asyncio streams, for loopback benchmarks.

Why not httpx or aiohttp: on a 2-core machine the client shares the CPU with the server it measures,
and a full-featured client spends more CPU per request than a small server does. This one sends one
pre-encoded request over C persistent connections, reads only the status line and Content-Length (or
chunked framing), and records latencies: about 25,000 requests/s per core of its own, measured here.

    request = build_request("POST", "/api/v1/pickups", host="127.0.0.1:8000", body=b"{...}",
                            headers={"authorization": "Bearer ..."})
    result = run(load("127.0.0.1", 8000, request, concurrency=16, seconds=5, warmup=1))
    print(result.rate, result.p50_ms, result.p99_ms, result.statuses)

Closed-loop: each connection sends its next request when the previous response has been read, so the
latency is what a client with C requests in flight sees. Responses completed during the warm-up are
not counted; after the measured window no new request is sent.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

__all__ = ["LoadResult", "build_request", "load", "run"]


def build_request(
    method: str,
    path: str,
    *,
    host: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request, encoded once and sent as they are every time."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-type: {content_type}")
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class LoadResult:
    requests: int = 0  # responses completed inside the measured window
    seconds: float = 0.0  # length of the measured window
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # connection failures and malformed responses (the connection is reopened)
    latencies: list[float] = field(default_factory=list)  # seconds, one per counted response
    client_cpu: float = 0.0  # CPU this process used during the window, in cores (1.0 = one core busy)
    samples: dict[int, bytes] = field(default_factory=dict)  # the first body seen for each status

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)

    def bad(self, expected: int) -> int:
        """Responses with another status than `expected`, plus transport errors."""
        return self.requests - self.statuses[expected] + self.errors


class _ProtocolError(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) for one response; raises on a broken or closed connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise _ProtocolError(head[:80])
    status = int(head[9:12])
    lowered = head.lower()
    closes = b"\r\nconnection: close" in lowered
    at = lowered.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lowered.index(b"\r\n", at + 2)
        length = int(lowered[at + 17 : end])
        body = await reader.readexactly(length) if length else b""
    elif b"\r\ntransfer-encoding: chunked" in lowered:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            chunk = await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                # No trailers expected; a trailer section would end with one more CRLF.
                break
            parts.append(chunk[:-2])
        body = b"".join(parts)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()  # delimited by close
        closes = True
    return status, body, closes


async def load(
    host: str,
    port: int,
    request: bytes,
    *,
    concurrency: int = 16,
    seconds: float = 5.0,
    warmup: float = 1.0,
    connect_timeout: float = 5.0,
) -> LoadResult:
    """Send `request` over `concurrency` keep-alive connections for warmup + seconds."""
    result = LoadResult()
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    clock = time.perf_counter
    started = clock()
    window_start = started + warmup
    window_end = window_start + seconds

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), connect_timeout
                    )
                assert reader is not None
                sent = clock()
                if sent >= window_end:
                    return
                try:
                    writer.write(request)
                    status, body, closes = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _ProtocolError):
                    done = clock()
                    if window_start <= done <= window_end:
                        result.errors += 1
                    writer.close()
                    reader = writer = None
                    await asyncio.sleep(0.01)  # a refusing server must not turn this into a busy loop
                    continue
                done = clock()
                if window_start <= sent and done <= window_end:
                    result.requests += 1
                    result.statuses[status] += 1
                    result.latencies.append(done - sent)
                    if status not in result.samples:
                        result.samples[status] = body
                if closes:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    async def measure_cpu() -> None:
        await asyncio.sleep(max(0.0, window_start - clock()))
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, window_end - clock()))
        result.client_cpu = (time.process_time() - cpu0) / seconds

    await asyncio.gather(measure_cpu(), *(connection() for _ in range(concurrency)))
    result.seconds = seconds
    return result


def run(main: Awaitable[T]) -> T:
    """asyncio.run, on uvloop when it is installed (less client CPU per request)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]
