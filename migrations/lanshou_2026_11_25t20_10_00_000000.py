"""A waybill binds one pickup (订单号与运单号捆绑): a unique index over the waybill numbers collected.

Partial (only rows with a waybill), which Piccolo's columns cannot say, so it is raw SQL as the events
index is; both SQLite and PostgreSQL take the same statement. On a database where one waybill number is
already on two pickups the index cannot be built and the migration stops with the database's message:
find them with `SELECT waybill_no FROM pickups WHERE waybill_no IS NOT NULL GROUP BY waybill_no
HAVING COUNT(*) > 1` and correct them first.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T20:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one pickup per waybill"

STATEMENTS = [
    "CREATE UNIQUE INDEX IF NOT EXISTS pickups_waybill_no_unique ON pickups (waybill_no) "
    "WHERE waybill_no IS NOT NULL"
]
DROPS = ["pickups_waybill_no_unique"]


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
