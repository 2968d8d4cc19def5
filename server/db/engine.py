"""Pick the database engine from LANSHOU_DATABASE_URL and bind every table to it.

One engine per URL per process: Piccolo's migration commands (through piccolo_conf) and the web app
share it, so SQLite keeps its single writer connection and PostgreSQL its single pool.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from asyncpg.exceptions import UniqueViolationError
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.table import Table

from server.db.sqlite_engine import FastSQLiteEngine
from server.tables import TABLES

_engines: dict[str, Engine] = {}


def sqlite_path(url: str) -> str:
    """sqlite:///var/x.db → var/x.db ; sqlite:////abs/x.db → /abs/x.db"""
    return url.removeprefix("sqlite:///")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.environ.get("LANSHOU_SQLITE_ENGINE") == "stock":  # only for tests/bench comparisons
            return SQLiteEngine(path=path)
        return FastSQLiteEngine(path=path)
    return PostgresEngine(config={"dsn": url}, log_queries=False)


def get_engine(url: str) -> Engine:
    """The process's engine for this URL, with every Lanshou table (and Piccolo's own) bound to it."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    tables: list[type[Table]] = [*TABLES, Migration]
    for table in tables:
        table._meta.db = engine
    return engine


async def open_engine(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(min_size=2, max_size=20)


async def close_engine(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine):
        await engine.close_connection_pool()
    elif isinstance(engine, FastSQLiteEngine):
        await engine.close()


# What either engine raises when a unique index refuses a row (callers turn it into a 409).
UNIQUE_VIOLATION = (sqlite3.IntegrityError, UniqueViolationError)


def is_postgres(engine: Engine) -> bool:
    return isinstance(engine, PostgresEngine)
