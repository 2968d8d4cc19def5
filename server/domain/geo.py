"""Geographic domain logic for Lanshou: datums, zone GeoJSON, zone matching.

Everything here is pure (no I/O, no database) so it can be unit-tested and
reused by the API, the importers and the dispatcher alike.

Datums
    Lanshou stores every coordinate (zone polygons and pickup points) in
    WGS-84, the datum GeoJSON mandates (RFC 7946) and the one phones' GPS
    reports. Chinese map providers publish obfuscated coordinates instead:
    GCJ-02 (AMap/Gaode, Tencent) and BD-09 (Baidu), which sit a few hundred
    metres away from WGS-84. Anything arriving in those datums is converted
    with :func:`to_wgs84` at the boundary, and converted back with
    :func:`from_wgs84` only when talking to those providers (for instance in
    :func:`navigation_links`).

Zones
    Delivery zones are exchanged as a GeoJSON FeatureCollection.
    :func:`parse_zone_collection` validates one and returns
    :class:`ZoneFeature` values, or raises :class:`GeoJSONError` listing
    *every* problem found, so that an operator fixing a file exported from a
    GIS tool sees them all at once. :func:`to_feature_collection` is the
    inverse.

Matching
    :class:`ZoneIndex` answers "which zone serves this pickup?" from a point
    (R-tree over the polygons) or, failing that, from administrative area
    names (street, district) for addresses that could not be geocoded.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias, get_args
from urllib.parse import quote

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity

from server.domain.text import text_problem

__all__ = [
    "DATUMS",
    "Datum",
    "GeoError",
    "GeoJSONError",
    "IndexedZone",
    "ZoneFeature",
    "ZoneIndex",
    "ZoneLike",
    "from_wgs84",
    "navigation_links",
    "out_of_china",
    "parse_area_geometry",
    "parse_zone_collection",
    "to_feature_collection",
    "to_wgs84",
]

# ---------------------------------------------------------------------------
# Datums
# ---------------------------------------------------------------------------

Datum: TypeAlias = Literal["wgs84", "gcj02", "bd09"]
DATUMS: tuple[Datum, ...] = get_args(Datum)

# Constants of the (leaked, widely republished) GCJ-02 obfuscation: the
# Krasovsky 1940 ellipsoid's semi-major axis and first eccentricity squared.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
# BD-09 adds its own rotation/scaling on top of GCJ-02, parameterised by this.
_X_PI = math.pi * 3000.0 / 180.0

# The inverse GCJ-02 transform has no closed form; we iterate the forward
# transform. The brief asks for < 1e-6 degree; going to 1e-9 (~0.1 mm) costs
# one or two extra iterations and makes round trips exact for all practical
# purposes. The offset's derivative is tiny, so this converges in ~3-5 steps;
# the cap only guards against pathological input (NaN).
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_ITERATIONS = 30


def out_of_china(lng: float, lat: float) -> bool:
    """Return True when GCJ-02 applies no shift to this point.

    This is the coarse bounding box used by the reference implementations
    (eviltransform and its ports). Providers use the same box, so matching it
    matters more than matching China's real border: points outside it are
    served unshifted by AMap/Tencent, and so must be left alone here too.
    """
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _gcj02_offset(lng: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 shift (d_lng, d_lat) in degrees at a WGS-84 point.

    No out-of-China check here on purpose: the inverse iteration must see a
    smooth function, not one that jumps to zero at the bounding box edge.
    """
    d_lat = _transform_lat(lng - 105.0, lat - 35.0)
    d_lng = _transform_lng(lng - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    magic = math.sin(rad_lat)
    magic = 1.0 - _KRASOVSKY_EE * magic * magic
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    d_lng = (d_lng * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return d_lng, d_lat


def _wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    d_lng, d_lat = _gcj02_offset(lng, lat)
    return lng + d_lng, lat + d_lat


def _gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    # Fixed-point iteration: find w such that w + offset(w) == g. Starting
    # from g itself, each step corrects by the current residual.
    w_lng, w_lat = lng, lat
    for _ in range(_INVERSE_MAX_ITERATIONS):
        d_lng, d_lat = _gcj02_offset(w_lng, w_lat)
        r_lng = w_lng + d_lng - lng
        r_lat = w_lat + d_lat - lat
        w_lng -= r_lng
        w_lat -= r_lat
        if abs(r_lng) < _INVERSE_TOLERANCE_DEG and abs(r_lat) < _INVERSE_TOLERANCE_DEG:
            break
    return w_lng, w_lat


def _gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _bd09_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    # The standard published inverse. It is approximate (round-trip error
    # ~5e-7 degree, a few centimetres), far below GPS noise, and using the
    # same formula as everyone else keeps our output identical to theirs.
    x = lng - 0.0065
    y = lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta), z * math.sin(theta)


def _check_datum(datum: str) -> None:
    if datum not in DATUMS:
        raise ValueError(f"unknown datum {datum!r}; expected one of {', '.join(DATUMS)}")


def to_wgs84(lng: float, lat: float, datum: Datum) -> tuple[float, float]:
    """Convert a point given in ``datum`` to WGS-84 (lng, lat)."""
    _check_datum(datum)
    if datum == "gcj02":
        return _gcj02_to_wgs84(lng, lat)
    if datum == "bd09":
        return _gcj02_to_wgs84(*_bd09_to_gcj02(lng, lat))
    return lng, lat


def point_in_wgs84(
    lng: float | None, lat: float | None, datum: Datum, field: str
) -> tuple[tuple[float, float] | None, list[dict[str, str]]]:
    """((lng, lat) in WGS-84 or None, problems by field): both or neither given, and still on the globe
    after the datum shift (a point near a pole or the antimeridian can leave it). `field` prefixes the
    problems' field paths ("address" → "address.lat"; "" → "lat")."""
    prefix = f"{field}." if field else ""
    if lat is None and lng is None:
        return None, []
    if lat is None or lng is None:
        missing = prefix + ("lat" if lat is None else "lng")
        return None, [{"field": missing, "message": "give both lat and lng, or neither"}]
    wgs_lng, wgs_lat = to_wgs84(lng, lat, datum)
    if not (-90 <= wgs_lat <= 90 and -180 <= wgs_lng <= 180):
        return None, [
            {"field": prefix + "lat", "message": f"not a point on Earth once converted from {datum}"}
        ]
    return (wgs_lng, wgs_lat), []


def from_wgs84(lng: float, lat: float, datum: Datum) -> tuple[float, float]:
    """Convert a WGS-84 point to ``datum`` (lng, lat)."""
    _check_datum(datum)
    if datum == "gcj02":
        return _wgs84_to_gcj02(lng, lat)
    if datum == "bd09":
        return _gcj02_to_bd09(*_wgs84_to_gcj02(lng, lat))
    return lng, lat


def _fmt_coord(value: float) -> str:
    # Six decimals is ~0.1 m: more precise than any phone, and short URLs.
    return f"{value:.6f}"


def navigation_links(
    lng_wgs84: float, lat_wgs84: float, name: str, *, app: str = "lanshou"
) -> dict[str, str]:
    """Deep links that open the point in the three big Chinese map apps, Apple Maps and whatever app
    the phone hands a ``geo:`` URI to.

    Each provider expects its own datum, so the WGS-84 point is converted
    first: Apple Maps draws China from AutoNavi's data and reads GCJ-02 there
    (as AMap and Tencent do); a ``geo:`` URI is WGS-84 by definition
    (RFC 5870). ``app`` fills Baidu's ``src`` and Tencent's ``referer``
    parameters, which those providers ask callers to identify themselves with.

    Returns a dict with keys ``amap``, ``baidu``, ``tencent``, ``apple`` and ``geo``.
    """
    g_lng, g_lat = from_wgs84(lng_wgs84, lat_wgs84, "gcj02")
    b_lng, b_lat = from_wgs84(lng_wgs84, lat_wgs84, "bd09")
    # safe="" so that characters meaningful inside the query (&, =, ; and :
    # in Tencent's marker=coord:...;title:... mini-syntax) are escaped.
    q_name = quote(name, safe="")
    q_app = quote(app, safe="")
    return {
        "amap": (
            "https://uri.amap.com/marker"
            f"?position={_fmt_coord(g_lng)},{_fmt_coord(g_lat)}"
            f"&name={q_name}&src={q_app}&coordinate=gaode&callnative=1"
        ),
        "baidu": (
            "baidumap://map/marker"
            f"?location={_fmt_coord(b_lat)},{_fmt_coord(b_lng)}"
            f"&title={q_name}&content={q_name}&coord_type=bd09ll&src={q_app}"
        ),
        "tencent": (
            "https://apis.map.qq.com/uri/v1/marker"
            f"?marker=coord:{_fmt_coord(g_lat)},{_fmt_coord(g_lng)};title:{q_name}"
            f"&referer={q_app}"
        ),
        "apple": f"https://maps.apple.com/?ll={_fmt_coord(g_lat)},{_fmt_coord(g_lng)}&q={q_name}",
        # Android's form: a pin at the point, labelled (the label in parentheses after q=lat,lng).
        "geo": (
            f"geo:{_fmt_coord(lat_wgs84)},{_fmt_coord(lng_wgs84)}"
            f"?q={_fmt_coord(lat_wgs84)},{_fmt_coord(lng_wgs84)}({q_name})"
        ),
    }


# ---------------------------------------------------------------------------
# GeoJSON zone validation
# ---------------------------------------------------------------------------

# 7 decimals is ~1 cm: finer than any survey we will receive, and it keeps
# stored GeoJSON free of float noise introduced by the datum conversion.
_GEOJSON_DECIMALS = 7

# Listing every bad vertex of a 500-vertex ring helps nobody; after this many
# in one ring we summarise the rest in a single error.
_MAX_POSITION_ERRORS_PER_RING = 5

# The columns' sizes (PostgreSQL refuses longer text; SQLite would keep it).
MAX_CODE_LENGTH = 64
MAX_NAME_LENGTH = 128
MAX_PRIORITY = 1_000_000
_CORE_PROPERTIES = frozenset({"code", "name", "priority", "admin_areas", "station"})
_SUPPORTED_GEOMETRIES = ("Polygon", "MultiPolygon")
_VALIDITY_POINT = re.compile(r"^(?P<reason>.*?)\s*\[(?P<x>\S+) (?P<y>\S+)\]$")


@dataclass(frozen=True, slots=True)
class GeoError:
    """One problem in a zone FeatureCollection.

    ``index`` is the position in ``features`` (None for collection-level
    problems); ``field`` is a JSON path such as
    ``features[3].geometry.coordinates[0]``.
    """

    index: int | None
    field: str
    message: str


class GeoJSONError(ValueError):
    """Invalid zone GeoJSON; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[GeoError]) -> None:
        self.errors: list[GeoError] = list(errors)
        shown = "; ".join(f"{e.field}: {e.message}" for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"{len(self.errors)} GeoJSON error(s): {shown}{more}")


@dataclass(frozen=True, slots=True)
class ZoneFeature:
    """A validated zone, with geometry in WGS-84.

    ``geometry`` is None for zones defined only by ``admin_areas``.
    ``geojson`` is the same geometry as a GeoJSON dict (coordinates rounded to
    7 decimals, exterior rings counter-clockwise per RFC 7946); ``geometry``
    is built from exactly those rounded coordinates, so the two agree.
    """

    code: str
    name: str
    priority: int = 0
    admin_areas: tuple[str, ...] = ()
    station: str | None = None
    geometry: BaseGeometry | None = None
    geojson: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Collector:
    """Accumulates errors for one feature (or the collection)."""

    def __init__(self, index: int | None, errors: list[GeoError]) -> None:
        self.index = index
        self.errors = errors
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.count += 1
        self.errors.append(GeoError(self.index, path, message))


def _is_number(value: object) -> bool:
    # bool is an int subclass in Python, but `true` is not a coordinate.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt_num(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".")


def _in_china(lng: float, lat: float) -> bool:
    return not out_of_china(lng, lat)


def _position_problem(lng: float, lat: float) -> str | None:
    """Explain why [lng, lat] is not acceptable, or return None."""
    shown = f"[{_fmt_num(lng)}, {_fmt_num(lat)}]"
    # Lanshou serves China, where a [lat, lng] mix-up is the most common
    # mistake (Chinese map tools and spreadsheets write "lat,lng"). Say so
    # explicitly rather than only complaining about the range.
    looks_swapped = _in_china(lat, lng) and not _in_china(lng, lat)
    hint = (
        "; it looks like [latitude, longitude] - GeoJSON positions are [longitude, latitude]"
        if looks_swapped
        else ""
    )
    if not -180.0 <= lng <= 180.0:
        return f"position {shown}: longitude {_fmt_num(lng)} is outside [-180, 180]{hint}"
    if not -90.0 <= lat <= 90.0:
        return f"position {shown}: latitude {_fmt_num(lat)} is outside [-90, 90]{hint}"
    if looks_swapped:
        # In range, but swapping puts it in China and as given it is not
        # (e.g. [45.2, 80.1] lands in the Arctic instead of Xinjiang).
        return f"position {shown} is outside China{hint}"
    return None


def _parse_ring(ring: object, path: str, errs: _Collector) -> list[tuple[float, float]] | None:
    """Validate one linear ring; return its (lng, lat) pairs as given."""
    if not isinstance(ring, list):
        errs.add(path, "a linear ring must be an array of positions")
        return None
    ok = True
    bad_positions = 0
    raw: list[tuple[float, float]] = []
    for k, pos in enumerate(ring):
        problem: str | None
        if (
            not isinstance(pos, list)
            or len(pos) not in (2, 3)  # a third value (altitude) is allowed by RFC 7946
            or not all(_is_number(v) for v in pos)
        ):
            problem = "a position must be [longitude, latitude] numbers"
        else:
            lng, lat = float(pos[0]), float(pos[1])
            problem = _position_problem(lng, lat)
            raw.append((lng, lat))
        if problem is not None:
            ok = False
            bad_positions += 1
            if bad_positions <= _MAX_POSITION_ERRORS_PER_RING:
                errs.add(f"{path}[{k}]", problem)
    if bad_positions > _MAX_POSITION_ERRORS_PER_RING:
        errs.add(
            path,
            f"{bad_positions - _MAX_POSITION_ERRORS_PER_RING} more invalid positions "
            "in this ring are not listed",
        )
    if len(ring) < 4:
        errs.add(
            path,
            f"a linear ring needs at least 4 positions (first repeated as last), got {len(ring)}",
        )
        ok = False
    elif ok and raw[0] != raw[-1]:
        errs.add(
            path,
            "linear ring is not closed: the first and last positions must be identical "
            f"(first [{_fmt_num(raw[0][0])}, {_fmt_num(raw[0][1])}], "
            f"last [{_fmt_num(raw[-1][0])}, {_fmt_num(raw[-1][1])}])",
        )
        ok = False
    if not ok:
        return None
    return raw


def _explain_invalid(geom: BaseGeometry) -> str:
    """Turn GEOS' "Self-intersection[112.99 28.2]" into readable English."""
    reason = str(explain_validity(geom))
    m = _VALIDITY_POINT.match(reason)
    if m is None:
        return reason
    try:
        x, y = float(m["x"]), float(m["y"])
    except ValueError:
        return reason
    return f"{m['reason']} at or near point {_fmt_num(x)} {_fmt_num(y)}"


def _convert_ring(ring: list[tuple[float, float]], datum: Datum) -> list[tuple[float, float]]:
    out = []
    for lng, lat in ring:
        w_lng, w_lat = to_wgs84(lng, lat, datum)
        out.append((round(w_lng, _GEOJSON_DECIMALS), round(w_lat, _GEOJSON_DECIMALS)))
    return out


def _parse_polygon(
    coords: object, path: str, datum: Datum, errs: _Collector
) -> tuple[Polygon, Polygon] | None:
    """Validate one polygon; return it as given and converted to rounded WGS-84."""
    if not isinstance(coords, list):
        errs.add(path, "polygon coordinates must be an array of linear rings")
        return None
    if not coords:
        errs.add(path, "a polygon needs at least one linear ring (its exterior)")
        return None
    rings = [_parse_ring(ring, f"{path}[{r}]", errs) for r, ring in enumerate(coords)]
    if any(ring is None for ring in rings):
        return None
    clean = [ring for ring in rings if ring is not None]
    # Check validity in the caller's own datum so that the point quoted in
    # e.g. "Self-intersection at or near point ..." is one they can find in
    # their file, not a WGS-84 point a few hundred metres away.
    given = Polygon(clean[0], clean[1:])
    if not given.is_valid:
        errs.add(path, f"invalid polygon: {_explain_invalid(given)}")
        return None
    converted = Polygon(_convert_ring(clean[0], datum), [_convert_ring(h, datum) for h in clean[1:]])
    if not converted.is_valid:
        # Conversion plus rounding to 7 decimals can, in theory, make nearly
        # touching edges cross; report it rather than store an invalid shape.
        errs.add(path, f"polygon becomes invalid in WGS-84: {_explain_invalid(converted)}")
        return None
    return given, converted


def _parse_geometry(
    geometry: object, path: str, datum: Datum, errs: _Collector
) -> Polygon | MultiPolygon | None:
    """Validate a geometry object; return it in WGS-84."""
    if not isinstance(geometry, dict):
        errs.add(path, "geometry must be a GeoJSON geometry object or null")
        return None
    gtype = geometry.get("type")
    if gtype not in _SUPPORTED_GEOMETRIES:
        errs.add(
            f"{path}.type",
            f"unsupported geometry type {gtype!r}; a zone must be a Polygon or MultiPolygon",
        )
        return None
    coords = geometry.get("coordinates")
    cpath = f"{path}.coordinates"
    if gtype == "Polygon":
        pair = _parse_polygon(coords, cpath, datum, errs)
        return None if pair is None else pair[1]
    if not isinstance(coords, list):
        errs.add(cpath, "MultiPolygon coordinates must be an array of polygons")
        return None
    if not coords:
        errs.add(cpath, "a MultiPolygon needs at least one polygon")
        return None
    parsed = [_parse_polygon(c, f"{cpath}[{p}]", datum, errs) for p, c in enumerate(coords)]
    pairs = [pair for pair in parsed if pair is not None]
    if len(pairs) != len(parsed):
        return None
    # Each part is valid on its own; the whole can still be invalid when
    # parts overlap or share an edge. Checked as given, for the same reason
    # as in _parse_polygon, then again after conversion.
    for label, multi in (
        ("invalid MultiPolygon", MultiPolygon([given for given, _ in pairs])),
        ("MultiPolygon becomes invalid in WGS-84", MultiPolygon([conv for _, conv in pairs])),
    ):
        if not multi.is_valid:
            errs.add(cpath, f"{label}: {_explain_invalid(multi)}")
            return None
    return multi


def _normalise(geom: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    # RFC 7946 says exterior rings are counter-clockwise and holes clockwise.
    # GIS tools disagree on this, so accept either and store the RFC's form.
    if isinstance(geom, Polygon):
        return orient(geom, sign=1.0)
    return MultiPolygon([orient(p, sign=1.0) for p in geom.geoms])


def _geojson_dict(geom: Polygon | MultiPolygon) -> dict[str, Any]:
    def ring(coords: Iterable[Sequence[float]]) -> list[list[float]]:
        return [[float(c[0]), float(c[1])] for c in coords]

    def poly(p: Polygon) -> list[list[list[float]]]:
        return [ring(p.exterior.coords), *(ring(h.coords) for h in p.interiors)]

    if isinstance(geom, Polygon):
        return {"type": "Polygon", "coordinates": poly(geom)}
    return {"type": "MultiPolygon", "coordinates": [poly(p) for p in geom.geoms]}


def _parse_properties(
    props: object, path: str, errs: _Collector
) -> tuple[str | None, str | None, int, tuple[str, ...], str | None, dict[str, Any]]:
    if props is None:
        props = {}
    if not isinstance(props, dict):
        errs.add(path, "properties must be an object")
        props = {}

    code = props.get("code")
    if code is None:
        errs.add(f"{path}.code", "code is required")
    elif not isinstance(code, str) or not code.strip():
        errs.add(f"{path}.code", "code must be a non-empty string")
        code = None
    elif problem := text_problem(code, MAX_CODE_LENGTH):
        errs.add(f"{path}.code", f"code {problem}")
        code = None
    else:
        code = code.strip()

    name = props.get("name")
    if name is None:
        errs.add(f"{path}.name", "name is required")
    elif not isinstance(name, str):
        errs.add(f"{path}.name", "name must be a string")
        name = None
    elif problem := text_problem(name, MAX_NAME_LENGTH, required=False):
        errs.add(f"{path}.name", f"name {problem}")
        name = None

    priority = props.get("priority", 0)
    if priority is None:
        priority = 0
    elif (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not -MAX_PRIORITY <= priority <= MAX_PRIORITY
    ):
        errs.add(f"{path}.priority", f"priority must be an integer from -{MAX_PRIORITY} to {MAX_PRIORITY}")
        priority = 0

    admin_raw = props.get("admin_areas")
    admin_areas: list[str] = []
    if admin_raw is not None:
        if not isinstance(admin_raw, list):
            errs.add(f"{path}.admin_areas", "admin_areas must be an array of strings")
        else:
            for j, area in enumerate(admin_raw):
                if not isinstance(area, str) or not area.strip():
                    errs.add(f"{path}.admin_areas[{j}]", "an admin area must be a non-empty string")
                elif problem := text_problem(area, MAX_NAME_LENGTH):
                    errs.add(f"{path}.admin_areas[{j}]", f"an admin area {problem}")
                else:
                    # Matching strips whitespace, so store the stripped form.
                    admin_areas.append(area.strip())

    station = props.get("station")
    if station is not None and not isinstance(station, str):
        errs.add(f"{path}.station", "station must be a string code")
        station = None
    elif station is not None and (problem := text_problem(station, MAX_CODE_LENGTH)):
        errs.add(f"{path}.station", f"station {problem}")
        station = None

    extra = {k: v for k, v in props.items() if k not in _CORE_PROPERTIES}
    return code, name, priority, tuple(admin_areas), station, extra


def parse_area_geometry(
    geometry: object, datum: Datum, path: str
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """One Polygon or MultiPolygon checked as a zone's is (stop-ship areas use it): its GeoJSON in
    WGS-84, normalised like a zone's, or None and every problem as {"field", "message"}."""
    _check_datum(datum)
    errors: list[GeoError] = []
    geom = _parse_geometry(geometry, path, datum, _Collector(None, errors))
    if errors or geom is None:
        return None, [{"field": e.field, "message": e.message} for e in errors]
    return _geojson_dict(_normalise(geom)), []


def parse_zone_collection(obj: object, datum: Datum = "wgs84") -> list[ZoneFeature]:
    """Validate a decoded GeoJSON FeatureCollection of zones.

    Coordinates are read in ``datum`` and returned in WGS-84. Raises
    :class:`GeoJSONError` listing all problems across all features.
    """
    _check_datum(datum)
    errors: list[GeoError] = []
    top = _Collector(None, errors)
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        top.add("type", "expected a GeoJSON FeatureCollection")
        raise GeoJSONError(errors)
    features = obj.get("features")
    if not isinstance(features, list):
        top.add("features", "a FeatureCollection needs a 'features' array")
        raise GeoJSONError(errors)

    zones: list[ZoneFeature] = []
    first_index_of_code: dict[str, int] = {}
    for i, feature in enumerate(features):
        path = f"features[{i}]"
        errs = _Collector(i, errors)
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            errs.add(path, "expected a GeoJSON Feature")
            continue
        code, name, priority, admin_areas, station, extra = _parse_properties(
            feature.get("properties"), f"{path}.properties", errs
        )
        if code is not None:
            if code in first_index_of_code:
                errs.add(
                    f"{path}.properties.code",
                    f"duplicate code {code!r}: already used by features[{first_index_of_code[code]}]",
                )
            else:
                first_index_of_code[code] = i

        # A missing "geometry" member is treated like null: both mean the
        # zone has no shape of its own.
        raw_geometry = feature.get("geometry")
        geom: Polygon | MultiPolygon | None = None
        if raw_geometry is None:
            if not admin_areas:
                errs.add(
                    f"{path}.geometry",
                    "geometry is null; a zone without a polygon needs a non-empty "
                    "properties.admin_areas list",
                )
        else:
            geom = _parse_geometry(raw_geometry, f"{path}.geometry", datum, errs)

        if errs.count or code is None or name is None:
            continue
        geom = _normalise(geom) if geom is not None else None
        zones.append(
            ZoneFeature(
                code=code,
                name=name,
                priority=priority,
                admin_areas=admin_areas,
                station=station,
                geometry=geom,
                geojson=_geojson_dict(geom) if geom is not None else None,
                extra=extra,
            )
        )
    if errors:
        raise GeoJSONError(errors)
    return zones


class ZoneLike(Protocol):
    """What :func:`to_feature_collection` needs from a zone.

    ``station`` and ``extra`` (a dict of further properties) are exported too
    when the object has them.
    """

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def admin_areas(self) -> Sequence[str]: ...
    @property
    def geojson(self) -> Mapping[str, Any] | None: ...


def to_feature_collection(zones: Iterable[ZoneLike]) -> dict[str, Any]:
    """Export zones (WGS-84) as a GeoJSON FeatureCollection dict.

    The inverse of :func:`parse_zone_collection` with ``datum="wgs84"``.
    """
    features: list[dict[str, Any]] = []
    for zone in zones:
        extra = getattr(zone, "extra", None)
        # Extras first so that a stray "code" in them can never override the
        # real one.
        props: dict[str, Any] = dict(copy.deepcopy(extra)) if isinstance(extra, Mapping) else {}
        props.update(
            code=zone.code,
            name=zone.name,
            priority=zone.priority,
            admin_areas=list(zone.admin_areas),
        )
        station = getattr(zone, "station", None)
        if station is not None:
            props["station"] = station
        features.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": copy.deepcopy(dict(zone.geojson)) if zone.geojson is not None else None,
            }
        )
    return {"type": "FeatureCollection", "features": features}


# ---------------------------------------------------------------------------
# Zone index
# ---------------------------------------------------------------------------


class IndexedZone(NamedTuple):
    """A zone as the index sees it: ``geometry`` in WGS-84, or None."""

    id: int
    priority: int
    geometry: BaseGeometry | None
    admin_areas: Sequence[str] = ()


class ZoneIndex:
    """Immutable point/admin-area -> zone id lookup.

    Build a new one whenever zones change; construction is cheap (an R-tree
    bulk load plus a dict), and immutability means a dispatcher can swap the
    reference atomically while other requests keep using the old one.
    """

    __slots__ = ("_admin", "_count", "_geoms", "_keys", "_tree")

    def __init__(self, zones: Iterable[IndexedZone]) -> None:
        seen: set[int] = set()
        geoms: list[BaseGeometry] = []
        keys: list[tuple[int, float, int]] = []
        by_name: dict[str, tuple[int, int]] = {}  # name -> (-priority, id)
        for zone in zones:
            if zone.id in seen:
                raise ValueError(f"duplicate zone id {zone.id}")
            seen.add(zone.id)
            if zone.geometry is not None and not zone.geometry.is_empty:
                geoms.append(zone.geometry)
                # Area in square degrees is fine as a tie-breaker: zones that
                # overlap are at the same latitude, so the distortion is the
                # same for both.
                keys.append((-zone.priority, float(zone.geometry.area), zone.id))
            if isinstance(zone.admin_areas, str):
                # A bare string is a Sequence[str] too, and would silently
                # index every single character as an admin area.
                raise TypeError(f"zone {zone.id}: admin_areas must be a sequence of names, not a string")
            for raw_name in zone.admin_areas:
                name = raw_name.strip()
                if not name:
                    continue
                candidate = (-zone.priority, zone.id)
                best = by_name.get(name)
                if best is None or candidate < best:
                    by_name[name] = candidate
        self._count = len(seen)
        self._geoms = geoms
        # Sort key per tree index: higher priority, then smaller area, then
        # lower id wins, i.e. the minimum tuple.
        self._keys = keys
        self._admin = {name: zid for name, (_, zid) in by_name.items()}
        self._tree = shapely.STRtree(geoms)
        # Preparing the polygons makes each point-in-polygon test roughly
        # O(log n) in vertices instead of O(n), which matters for real zone
        # outlines with thousands of vertices.
        shapely.prepare(geoms)

    def __len__(self) -> int:
        return self._count

    def match_point(self, lng: float, lat: float) -> int | None:
        """Zone id whose polygon covers the WGS-84 point, or None."""
        point = shapely.Point(lng, lat)
        # The tree only filters by bounding box; the exact test then runs on
        # the prepared polygons. "covers" (not "contains") so that a point
        # exactly on a boundary still matches a zone.
        candidates = self._tree.query(point)
        best: tuple[int, float, int] | None = None
        for idx in candidates.tolist():
            if shapely.covers(self._geoms[idx], point):
                key = self._keys[idx]
                if best is None or key < best:
                    best = key
        return None if best is None else best[2]

    def match_admin_area(self, *names: str) -> int | None:
        """Zone id for the first of ``names`` (e.g. street, then district) some zone lists."""
        for raw in names:
            name = raw.strip()
            if name and name in self._admin:
                return self._admin[name]
        return None

    def match(self, lng: float | None, lat: float | None, names: Iterable[str] = ()) -> int | None:
        """Try the point (if any) first, then the admin-area names."""
        if lng is not None and lat is not None:
            zone_id = self.match_point(lng, lat)
            if zone_id is not None:
                return zone_id
        return self.match_admin_area(*names)
