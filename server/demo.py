"""The demo city: central Changsha inside the Second Ring Road (28.14–28.24° N, 112.94–113.04° E).

Hunan → Changsha → three districts → three stations with two zones each; a 3 × 2 grid of zones covers
the area. Twelve couriers (two per zone, each also backup in a neighbouring zone), one dispatcher, one
admin, one partner. Every password is `demo`; the partner's API key is generated and printed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from server.auth.service import create_partner, create_user
from server.push.log import SYSTEM, unit_of_work
from server.tables import Courier, CourierZone, Station, Zone

WEST, EAST = 112.940, 113.040
SOUTH, MIDDLE, NORTH = 28.140, 28.190, 28.240
COLS = (WEST, 112.9733333, 113.0066667, EAST)

# (code, name, station, column, row, admin areas); row 1 is the northern half.
ZONES = [
    ("CS-KF-01", "开福·湘江北", "ST-KF", 0, 1, ["新河街道", "通泰街街道"]),
    ("CS-KF-02", "开福·伍家岭", "ST-KF", 1, 1, ["伍家岭街道", "开福区"]),
    ("CS-FR-01", "芙蓉·马王堆", "ST-FR", 2, 1, ["马王堆街道", "芙蓉区"]),
    ("CS-TX-01", "天心·橘子洲", "ST-TX", 0, 0, ["橘子洲街道", "岳麓区"]),
    ("CS-TX-02", "天心·坡子街", "ST-TX", 1, 0, ["坡子街街道", "天心区"]),
    ("CS-FR-02", "雨花·东塘", "ST-FR", 2, 0, ["东塘街道", "雨花区"]),
]

STATIONS = [
    # code, name, level, parent
    ("HN", "湖南省", "province", None),
    ("HN-CS", "长沙市", "city", "HN"),
    ("HN-CS-KF", "开福区", "district", "HN-CS"),
    ("HN-CS-FR", "芙蓉区", "district", "HN-CS"),
    ("HN-CS-TX", "天心区", "district", "HN-CS"),
    ("ST-KF", "开福揽投部", "station", "HN-CS-KF"),
    ("ST-FR", "芙蓉揽投部", "station", "HN-CS-FR"),
    ("ST-TX", "天心揽投部", "station", "HN-CS-TX"),
]

# Each zone's backup zone: the neighbour across the row.
BACKUP = {
    "CS-KF-01": "CS-KF-02",
    "CS-KF-02": "CS-FR-01",
    "CS-FR-01": "CS-KF-02",
    "CS-TX-01": "CS-TX-02",
    "CS-TX-02": "CS-FR-02",
    "CS-FR-02": "CS-TX-02",
}
PASSWORD = "demo"
PARTNER_CODE = "demo-shop"


def zone_centre(code: str) -> tuple[float, float]:
    """(lng, lat) in WGS-84 at the middle of a demo zone: a point no other zone touches."""
    _, _, _, col, row, _ = next(z for z in ZONES if z[0] == code)
    south, north = (SOUTH, MIDDLE) if row == 0 else (MIDDLE, NORTH)
    return round((COLS[col] + COLS[col + 1]) / 2, 4), round((south + north) / 2, 4)


def roster() -> list[str]:
    """Who works which demo zone, one line a zone, for `lanshou demo` and the README."""
    lines = []
    for i, (code, name, station, *_) in enumerate(ZONES):
        primary = f"courier{2 * i + 1:02d}, courier{2 * i + 2:02d}"
        backups = [
            f"courier{2 * j + 1:02d}, courier{2 * j + 2:02d}"
            for j, (other, *_) in enumerate(ZONES)
            if BACKUP[other] == code
        ]
        lng, lat = zone_centre(code)
        lines.append(
            f"{code} {name} ({station}) at {lat:.4f}N {lng:.4f}E (WGS-84): primary {primary}; "
            f"backup {'; '.join(backups) or 'none'}"
        )
    return lines


def zone_polygon(col: int, row: int) -> dict[str, Any]:
    west, east = COLS[col], COLS[col + 1]
    south, north = (SOUTH, MIDDLE) if row == 0 else (MIDDLE, NORTH)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


async def seed_demo() -> dict[str, Any]:
    """Seed the demo city (once) and give the demo partner a fresh API key."""
    if not await Station.exists().where(Station.code == "HN"):
        await _seed_places()
        await _seed_people()
    key = await create_partner(PARTNER_CODE, "演示电商 Demo Shop")
    return {"partner": PARTNER_CODE, "api_key": key, "couriers": [f"courier{i:02d}" for i in range(1, 13)]}


async def _seed_places() -> None:
    async with unit_of_work() as uow:
        ids: dict[str, int] = {}
        for code, name, level, parent in STATIONS:
            rows = await Station.insert(
                Station(code=code, name=name, level=level, parent=ids.get(parent) if parent else None)
            ).returning(Station.id)
            ids[code] = rows[0]["id"]
        for code, name, station, col, row, areas in ZONES:
            await Zone.insert(
                Zone(
                    code=code,
                    name=name,
                    station=ids[station],
                    geojson=msgspec.json.encode(zone_polygon(col, row)).decode(),
                    admin_areas=msgspec.json.encode(areas).decode(),
                    dispatch_mode="grab",
                    offer_ttl_s=60,
                    sla_minutes=120,
                )
            )
        uow.add("zones.changed", actor=SYSTEM, data={"seeded": "demo"})


async def _seed_people() -> None:
    zone_ids = {r["code"]: r["id"] for r in await Zone.select(Zone.id, Zone.code)}
    station_of = {code: station for code, _, station, *_ in ZONES}
    await create_user(
        username="dispatch", password=PASSWORD, role="dispatcher", display_name="调度员", station_code="HN-CS"
    )
    await create_user(
        username="admin", password=PASSWORD, role="admin", display_name="管理员", station_code="HN"
    )
    for i in range(1, 13):
        zone = ZONES[(i - 1) // 2][0]
        user_id = await create_user(
            username=f"courier{i:02d}",
            password=PASSWORD,
            role="courier",
            display_name=f"揽投员{i:02d}",
            phone=f"1390731{i:04d}",
            station_code=station_of[zone],
        )
        courier = await Courier.select(Courier.id).where(Courier.user == user_id).first()
        assert courier is not None
        await CourierZone.insert(
            CourierZone(courier=courier["id"], zone=zone_ids[zone], role="primary"),
            CourierZone(courier=courier["id"], zone=zone_ids[BACKUP[zone]], role="backup"),
        )
