"""Unit tests for server.domain.geo: datums, zone GeoJSON validation, zone index."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import shapely
from shapely.geometry import Polygon, box

from server.domain.geo import (
    GeoError,
    GeoJSONError,
    IndexedZone,
    ZoneFeature,
    ZoneIndex,
    from_wgs84,
    navigation_links,
    out_of_china,
    parse_zone_collection,
    to_feature_collection,
    to_wgs84,
)

# Changsha, Hunan: the reference point used throughout.
CS_LNG, CS_LAT = 112.9834, 28.1946


def metres(d_lng: float, d_lat: float, lat: float) -> float:
    """Rough ground distance of a small degree offset (equirectangular)."""
    return math.hypot(d_lng * 111_320 * math.cos(math.radians(lat)), d_lat * 110_574)


def square(lng: float, lat: float, size: float) -> list[list[float]]:
    """A closed counter-clockwise square ring with its south-west corner at (lng, lat)."""
    return [
        [lng, lat],
        [lng + size, lat],
        [lng + size, lat + size],
        [lng, lat + size],
        [lng, lat],
    ]


def feature(
    code: str | None = "Z1",
    name: str | None = "Zone 1",
    geometry: Any = "default",
    **props: Any,
) -> dict[str, Any]:
    properties: dict[str, Any] = dict(props)
    if code is not None:
        properties["code"] = code
    if name is not None:
        properties["name"] = name
    if geometry == "default":
        geometry = {"type": "Polygon", "coordinates": [square(CS_LNG, CS_LAT, 0.01)]}
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def collection(*features: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def polygon(*rings: list[list[Any]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def errors_of(obj: object, datum: Any = "wgs84") -> list[GeoError]:
    with pytest.raises(GeoJSONError) as info:
        parse_zone_collection(obj, datum)
    return info.value.errors


# ---------------------------------------------------------------------------
# Datums
# ---------------------------------------------------------------------------


def test_gcj02_shifts_changsha_a_few_hundred_metres_south_east() -> None:
    g_lng, g_lat = from_wgs84(CS_LNG, CS_LAT, "gcj02")
    d_lng, d_lat = g_lng - CS_LNG, g_lat - CS_LAT
    # Known behaviour of GCJ-02 around Changsha: ~0.0056 deg east, ~0.0034 deg south.
    assert d_lng == pytest.approx(0.00558, abs=2e-4)
    assert d_lat == pytest.approx(-0.00340, abs=2e-4)
    assert 300 < metres(d_lng, d_lat, CS_LAT) < 900


def test_bd09_is_further_shifted_than_gcj02() -> None:
    g = from_wgs84(CS_LNG, CS_LAT, "gcj02")
    b = from_wgs84(CS_LNG, CS_LAT, "bd09")
    # BD-09 adds roughly +0.0065/+0.006 on top of GCJ-02.
    assert b[0] - g[0] == pytest.approx(0.0065, abs=1e-3)
    assert b[1] - g[1] == pytest.approx(0.0057, abs=1e-3)


@pytest.mark.parametrize("datum", ["gcj02", "bd09"])
@pytest.mark.parametrize(
    ("lng", "lat"),
    [
        (CS_LNG, CS_LAT),  # Changsha
        (116.3975, 39.9087),  # Beijing
        (121.4737, 31.2304),  # Shanghai
        (87.6168, 43.8256),  # Urumqi
        (126.6424, 45.7567),  # Harbin
        (109.5119, 18.2528),  # Sanya
    ],
)
def test_datum_round_trip_error_below_1e_5_degree(datum: Any, lng: float, lat: float) -> None:
    shifted = from_wgs84(lng, lat, datum)
    assert shifted != (lng, lat)
    back = to_wgs84(*shifted, datum)
    assert abs(back[0] - lng) < 1e-5
    assert abs(back[1] - lat) < 1e-5


def test_gcj02_inverse_iterates_below_1e_6_degree() -> None:
    back = to_wgs84(*from_wgs84(CS_LNG, CS_LAT, "gcj02"), "gcj02")
    assert abs(back[0] - CS_LNG) < 1e-8
    assert abs(back[1] - CS_LAT) < 1e-8


def test_points_outside_china_are_not_shifted_by_gcj02() -> None:
    paris = (2.3522, 48.8566)
    assert out_of_china(*paris)
    assert from_wgs84(*paris, "gcj02") == paris
    assert to_wgs84(*paris, "gcj02") == paris
    assert not out_of_china(CS_LNG, CS_LAT)


def test_wgs84_datum_is_identity() -> None:
    assert to_wgs84(CS_LNG, CS_LAT, "wgs84") == (CS_LNG, CS_LAT)
    assert from_wgs84(CS_LNG, CS_LAT, "wgs84") == (CS_LNG, CS_LAT)


def test_unknown_datum_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown datum"):
        to_wgs84(CS_LNG, CS_LAT, "cgcs2000")  # type: ignore[arg-type]


def test_navigation_links_use_each_providers_datum_and_encode_the_name() -> None:
    name = "五一广场 A&B;c:d=e"
    links = navigation_links(CS_LNG, CS_LAT, name)
    g_lng, g_lat = from_wgs84(CS_LNG, CS_LAT, "gcj02")
    b_lng, b_lat = from_wgs84(CS_LNG, CS_LAT, "bd09")

    amap = urlsplit(links["amap"])
    assert (amap.scheme, amap.netloc, amap.path) == ("https", "uri.amap.com", "/marker")
    q = parse_qs(amap.query)
    lng_s, lat_s = q["position"][0].split(",")
    assert float(lng_s) == pytest.approx(g_lng, abs=1e-6)
    assert float(lat_s) == pytest.approx(g_lat, abs=1e-6)
    assert q["name"] == [name]
    assert q["coordinate"] == ["gaode"]

    baidu = urlsplit(links["baidu"])
    assert (baidu.scheme, baidu.netloc, baidu.path) == ("baidumap", "map", "/marker")
    q = parse_qs(baidu.query)
    lat_s, lng_s = q["location"][0].split(",")
    assert float(lng_s) == pytest.approx(b_lng, abs=1e-6)
    assert float(lat_s) == pytest.approx(b_lat, abs=1e-6)
    assert q["title"] == [name]
    assert q["coord_type"] == ["bd09ll"]

    tencent = urlsplit(links["tencent"])
    assert (tencent.netloc, tencent.path) == ("apis.map.qq.com", "/uri/v1/marker")
    marker = parse_qs(tencent.query)["marker"][0]
    coord, title = marker.split(";", 1)
    lat_s, lng_s = coord.removeprefix("coord:").split(",")
    assert float(lng_s) == pytest.approx(g_lng, abs=1e-6)
    assert float(lat_s) == pytest.approx(g_lat, abs=1e-6)
    assert title == f"title:{name}"
    # The name's own ; and : are escaped, so they cannot break Tencent's mini-syntax.
    assert "%3B" in links["tencent"] and "%3A" in links["tencent"]
    assert links["tencent"].count(";") == 1
    assert unquote(links["tencent"]).count(";") == 2


# ---------------------------------------------------------------------------
# GeoJSON validation: each error kind, with its index and field
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [None, [], "FeatureCollection", {"type": "Feature"}, {"features": []}],
)
def test_rejects_anything_but_a_feature_collection(obj: object) -> None:
    assert errors_of(obj) == [GeoError(None, "type", "expected a GeoJSON FeatureCollection")]


def test_rejects_feature_collection_without_features_array() -> None:
    [error] = errors_of({"type": "FeatureCollection", "features": {}})
    assert (error.index, error.field) == (None, "features")


def test_rejects_item_that_is_not_a_feature() -> None:
    [error] = errors_of(collection(feature(), {"type": "Polygon"}))
    assert (error.index, error.field) == (1, "features[1]")
    assert "Feature" in error.message


@pytest.mark.parametrize("gtype", ["Point", "LineString", "GeometryCollection", None])
def test_rejects_unsupported_geometry_type(gtype: Any) -> None:
    [error] = errors_of(collection(feature(geometry={"type": gtype, "coordinates": [CS_LNG, CS_LAT]})))
    assert (error.index, error.field) == (0, "features[0].geometry.type")
    assert "Polygon or MultiPolygon" in error.message


def test_rejects_ring_with_fewer_than_4_positions() -> None:
    ring = [[CS_LNG, CS_LAT], [CS_LNG + 0.01, CS_LAT], [CS_LNG, CS_LAT]]
    [error] = errors_of(collection(feature(geometry=polygon(ring))))
    assert (error.index, error.field) == (0, "features[0].geometry.coordinates[0]")
    assert "at least 4 positions" in error.message


def test_rejects_ring_that_is_not_closed() -> None:
    ring = [*square(CS_LNG, CS_LAT, 0.01)[:-1], [CS_LNG + 0.0001, CS_LAT]]
    [error] = errors_of(collection(feature(geometry=polygon(ring))))
    assert (error.index, error.field) == (0, "features[0].geometry.coordinates[0]")
    assert "not closed" in error.message


@pytest.mark.parametrize(
    "bad", [["112.99", 28.2], [112.99], [112.99, 28.2, 1.0, 2.0], [True, 28.2], None, [float("nan"), 28.2]]
)
def test_rejects_position_that_is_not_lng_lat_numbers(bad: Any) -> None:
    ring = square(CS_LNG, CS_LAT, 0.01)
    ring[2] = bad
    [error] = errors_of(collection(feature(geometry=polygon(ring))))
    assert (error.index, error.field) == (0, "features[0].geometry.coordinates[0][2]")
    assert "[longitude, latitude] numbers" in error.message


def test_accepts_position_with_altitude_and_drops_it() -> None:
    ring = [[*p, 50.0] for p in square(CS_LNG, CS_LAT, 0.01)]
    [zone] = parse_zone_collection(collection(feature(geometry=polygon(ring))))
    assert zone.geojson is not None
    assert all(len(p) == 2 for p in zone.geojson["coordinates"][0])


def test_rejects_longitude_and_latitude_out_of_range() -> None:
    ring = square(CS_LNG, CS_LAT, 0.01)
    ring[1] = [190.0, CS_LAT]
    ring[2] = [-170.0, -95.0]
    errors = errors_of(collection(feature(geometry=polygon(ring))))
    assert [(e.index, e.field) for e in errors] == [
        (0, "features[0].geometry.coordinates[0][1]"),
        (0, "features[0].geometry.coordinates[0][2]"),
    ]
    assert "longitude 190 is outside [-180, 180]" in errors[0].message
    assert "latitude -95 is outside [-90, 90]" in errors[1].message


def test_swapped_lat_lng_is_explained() -> None:
    swapped = [[lat, lng] for lng, lat in square(CS_LNG, CS_LAT, 0.01)]
    errors = errors_of(collection(feature(geometry=polygon(swapped))))
    assert len(errors) == 5
    first = errors[0]
    assert (first.index, first.field) == (0, "features[0].geometry.coordinates[0][0]")
    assert "latitude 112.9834 is outside [-90, 90]" in first.message
    assert "looks like [latitude, longitude]" in first.message


def test_swapped_lat_lng_is_explained_even_when_in_range() -> None:
    # Xinjiang (lng 80.1, lat 45.2) written as [lat, lng] lands in the Arctic.
    swapped = [[lat, lng] for lng, lat in square(80.1, 45.2, 0.01)]
    errors = errors_of(collection(feature(geometry=polygon(swapped))))
    assert errors[0].field == "features[0].geometry.coordinates[0][0]"
    assert "looks like [latitude, longitude]" in errors[0].message


def test_many_bad_positions_in_one_ring_are_summarised() -> None:
    ring = [[lat, lng] for lng, lat in Polygon.from_bounds(112.9, 28.1, 113.0, 28.2).exterior.coords]
    ring = ring[:-1] * 3 + [ring[0]]  # 13 positions, all swapped (shape does not matter here)
    errors = errors_of(collection(feature(geometry=polygon(ring))))
    assert len(errors) == 6
    assert errors[-1].field == "features[0].geometry.coordinates[0]"
    assert "8 more invalid positions" in errors[-1].message


def test_rejects_self_intersecting_polygon_with_the_point() -> None:
    bowtie = [[112.98, 28.19], [113.00, 28.21], [113.00, 28.19], [112.98, 28.21], [112.98, 28.19]]
    [error] = errors_of(collection(feature(geometry=polygon(bowtie))))
    assert (error.index, error.field) == (0, "features[0].geometry.coordinates")
    assert error.message == "invalid polygon: Self-intersection at or near point 112.99 28.2"


def test_self_intersection_point_is_reported_in_the_callers_datum() -> None:
    bowtie = [[112.98, 28.19], [113.00, 28.21], [113.00, 28.19], [112.98, 28.21], [112.98, 28.19]]
    [error] = errors_of(collection(feature(geometry=polygon(bowtie))), datum="gcj02")
    assert error.message.endswith("at or near point 112.99 28.2")


def test_rejects_hole_outside_shell() -> None:
    geometry = polygon(square(CS_LNG, CS_LAT, 0.01), square(CS_LNG + 0.1, CS_LAT, 0.001))
    [error] = errors_of(collection(feature(geometry=geometry)))
    assert error.field == "features[0].geometry.coordinates"
    assert "Hole lies outside shell" in error.message


def test_rejects_multipolygon_with_overlapping_parts() -> None:
    geometry = {
        "type": "MultiPolygon",
        "coordinates": [[square(CS_LNG, CS_LAT, 0.01)], [square(CS_LNG + 0.005, CS_LAT, 0.01)]],
    }
    [error] = errors_of(collection(feature(geometry=geometry)))
    assert (error.index, error.field) == (0, "features[0].geometry.coordinates")
    assert "invalid MultiPolygon" in error.message


def test_multipolygon_part_errors_point_into_the_part() -> None:
    bad_ring = square(CS_LNG + 0.1, CS_LAT, 0.01)[:3]
    geometry = {"type": "MultiPolygon", "coordinates": [[square(CS_LNG, CS_LAT, 0.01)], [bad_ring]]}
    [error] = errors_of(collection(feature(geometry=geometry)))
    assert error.field == "features[0].geometry.coordinates[1][0]"


def test_rejects_duplicate_code() -> None:
    errors = errors_of(collection(feature("A"), feature("B"), feature("A")))
    assert [(e.index, e.field) for e in errors] == [(2, "features[2].properties.code")]
    assert "duplicate code 'A'" in errors[0].message
    assert "features[0]" in errors[0].message


def test_rejects_missing_code_and_name() -> None:
    errors = errors_of(collection(feature(code=None, name=None)))
    assert [(e.index, e.field, e.message) for e in errors] == [
        (0, "features[0].properties.code", "code is required"),
        (0, "features[0].properties.name", "name is required"),
    ]


@pytest.mark.parametrize("code", ["", "   ", 12])
def test_rejects_blank_or_non_string_code(code: Any) -> None:
    [error] = errors_of(collection(feature(code=code)))
    assert error.field == "features[0].properties.code"
    assert "non-empty string" in error.message


@pytest.mark.parametrize(("key", "value"), [("priority", "1"), ("priority", True), ("priority", 1.5)])
def test_rejects_non_integer_priority(key: str, value: Any) -> None:
    [error] = errors_of(collection(feature(**{key: value})))
    assert error.field == "features[0].properties.priority"


def test_rejects_bad_admin_areas_and_station() -> None:
    errors = errors_of(collection(feature(admin_areas=["岳麓区", " ", 3], station=7)))
    assert [e.field for e in errors] == [
        "features[0].properties.admin_areas[1]",
        "features[0].properties.admin_areas[2]",
        "features[0].properties.station",
    ]


def test_rejects_null_geometry_without_admin_areas() -> None:
    [error] = errors_of(collection(feature(geometry=None)))
    assert (error.index, error.field) == (0, "features[0].geometry")
    assert "admin_areas" in error.message


def test_accepts_null_geometry_with_admin_areas() -> None:
    [zone] = parse_zone_collection(collection(feature(geometry=None, admin_areas=[" 岳麓街道 ", "岳麓区"])))
    assert zone.geometry is None and zone.geojson is None
    assert zone.admin_areas == ("岳麓街道", "岳麓区")


def test_errors_are_collected_across_all_features() -> None:
    bowtie = [[112.98, 28.19], [113.00, 28.21], [113.00, 28.19], [112.98, 28.21], [112.98, 28.19]]
    obj = collection(
        feature("OK1"),
        feature("BAD1", geometry={"type": "Point", "coordinates": [CS_LNG, CS_LAT]}),
        feature("OK2"),
        "not a feature",
        feature("BAD3", name=None, geometry=polygon(bowtie)),
        feature("OK1"),
    )
    errors = errors_of(obj)
    assert [(e.index, e.field) for e in errors] == [
        (1, "features[1].geometry.type"),
        (3, "features[3]"),
        (4, "features[4].properties.name"),
        (4, "features[4].geometry.coordinates"),
        (5, "features[5].properties.code"),
    ]
    assert "5 GeoJSON error(s)" in str(GeoJSONError(errors))


def test_parse_keeps_extra_properties_and_applies_defaults() -> None:
    [zone] = parse_zone_collection(collection(feature("Z9", "Yuelu", colour="#f00", notes={"a": 1})))
    assert zone.code == "Z9" and zone.name == "Yuelu"
    assert zone.priority == 0 and zone.admin_areas == () and zone.station is None
    assert zone.extra == {"colour": "#f00", "notes": {"a": 1}}
    assert isinstance(zone, ZoneFeature)


def test_parse_stores_rfc7946_ring_orientation() -> None:
    clockwise = list(reversed(square(CS_LNG, CS_LAT, 0.01)))
    hole_ccw = square(CS_LNG + 0.004, CS_LAT + 0.004, 0.002)
    [zone] = parse_zone_collection(collection(feature(geometry=polygon(clockwise, hole_ccw))))
    assert zone.geojson is not None
    shell, hole = zone.geojson["coordinates"]
    assert shapely.LinearRing(shell).is_ccw
    assert not shapely.LinearRing(hole).is_ccw


# ---------------------------------------------------------------------------
# Datum conversion of zones
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("datum", ["gcj02", "bd09"])
def test_zone_in_provider_datum_is_stored_in_wgs84_and_matches_provider_points(datum: Any) -> None:
    # A 1 km square drawn on the provider's map, around what that map shows as Changsha.
    p_lng, p_lat = from_wgs84(CS_LNG, CS_LAT, datum)
    ring = square(round(p_lng - 0.005, 6), round(p_lat - 0.005, 6), 0.01)
    [zone] = parse_zone_collection(collection(feature(geometry=polygon(ring))), datum=datum)
    assert zone.geometry is not None and zone.geojson is not None

    # Stored shape is the provider shape moved back by the datum offset, vertex by vertex.
    stored = zone.geojson["coordinates"][0]
    for (s_lng, s_lat), (r_lng, r_lat) in zip(stored, ring, strict=True):
        w_lng, w_lat = to_wgs84(r_lng, r_lat, datum)
        assert (s_lng, s_lat) == pytest.approx((w_lng, w_lat), abs=1e-7)
    assert all(p == [round(p[0], 7), round(p[1], 7)] for p in zone.geojson["coordinates"][0])

    index = ZoneIndex([IndexedZone(1, 0, zone.geometry, ())])
    # A pickup reported by the partner near the zone's east edge, inside on their map.
    partner_point = (ring[1][0] - 0.0005, ring[1][1] + 0.005)
    assert index.match_point(*to_wgs84(*partner_point, datum)) == 1
    # Taken as if it were WGS-84, the same numbers fall outside: conversion matters.
    assert index.match_point(*partner_point) is None


# ---------------------------------------------------------------------------
# Zone index
# ---------------------------------------------------------------------------


def test_overlap_is_resolved_by_priority() -> None:
    big = box(112.9, 28.1, 113.1, 28.3)
    small = box(112.98, 28.19, 112.99, 28.20)
    index = ZoneIndex([IndexedZone(1, 5, big, ()), IndexedZone(2, 1, small, ())])
    assert index.match_point(112.985, 28.195) == 1
    index = ZoneIndex([IndexedZone(1, 0, big, ()), IndexedZone(2, 1, small, ())])
    assert index.match_point(112.985, 28.195) == 2


def test_equal_priority_prefers_the_smaller_zone_then_the_lower_id() -> None:
    big = box(112.9, 28.1, 113.1, 28.3)
    small = box(112.98, 28.19, 112.99, 28.20)
    index = ZoneIndex([IndexedZone(1, 0, big, ()), IndexedZone(2, 0, small, ())])
    assert index.match_point(112.985, 28.195) == 2
    index = ZoneIndex([IndexedZone(7, 0, small, ()), IndexedZone(3, 0, box(*small.bounds), ())])
    assert index.match_point(112.985, 28.195) == 3


def test_point_on_a_boundary_matches() -> None:
    index = ZoneIndex([IndexedZone(1, 0, box(112.98, 28.19, 112.99, 28.20), ())])
    assert index.match_point(112.99, 28.195) == 1  # on an edge
    assert index.match_point(112.98, 28.19) == 1  # on a vertex


def test_point_on_shared_edge_goes_to_the_higher_priority_zone() -> None:
    west = box(112.98, 28.19, 112.99, 28.20)
    east = box(112.99, 28.19, 113.00, 28.20)
    index = ZoneIndex([IndexedZone(1, 0, west, ()), IndexedZone(2, 3, east, ())])
    assert index.match_point(112.99, 28.195) == 2


def test_point_in_a_hole_does_not_match() -> None:
    donut = box(112.9, 28.1, 113.1, 28.3).difference(box(112.98, 28.19, 112.99, 28.20))
    index = ZoneIndex([IndexedZone(1, 0, donut, ())])
    assert index.match_point(112.985, 28.195) is None
    assert index.match_point(112.95, 28.15) == 1


def test_multipolygon_zone_matches_each_part_but_not_the_gap() -> None:
    geometry = {
        "type": "MultiPolygon",
        "coordinates": [[square(112.90, 28.10, 0.01)], [square(112.95, 28.10, 0.01)]],
    }
    [zone] = parse_zone_collection(collection(feature(geometry=geometry)))
    assert zone.geojson is not None and zone.geojson["type"] == "MultiPolygon"
    index = ZoneIndex([IndexedZone(4, 0, zone.geometry, ())])
    assert index.match_point(112.905, 28.105) == 4
    assert index.match_point(112.955, 28.105) == 4
    assert index.match_point(112.93, 28.105) is None


def test_no_match_returns_none() -> None:
    index = ZoneIndex([IndexedZone(1, 0, box(112.98, 28.19, 112.99, 28.20), ["岳麓区"])])
    assert index.match_point(116.39, 39.90) is None
    assert index.match_admin_area("朝阳区") is None
    assert index.match(116.39, 39.90, ["朝阳区"]) is None
    empty = ZoneIndex([])
    assert len(empty) == 0
    assert empty.match(CS_LNG, CS_LAT, ["岳麓区"]) is None


def test_admin_area_fallback_tries_names_in_order() -> None:
    index = ZoneIndex(
        [
            IndexedZone(1, 0, None, ["岳麓区"]),
            IndexedZone(2, 0, None, [" 岳麓街道 "]),
            IndexedZone(3, 0, box(112.98, 28.19, 112.99, 28.20), ["天心区"]),
        ]
    )
    assert index.match_admin_area("岳麓街道", "岳麓区") == 2
    assert index.match_admin_area("不存在街道", "岳麓区 ") == 1
    assert index.match_admin_area("", "天心区") == 3
    assert index.match_admin_area("岳麓") is None  # exact names only, no substring match
    assert index.match(None, None, ["岳麓街道", "岳麓区"]) == 2
    # A point outside every polygon falls back to the names.
    assert index.match(116.39, 39.90, ["岳麓区"]) == 1


def test_admin_area_conflict_resolved_by_priority_then_lower_id() -> None:
    index = ZoneIndex(
        [
            IndexedZone(5, 0, None, ["岳麓区"]),
            IndexedZone(9, 2, None, ["岳麓区"]),
            IndexedZone(4, 0, None, ["天心区"]),
            IndexedZone(2, 0, None, ["天心区"]),
        ]
    )
    assert index.match_admin_area("岳麓区") == 9
    assert index.match_admin_area("天心区") == 2


def test_match_prefers_the_point_over_admin_names() -> None:
    index = ZoneIndex(
        [
            IndexedZone(1, 0, None, ["岳麓区"]),
            IndexedZone(2, 0, box(112.98, 28.19, 112.99, 28.20), ()),
        ]
    )
    assert index.match(112.985, 28.195, ["岳麓区"]) == 2


def test_len_counts_every_zone_and_duplicate_ids_are_refused() -> None:
    zones = [IndexedZone(1, 0, None, ["岳麓区"]), IndexedZone(2, 0, box(0, 0, 1, 1), ())]
    assert len(ZoneIndex(zones)) == 2
    with pytest.raises(ValueError, match="duplicate zone id 1"):
        ZoneIndex([*zones, IndexedZone(1, 0, None, ())])
    with pytest.raises(TypeError, match="not a string"):
        ZoneIndex([IndexedZone(3, 0, None, "岳麓区")])


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def test_export_then_import_round_trips() -> None:
    obj = collection(
        feature("A", "Yuelu", priority=2, admin_areas=["岳麓区"], station="S1", colour="red"),
        feature(
            "B",
            "Tianxin",
            geometry={
                "type": "MultiPolygon",
                "coordinates": [
                    [square(112.90, 28.10, 0.01), square(112.902, 28.102, 0.002)],
                    [square(112.95, 28.10, 0.01)],
                ],
            },
        ),
        feature("C", "Street only", geometry=None, admin_areas=["岳麓街道"]),
    )
    zones = parse_zone_collection(obj, datum="gcj02")
    exported = to_feature_collection(zones)
    again = parse_zone_collection(json.loads(json.dumps(exported)))
    assert again == zones
    assert to_feature_collection(again) == exported
    assert exported["features"][0]["properties"] == {
        "colour": "red",
        "code": "A",
        "name": "Yuelu",
        "priority": 2,
        "admin_areas": ["岳麓区"],
        "station": "S1",
    }


def test_export_accepts_any_zone_like_object() -> None:
    geojson = {"type": "Polygon", "coordinates": [square(CS_LNG, CS_LAT, 0.01)]}
    row = SimpleNamespace(code="Z", name="Row", priority=1, admin_areas=("岳麓区",), geojson=geojson)
    exported = to_feature_collection([row])
    assert exported == {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "Z", "name": "Row", "priority": 1, "admin_areas": ["岳麓区"]},
                "geometry": geojson,
            }
        ],
    }
    # The export is a copy: mutating it leaves the zone alone.
    exported["features"][0]["geometry"]["coordinates"][0][0][0] = 0.0
    assert geojson["coordinates"][0][0][0] == CS_LNG


def test_apple_maps_reads_gcj02_in_china_and_a_geo_uri_wgs84() -> None:
    name = "五一广场 (东)"
    links = navigation_links(CS_LNG, CS_LAT, name)
    g_lng, g_lat = from_wgs84(CS_LNG, CS_LAT, "gcj02")
    apple = urlsplit(links["apple"])
    assert (apple.scheme, apple.netloc) == ("https", "maps.apple.com")
    q = parse_qs(apple.query)
    lat_s, lng_s = q["ll"][0].split(",")
    assert float(lat_s) == pytest.approx(g_lat, abs=1e-6) and float(lng_s) == pytest.approx(g_lng, abs=1e-6)
    assert q["q"] == [name]
    # RFC 5870: WGS-84 as stored; the label's parentheses are escaped so that they cannot end it early.
    assert links["geo"] == (
        f"geo:{CS_LAT:.6f},{CS_LNG:.6f}?q={CS_LAT:.6f},{CS_LNG:.6f}(%E4%BA%94%E4%B8%80%E5%B9%BF%E5%9C%BA%20%28%E4%B8%9C%29)"
    )
