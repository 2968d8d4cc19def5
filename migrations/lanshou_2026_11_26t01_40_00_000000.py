"""Tracking codes grow from LS + 10 to LS + 20 characters (≈ 99 bits: /t/<code> is a public page):
pickups.tracking_code becomes varchar(32). Codes already issued are unchanged and stay valid.

SQLite enforces no varchar length: Piccolo skips the change there (with a warning), PostgreSQL widens
the column in place (no rewrite: widening a varchar only changes the catalogue).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar

ID = "2026-11-26T01:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "longer tracking codes"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="lanshou", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="Pickup",
        tablename="pickups",
        column_name="tracking_code",
        db_column_name="tracking_code",
        params={"length": 32},
        old_params={"length": 20},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
