"""Zone hours cut into pickup slots (server/domain/slots.py): local hours, UTC answers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from server.domain.slots import hours_problems, is_slot, next_slots, parse_hhmm

SH = "Asia/Shanghai"  # UTC+8, no daylight saving


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_slots_are_cut_from_opening_in_the_stations_timezone_and_answered_in_utc() -> None:
    now = utc(2026, 11, 26, 0, 0)  # 08:00 in Shanghai: the first slot starts now
    slots = next_slots(time(8), time(20), 120, SH, now, 3)
    assert slots == [
        (utc(2026, 11, 26, 0), utc(2026, 11, 26, 2)),
        (utc(2026, 11, 26, 2), utc(2026, 11, 26, 4)),
        (utc(2026, 11, 26, 4), utc(2026, 11, 26, 6)),
    ]


def test_a_slot_under_way_is_not_offered_and_the_next_day_follows_closing() -> None:
    now = utc(2026, 11, 26, 10, 30)  # 18:30 local: the 18-20 slot is under way
    slots = next_slots(time(8), time(20), 120, SH, now, 2)
    assert slots == [
        (utc(2026, 11, 27, 0), utc(2026, 11, 27, 2)),  # tomorrow 08:00 local
        (utc(2026, 11, 27, 2), utc(2026, 11, 27, 4)),
    ]


def test_the_last_slot_ends_at_closing() -> None:
    slots = next_slots(time(9), time(12), 120, SH, utc(2026, 11, 26, 0), 2)
    assert [(s.astimezone(UTC).hour, e.hour) for s, e in slots] == [(1, 3), (3, 4)]


def test_a_daylight_saving_zone_follows_its_wall_clock() -> None:
    # Berlin leaves summer time on 2026-10-25: 08:00 local is 06:00 UTC before, 07:00 UTC after.
    before = next_slots(time(8), time(10), 120, "Europe/Berlin", utc(2026, 10, 24, 0), 1)
    after = next_slots(time(8), time(10), 120, "Europe/Berlin", utc(2026, 10, 26, 0), 1)
    assert before[0][0] == utc(2026, 10, 24, 6)
    assert after[0][0] == utc(2026, 10, 26, 7)


def test_is_slot_takes_the_grid_in_any_offset_and_refuses_the_rest() -> None:
    now = utc(2026, 11, 26, 1)  # 09:00 local
    start, end = utc(2026, 11, 26, 2), utc(2026, 11, 26, 4)
    assert is_slot(time(8), time(20), 120, SH, start, end, now)
    plus8 = start.astimezone(datetime.fromisoformat("2026-11-26T10:00+08:00").tzinfo)
    assert is_slot(time(8), time(20), 120, SH, plus8, end, now)
    assert is_slot(time(8), time(20), 120, SH, utc(2026, 11, 26, 0), utc(2026, 11, 26, 2), now)  # under way
    assert not is_slot(time(8), time(20), 120, SH, start + timedelta(minutes=30), end, now)  # off the grid
    assert not is_slot(time(8), time(20), 120, SH, utc(2026, 11, 25, 2), utc(2026, 11, 25, 4), now)  # over
    assert not is_slot(time(8), time(20), 120, SH, start + timedelta(days=30), end + timedelta(days=30), now)
    assert not is_slot(time(8), time(20), 120, SH, start.replace(tzinfo=None), end, now)


def test_hours_are_checked_field_by_field() -> None:
    assert parse_hhmm("08:30") == time(8, 30)
    assert parse_hhmm("8:30") is None and parse_hhmm("24:00") is None
    assert hours_problems("08:00", "20:00", 120, "p") == []
    fields = {e["field"] for e in hours_problems("20:00", "08:00", 5, "p")}
    assert fields == {"p.closes", "p.slot_minutes"}
    assert {e["field"] for e in hours_problems("x", None, True, "p")} == {
        "p.opens",
        "p.closes",
        "p.slot_minutes",
    }
