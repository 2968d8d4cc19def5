"""Seeds a load-harness database in one go, before any server starts: migrations, a partner key,
stations, square zones in a grid, N couriers on duty spread over the zones, and a login session for each.

Run by tests/bench/load.py as `python -m tests.bench.load_seed '<json spec>'` with the database's
environment (LANSHOU_DATABASE_URL …); prints one JSON object: the partner's API key, each zone's code
and a point inside it, and each courier's id, zone index and session key.

Why not the admin API and POST /auth/login: 10,000 couriers would be 10,000 password hashes to write and
10,000 more to check, minutes of CPU before the first create. Here every courier shares one password hash
(password "bench", so a person can still sign in as one), rows go in as multi-row INSERTs
(server/db/bulk.py), and sessions are written as the server's DatabaseSessionStore writes them: a row in
`sessions` whose data is the JSON Litestar stores ({"uid": <user id>}), sent back as the
`lanshou_session` cookie. Zones are read by each server process when it starts, so seeding before the
start is all the server needs.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import timedelta
from typing import Any

# Zones are squares of this many degrees (about 400 m), in a grid east of the demo city (no overlap).
ZONE_SIZE = 0.004
ORIGIN = (113.30, 28.30)
GRID = 40  # zones per row


def zone_corner(index: int) -> tuple[float, float]:
    return ORIGIN[0] + (index % GRID) * (ZONE_SIZE + 0.001), ORIGIN[1] + (index // GRID) * (ZONE_SIZE + 0.001)


async def seed(spec: dict[str, Any]) -> dict[str, Any]:
    from server.auth.passwords import hash_password
    from server.auth.service import create_partner
    from server.cli import migrate
    from server.db.bulk import insert_rows
    from server.push.log import utcnow
    from server.tables import Courier, CourierZone, Session, Station, User, Zone

    zones, couriers = int(spec["zones"]), int(spec["couriers"])
    mode, capacity = spec.get("mode", "grab"), int(spec.get("capacity", 1000))
    await migrate()
    api_key = await create_partner("load", "Load harness")
    now = utcnow()
    stations_n = max(1, (zones + 9) // 10)  # ten zones a station
    station_rows = await insert_rows(
        Station,
        [
            {"code": f"LOAD-ST{i}", "name": f"压测站 {i}", "level": "station", "parent": None}
            | {"timezone": "Asia/Shanghai"}
            for i in range(stations_n)
        ],
        returning=("id",),
    )
    zone_rows: list[dict[str, Any]] = []
    points = []
    for i in range(zones):
        lng, lat = zone_corner(i)
        ring = [
            [lng, lat],
            [lng + ZONE_SIZE, lat],
            [lng + ZONE_SIZE, lat + ZONE_SIZE],
            [lng, lat + ZONE_SIZE],
            [lng, lat],
        ]
        zone_rows.append(
            {
                "station": station_rows[i // 10]["id"],
                "code": f"LOAD-Z{i}",
                "name": f"压测片区 {i}",
                "geojson": json.dumps({"type": "Polygon", "coordinates": [ring]}),
                "admin_areas": "[]",
                "priority": 10,
                "dispatch_mode": mode,
                # Long enough that no offer expires or escalates during a run: what is measured is the
                # first round, not the timers.
                "offer_ttl_s": 3600,
                "sla_minutes": 600.0,
                "active": True,
                "opens": "08:00",
                "closes": "20:00",
                "slot_minutes": 120,
            }
        )
        points.append((lng + ZONE_SIZE / 2, lat + ZONE_SIZE / 2))
    zone_ids = [row["id"] for row in await insert_rows(Zone, zone_rows, returning=("id",))]

    password_hash = await hash_password("bench")
    tag = secrets.token_hex(3)
    user_rows = [
        {
            "username": f"load{i}-{tag}",
            "display_name": f"压测揽投员 {i}",
            "phone": None,
            "role": "courier",
            "password_hash": password_hash,
            "active": True,
            "station": station_rows[(i % zones) // 10]["id"],
            "created_at": now,
        }
        for i in range(couriers)
    ]
    user_ids = [row["id"] for row in await insert_rows(User, user_rows, returning=("id",))]
    courier_rows = [
        {"user": uid, "on_duty": True, "capacity": capacity, "duty_changed_at": now, "last_seen_at": now}
        for uid in user_ids
    ]
    courier_ids = [row["id"] for row in await insert_rows(Courier, courier_rows, returning=("id",))]
    # Courier i works zone i mod Z: every zone gets couriers // zones of them (or one more).
    await insert_rows(
        CourierZone,
        [
            {"courier": cid, "zone": zone_ids[i % zones], "role": "primary"}
            for i, cid in enumerate(courier_ids)
        ],
    )
    expires = now + timedelta(days=7)
    keys = [secrets.token_hex(16) for _ in user_ids]
    await insert_rows(
        Session,
        [
            {"key": key, "data": json.dumps({"uid": uid}, separators=(",", ":")), "expires_at": expires}
            for key, uid in zip(keys, user_ids, strict=True)
        ],
    )
    return {
        "api_key": api_key,
        "zones": [
            {"id": zid, "code": f"LOAD-Z{i}", "lng": points[i][0], "lat": points[i][1]}
            for i, zid in enumerate(zone_ids)
        ],
        "couriers": [
            {"id": cid, "zone": i % zones, "session": key}
            for i, (cid, key) in enumerate(zip(courier_ids, keys, strict=True))
        ],
    }


def main() -> None:
    from server.cli import _run, _settings

    spec = json.loads(sys.argv[1])
    result = _run(_settings(), lambda: seed(spec))
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
