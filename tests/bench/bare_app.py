"""The floor for `POST /api/v1/pickups`: a bare Litestar app that decodes the same PickupCreate struct
and answers 201 with a small JSON, with no database, no auth and no middleware.

Run: python -m tests.bench.bare_app --port 8001   (uvicorn, configured as `lanshou serve` runs it)
"""

from __future__ import annotations

import argparse
import itertools

import msgspec
import uvicorn
from litestar import Litestar, get, post

from server.pickups.schemas import PickupCreate

_ids = itertools.count(1)


class Created(msgspec.Struct):
    id: int
    status: str
    parcel_count: int


@post("/api/v1/pickups", status_code=201)
async def create_pickup(data: PickupCreate) -> Created:
    return Created(id=next(_ids), status="pending", parcel_count=data.parcel_count)


@get("/health")
async def health() -> dict[str, bool]:
    return {"push_ready": True}  # what the benchmark's start-up wait looks for, as on Lanshou


def create_app() -> Litestar:
    return Litestar(route_handlers=[create_pickup, health], debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same uvicorn options as server.cli.cmd_serve, so only the application differs.
    uvicorn.run(
        "tests.bench.bare_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
