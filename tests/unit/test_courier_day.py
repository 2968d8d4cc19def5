"""The courier app's day and card helpers (server/courier_app/day.py) that need no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server.courier_app.day import distance_to, navigation, start_of_today


def test_today_starts_at_midnight_beijing_time_not_utc() -> None:
    # 01:00 on the 26th in Beijing is 17:00 on the 25th in UTC: the day began at 16:00 UTC.
    assert start_of_today(datetime(2026, 11, 25, 17, 0, tzinfo=UTC)) == datetime(
        2026, 11, 25, 16, 0, tzinfo=UTC
    )
    # 23:00 in Beijing (15:00 UTC) is still the 25th, which began at 16:00 UTC on the 24th.
    assert start_of_today(datetime(2026, 11, 25, 15, 0, tzinfo=UTC)) == datetime(
        2026, 11, 24, 16, 0, tzinfo=UTC
    )


def test_distance_needs_both_positions() -> None:
    assert distance_to(None, 28.2, 112.9) is None
    assert distance_to((28.2, 112.9), None, None) is None
    assert distance_to((28.2, 112.9), 28.21, 112.9) == 1112


def _held(lat: float | None, lng: float | None) -> dict[str, Any]:
    return {"address": {"district": "天心区", "street": "坡子街", "detail": "1号", "lat": lat, "lng": lng}}


def test_a_pickup_without_coordinates_has_no_navigation_links() -> None:
    assert navigation(_held(None, None)) == []
    assert [app for app, _ in navigation(_held(28.19, 112.97))] == ["amap", "baidu", "apple", "geo"]
