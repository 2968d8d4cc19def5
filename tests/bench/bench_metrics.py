"""What the request metrics (server/ops/metrics.RequestMetrics) cost per request, in this process.

Run: python -m tests.bench.bench_metrics [--requests 20000] [--rounds 7] [--multiprocess]

The bare create app of tests/bench/bare_app.py (Litestar decoding the real PickupCreate body, no
database) is called straight through ASGI, no network, with and without the metrics wrapper around its
handler, in alternating rounds (the machine is shared: the median of each side is reported). The
difference is what the wrapper adds to every request: a counter increment and a histogram observation
under the route template. Then the wrapper alone around an ASGI app that does nothing, which isolates
its own cost from Litestar's noise.

--multiprocess runs it with PROMETHEUS_MULTIPROC_DIR set (a temporary directory): the values are then
written to memory-mapped files, as several `lanshou serve` processes sharing one scrape do.

It prints figures and asserts nothing: the numbers belong to the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

import msgspec

BODY = msgspec.json.encode(
    {
        "sender": {"name": "李四", "phone": "13912345678"},
        "address": {
            "province": "湖南省",
            "city": "长沙市",
            "district": "望城区",
            "street": "白箬铺镇",
            "detail": "1号楼2单元",
            "lat": 28.2,
            "lng": 112.9,
        },
        "parcel_count": 1,
    }
)


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/pickups",
        "raw_path": b"/api/v1/pickups",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def send(message: dict[str, Any]) -> None:
    if message["type"] == "http.response.start" and message["status"] != 201:
        raise RuntimeError(f"the bare app answered {message['status']}")


async def nothing(scope: Any, receive: Any, send: Any) -> None:
    scope["path_template"] = "/api/v1/pickups"
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def quiet_send(message: dict[str, Any]) -> None:
    return None


async def per_request_us(app: Any, requests: int, send_to: Any = send) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await app(scope(), receive, send_to)
    return (time.perf_counter() - start) / requests * 1e6


async def main(args: argparse.Namespace) -> None:
    from server.ops.metrics import RequestMetrics
    from tests.bench.bare_app import create_app

    plain = create_app()
    measured = create_app()
    measured.asgi_handler = RequestMetrics(measured.asgi_handler, log_access=False)
    wrapped_nothing = RequestMetrics(nothing, log_access=False)
    for app in (plain, measured):  # warm up: routing caches, the metric's series
        await per_request_us(app, 1000)
    await per_request_us(wrapped_nothing, 1000, quiet_send)

    without, with_, bare, alone = [], [], [], []
    for _ in range(args.rounds):
        without.append(await per_request_us(plain, args.requests))
        with_.append(await per_request_us(measured, args.requests))
        bare.append(await per_request_us(nothing, args.requests, quiet_send))
        alone.append(await per_request_us(wrapped_nothing, args.requests, quiet_send))

    mode = (
        "multiprocess (mmap files)" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "one process (memory)"
    )
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; metrics: {mode}"
    )
    print(f"{args.rounds} alternating rounds of {args.requests} requests; medians per request:")
    w, m = statistics.median(without), statistics.median(with_)
    print(f"  POST /api/v1/pickups on the bare Litestar app, no metrics:   {w:7.2f} µs")
    print(
        f"  the same with RequestMetrics around the handler:             {m:7.2f} µs  (+{m - w:.2f} µs, {100 * (m - w) / w:+.1f}%)"
    )
    b, a = statistics.median(bare), statistics.median(alone)
    print(f"  an ASGI app that does nothing:                               {b:7.2f} µs")
    print(
        f"  the same with RequestMetrics around it:                      {a:7.2f} µs  (+{a - b:.2f} µs: the wrapper itself)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--multiprocess", action="store_true")
    arguments = parser.parse_args()
    if arguments.multiprocess and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client picks its value store when first imported: set the directory, run again.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lanshou-bench-prom-")
        os.execv(sys.executable, [sys.executable, "-m", "tests.bench.bench_metrics", *sys.argv[1:]])
    asyncio.run(main(arguments))
