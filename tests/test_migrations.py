"""The tables and the migrations stay in step, and migrations run forwards, again, and back and forth.

(a) needs no database: it replays the migration files into Piccolo's schema snapshot and diffs it
against server.tables exactly as `piccolo migrations new lanshou --auto` does, without writing a file.
(b) runs the real CLIs (`lanshou migrate`, `piccolo migrations backwards`) on a database of its own,
SQLite or PostgreSQL like the rest of the suite (LANSHOU_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from itertools import chain
from typing import Any

import pytest
from piccolo.apps.migrations.auto import DiffableTable, SchemaDiffer, SchemaSnapshot
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.columns import Varchar
from piccolo.conf.apps import AppConfig
from piccolo.table import Table

from server.piccolo_app import APP_CONFIG
from tests.conftest import ON_POSTGRES, ROOT, Database, migrated_database

# -- (a) tables and migrations in step -----------------------------------------------------------------


async def pending_alter_statements(app_config: AppConfig) -> list[str]:
    """What `piccolo migrations new <app> --auto` would put in a new migration (piccolo's
    AutoMigrationManager.get_alter_statements, step by step), without writing anything."""
    managers = await BaseMigrationManager().get_migration_managers(app_config=app_config)
    snapshot = SchemaSnapshot(managers).get_snapshot()
    current = [
        DiffableTable(
            class_name=table.__name__,
            tablename=table._meta.tablename,
            columns=table._meta.non_default_columns,
            constraints=table._meta.constraints,
            schema=table._meta.schema,
        )
        for table in app_config.table_classes
    ]
    # auto_input="n": never stop to ask "did you rename X to Y?"; a rename then shows as drop + add.
    differ = SchemaDiffer(schema=current, schema_snapshot=snapshot, auto_input="n")
    return list(chain.from_iterable(a.statements for a in differ.get_alter_statements()))


async def test_the_migrations_create_exactly_the_tables_in_server_tables() -> None:
    statements = await pending_alter_statements(APP_CONFIG)
    assert not statements, (
        "server/tables.py and migrations/ differ; `piccolo migrations new lanshou --auto` would write:\n"
        + "\n".join(statements)
    )


async def test_the_step_check_notices_a_column_with_no_migration() -> None:
    # The check above is only worth something if it can fail: give one table a column no migration adds.
    class Session(Table, tablename="sessions"):
        key = Varchar(length=128, unique=True)
        data = Varchar()
        note = Varchar(length=10)

    tables = [Session if t._meta.tablename == "sessions" else t for t in APP_CONFIG.table_classes]
    drifted = AppConfig(
        app_name=APP_CONFIG.app_name,
        migrations_folder_path=APP_CONFIG.migrations_folder_path,
        table_classes=tables,
    )
    statements = await pending_alter_statements(drifted)
    joined = "\n".join(statements)
    assert "add_column" in joined and "'note'" in joined, joined
    assert "'data'" in joined  # Text in the migrations, Varchar here: an altered column


# -- (b) running migrations ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_db() -> Iterator[Database]:
    """A database of this module's own, migrated through the CLI: these tests undo migrations, which
    must not pull tables from under the session's shared database and its running server."""
    with migrated_database("lanshou-migrations-", through_cli=True) as database:
        yield database


def piccolo_migrations(db: Database, *args: str) -> str:
    """`piccolo migrations …` through Piccolo's own CLI, configured by server.piccolo_conf."""
    result = subprocess.run(
        [sys.executable, "-m", "piccolo.main", "migrations", *args],
        cwd=ROOT,
        env=db.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    return output


def migration_ids() -> list[str]:
    modules = BaseMigrationManager().get_migration_modules(APP_CONFIG.resolved_migrations_folder_path)
    return sorted(modules)


Schema = dict[str, Any]


def _sqlite_schema(path: str) -> Schema:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            "migrations": [r[0] for r in conn.execute("SELECT name FROM migration ORDER BY name")],
            "columns": {
                t: sorted(tuple(r[1:]) for r in conn.execute(f'PRAGMA table_info("{t}")')) for t in tables
            },
            "foreign_keys": {
                t: sorted(tuple(r[2:]) for r in conn.execute(f'PRAGMA foreign_key_list("{t}")'))
                for t in tables
            },
            "indexes": sorted(
                conn.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'").fetchall(),
                key=repr,
            ),
        }
    finally:
        conn.close()


async def _postgres_schema(url: str) -> Schema:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        columns: dict[str, list[tuple[Any, ...]]] = {}
        for r in await conn.fetch(
            "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, "
            "column_default FROM information_schema.columns WHERE table_schema = 'public'"
        ):
            columns.setdefault(r[0], []).append(tuple(r[1:]))
        constraints = await conn.fetch(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace"
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )
        migrations = await conn.fetch("SELECT name FROM migration ORDER BY name")
        return {
            "migrations": [r[0] for r in migrations],
            "columns": {t: sorted(cols, key=repr) for t, cols in columns.items()},
            "constraints": sorted((tuple(r) for r in constraints), key=repr),
            "indexes": sorted((tuple(r) for r in indexes), key=repr),
        }
    finally:
        await conn.close()


def schema_of(db: Database) -> Schema:
    """Tables, columns, keys, indexes and the applied migrations, comparable between two moments."""
    if ON_POSTGRES:
        return asyncio.run(_postgres_schema(db.url))
    return _sqlite_schema(db.url.removeprefix("sqlite:///"))


def test_a_new_database_is_migrated_through_every_migration(fresh_db: Database) -> None:
    schema = schema_of(fresh_db)
    assert schema["migrations"] == migration_ids()
    assert {t._meta.tablename for t in APP_CONFIG.table_classes} <= set(schema["columns"])


def test_migrating_an_up_to_date_database_again_changes_nothing(fresh_db: Database) -> None:
    before = schema_of(fresh_db)
    out = fresh_db.cli("migrate")
    assert "database is up to date" in out
    assert "[forwards]" not in out, out  # nothing was run
    assert schema_of(fresh_db) == before


def test_the_last_migration_goes_backwards_and_forwards_again(fresh_db: Database) -> None:
    before = schema_of(fresh_db)
    last = migration_ids()[-1]

    out = piccolo_migrations(fresh_db, "backwards", "lanshou", "--migration_id=1", "--auto_agree=True")
    assert f"{last} [backwards]" in out, out
    undone = schema_of(fresh_db)
    assert undone["migrations"] == before["migrations"][:-1]

    out = fresh_db.cli("migrate")
    assert f"{last} [forwards]" in out, out
    assert schema_of(fresh_db) == before
