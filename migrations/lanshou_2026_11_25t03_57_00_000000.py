"""Composite and partial indexes that Piccolo's column options cannot express (same SQL on both engines)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T03:57:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite indexes"

STATEMENTS = [
    # A courier's SSE resume: events addressed to them after an id.
    "CREATE INDEX IF NOT EXISTS event_recipients_courier_event ON event_recipients (courier, event)",
    "CREATE INDEX IF NOT EXISTS event_recipients_event ON event_recipients (event)",
    # One pickup per partner order number; also what makes a duplicate create fail under a race.
    "CREATE UNIQUE INDEX IF NOT EXISTS pickups_partner_order_no ON pickups (partner, partner_order_no) "
    "WHERE partner_order_no IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS courier_zones_courier_zone ON courier_zones (courier, zone)",
    "CREATE INDEX IF NOT EXISTS pickup_offers_pickup_courier ON pickup_offers (pickup, courier)",
    "CREATE INDEX IF NOT EXISTS pickups_partner_id ON pickups (partner, id)",
    # The scheduler: due timers, soonest first.
    "CREATE INDEX IF NOT EXISTS timers_due ON timers (due_ms, id)",
]

DROPS = [s.split(" IF NOT EXISTS ")[1].split(" ON ")[0] for s in STATEMENTS]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lanshou", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for statement in STATEMENTS:
            await engine.run_ddl(statement)  # type: ignore[union-attr]

    async def run_backwards():
        engine = engine_finder()
        for name in DROPS:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")  # type: ignore[union-attr]

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
