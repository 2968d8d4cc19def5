"""What the `lanshou` command says: one truthful line about migrations, on a new database and after."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from piccolo.apps.migrations.commands.base import BaseMigrationManager

from server.piccolo_app import APP_CONFIG
from tests.conftest import Database

MIGRATIONS = len(BaseMigrationManager().get_migration_modules(APP_CONFIG.resolved_migrations_folder_path))


@pytest.fixture
def new_database() -> Iterator[Database]:
    """A database no command has touched yet."""
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-cli-"))
    database = Database(tmp)
    try:
        yield database
    finally:
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_demo_on_a_new_database_says_once_how_many_migrations_it_applied(new_database: Database) -> None:
    out = new_database.cli("demo")
    assert f"lanshou: applied {MIGRATIONS} migrations; the database is up to date" in out, out
    # Piccolo's own report said both of these at once on a new database.
    assert "already complete" not in out, out
    assert "not yet run" not in out, out
    assert "Demo city seeded" in out

    out = new_database.cli("demo")
    assert "lanshou: database is up to date (no migrations to apply)" in out, out
    assert "applied" not in out, out


def test_migrate_lists_what_it_applied_then_nothing(new_database: Database) -> None:
    out = new_database.cli("migrate")
    assert out.count("[forwards]") == MIGRATIONS, out
    assert out.strip().splitlines()[-1] == (
        f"lanshou: applied {MIGRATIONS} migrations; the database is up to date"
    )
    out = new_database.cli("migrate")
    assert out.strip() == "lanshou: database is up to date (no migrations to apply)"
