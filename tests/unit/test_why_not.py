"""The booking form's reason an address is not served, in the page's language."""

from __future__ import annotations

from datetime import UTC, datetime

from server.intake.serviceability import ServiceabilityOut, StopShipOut, why_not


def answer(**over: object) -> ServiceabilityOut:
    fields: dict[str, object] = dict(
        serviceable=False,
        code="no_zone",
        message="x",
        station=None,
        zone=None,
        time_limit_minutes=None,
        slots=[],
        stop_ship=None,
    )
    fields.update(over)
    return ServiceabilityOut(**fields)  # type: ignore[arg-type]


def test_a_stop_ship_area_is_named_with_its_reason_in_either_language() -> None:
    area = StopShipOut(id=1, name="暴雪", reason="封路", starts_at=datetime.now(UTC), ends_at=None)
    refused = answer(code="stop_ship_area", stop_ship=area)
    assert "暴雪" in (why_not(refused, "zh-CN") or "") and "封路" in (why_not(refused, "zh-CN") or "")
    assert (why_not(refused, "en") or "").startswith("No pickups here")


def test_no_zone_and_served_addresses() -> None:
    assert why_not(answer(), "en") == "We do not pick up at this address yet"
    assert why_not(answer(serviceable=True, code=None, message=None), "zh-CN") is None
