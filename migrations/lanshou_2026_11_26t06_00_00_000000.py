"""The console's board (issue #9): a pickup's phone's last four digits for search, a mark that a held
pickup was assigned by a dispatcher (not accepted by its courier), and the indexes the board's search,
filters and recently-closed sections read through.

Hand-made with the ID assigned to the board work of issue #9. The backfill and the indexes are raw SQL
that SQLite and PostgreSQL both take.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.engine import engine_finder

ID = "2026-11-26T06:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "console board: phone last four, assigned-by-dispatcher, search indexes"

STATEMENTS = [
    # Phones are stored normalised (11 digits), so the last four characters are the last four digits.
    "UPDATE pickups SET sender_phone_last4 = substr(sender_phone, length(sender_phone) - 3) "
    "WHERE length(sender_phone) >= 4",
    # A held pickup whose latest hand-over was a dispatcher's assignment rather than the courier's accept.
    "UPDATE pickups SET assigned_by_dispatcher = TRUE WHERE status IN ('accepted', 'contacted') AND ("
    "SELECT e.type FROM events e WHERE e.pickup = pickups.id AND e.type IN "
    "('pickup.accepted', 'pickup.assigned', 'pickup.reassigned') ORDER BY e.id DESC LIMIT 1"
    ") IN ('pickup.assigned', 'pickup.reassigned')",
    "CREATE INDEX IF NOT EXISTS pickups_sender_phone ON pickups (sender_phone)",
    "CREATE INDEX IF NOT EXISTS pickups_partner_order_no_alone ON pickups (partner_order_no)",
    "CREATE INDEX IF NOT EXISTS pickups_status_updated_at ON pickups (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS pickups_zone_status_updated_at ON pickups (zone, status, updated_at)",
    # Covers what the open sections count, filter and sort by: counting and ordering a day's thousands
    # of open pickups reads this index alone, not the table.
    "CREATE INDEX IF NOT EXISTS pickups_board_open ON pickups "
    "(status, escalation_stage, zone, due_at, created_at, id)",
]
# The column index too: SQLite cannot drop an indexed column.
DROPS = [
    "pickups_sender_phone_last4",
    "pickups_sender_phone",
    "pickups_partner_order_no_alone",
    "pickups_status_updated_at",
    "pickups_zone_status_updated_at",
    "pickups_board_open",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lanshou", description=DESCRIPTION)

    manager.add_column(
        table_class_name="Pickup",
        tablename="pickups",
        column_name="sender_phone_last4",
        db_column_name="sender_phone_last4",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 4,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Pickup",
        tablename="pickups",
        column_name="assigned_by_dispatcher",
        db_column_name="assigned_by_dispatcher",
        column_class_name="Boolean",
        column_class=Boolean,
        params={
            "default": False,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    # MigrationManager runs raw steps before it adds columns, and the backfill needs the new columns:
    # so the statements run right after the columns are added, in the same transaction.
    add_columns = manager._run_add_columns

    async def add_columns_then_backfill(backwards: bool = False):
        await add_columns(backwards=backwards)
        if not backwards:
            engine = engine_finder()
            for statement in STATEMENTS:
                await engine.run_ddl(statement)  # type: ignore[union-attr]

    manager._run_add_columns = add_columns_then_backfill  # type: ignore[method-assign]

    async def run_backwards():
        engine = engine_finder()
        for name in DROPS:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")  # type: ignore[union-attr]

    manager.add_raw_backwards(run_backwards)
    return manager
