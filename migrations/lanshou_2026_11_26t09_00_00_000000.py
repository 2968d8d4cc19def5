"""Indexes for the read paths at a million pickups (issue #10): a partner's list filtered by status, and
the board's failed and recently-closed sections counted and paged from an index alone.

- pickups_partner_status_id: `GET /api/v1/pickups?status=…` walks (partner, status, id) from the
  cursor down; with (partner, id) alone, a status the partner has few of (or none) read its whole history.
- pickups_board_recent: the failed and closed sections are (status, updated_at) ranges filtered by the
  dispatcher's zones; with id (the order's tie-break) and zone in the index, their counts and pages read
  no table rows.
  It starts with what pickups_status_updated_at held, which it replaces (one index fewer to write).

Hand-made with the ID assigned to the million-pickups work of issue #10. Raw SQL that SQLite and
PostgreSQL both take.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-26T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes for the partner list by status and the board's recent sections"

STATEMENTS = [
    "CREATE INDEX IF NOT EXISTS pickups_partner_status_id ON pickups (partner, status, id)",
    "CREATE INDEX IF NOT EXISTS pickups_board_recent ON pickups (status, updated_at, id, zone)",
    "DROP INDEX IF EXISTS pickups_status_updated_at",
]
BACKWARDS = [
    "CREATE INDEX IF NOT EXISTS pickups_status_updated_at ON pickups (status, updated_at)",
    "DROP INDEX IF EXISTS pickups_board_recent",
    "DROP INDEX IF EXISTS pickups_partner_status_id",
]


async def analyze(engine, indexes):
    """SQLite plans by sqlite_stat1 when the database has one (after an ANALYZE): an index missing from
    it is guessed to match ten rows, so the partner's unfiltered list took the new (partner, status, id)
    index and sorted the partner's whole history (0.3 s at a million pickups) instead of walking
    (partner, id). So a database that has statistics gets them for the new indexes too; one that has
    none is left without (then every index is guessed alike, and the planner chooses well)."""
    if engine.engine_type != "sqlite":
        return  # PostgreSQL keeps its column statistics; these indexes are on plain columns
    if await engine.run_ddl("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"):
        for index in indexes:
            await engine.run_ddl(f"ANALYZE {index}")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lanshou", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for statement in STATEMENTS:
            await engine.run_ddl(statement)  # type: ignore[union-attr]
        await analyze(engine, ["pickups_partner_status_id", "pickups_board_recent"])

    async def run_backwards():
        engine = engine_finder()
        for statement in BACKWARDS:
            await engine.run_ddl(statement)  # type: ignore[union-attr]
        await analyze(engine, ["pickups_status_updated_at"])

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
