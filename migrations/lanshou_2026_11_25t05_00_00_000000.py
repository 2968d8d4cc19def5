"""Index for "what did this actor do last" (the console's time since a courier's last accept)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "events by actor"

STATEMENTS = ["CREATE INDEX IF NOT EXISTS events_actor_type ON events (actor_kind, actor_id, type)"]
DROPS = ["events_actor_type"]


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
