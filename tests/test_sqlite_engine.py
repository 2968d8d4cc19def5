"""Behaviour of FastSQLiteEngine: Piccolo compatibility, locking, WAL readers, loop changes."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import JSON, JSONB, Array, Boolean, Integer, Numeric, Timestamptz, Varchar
from piccolo.conf.apps import Finder
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.table import Table

from server.db import sqlite_engine
from server.db.script import Script, Sql, run_script
from server.db.sqlite_engine import FastSQLiteEngine

# Generous: the shared 2-core CI box can stall, and a timeout here means a deadlock, not slowness.
DEADLOCK_TIMEOUT = 10.0


def thing_table(engine: SQLiteEngine) -> type[Table]:
    class Thing(Table, db=engine, tablename="thing"):
        name = Varchar()
        qty = Integer()
        at = Timestamptz()
        data = JSON()
        meta = JSONB()
        flag = Boolean()
        note = Varchar(null=True, default=None)
        price = Numeric(digits=(8, 2))
        tags = Array(base_column=Varchar())

    return Thing


def counter_table(engine: SQLiteEngine) -> type[Table]:
    class Counter(Table, db=engine, tablename="counter"):
        value = Integer()

    return Counter


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "lanshou-test.sqlite")


@pytest.fixture
def engine(db_path: str) -> Iterator[FastSQLiteEngine]:
    yield FastSQLiteEngine(path=db_path)


@pytest_asyncio.fixture
async def thing(engine: FastSQLiteEngine) -> AsyncIterator[Any]:
    table = thing_table(engine)
    await table.create_table()
    yield table
    await engine.close()


@pytest_asyncio.fixture
async def counter(engine: FastSQLiteEngine) -> AsyncIterator[Any]:
    table = counter_table(engine)
    await table.create_table()
    await table.insert(table(value=0))
    yield table
    await engine.close()


def sample_row(table: Any) -> Any:
    return table(
        name="包裹 parcel",
        qty=7,
        at=datetime.datetime(
            2024, 5, 1, 18, 30, 5, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=8))
        ),
        data='{"a": [1, 2]}',
        meta={"k": "v", "n": 1},
        flag=True,
        note=None,
        price=decimal.Decimal("12.50"),
        tags=["x", "y"],
    )


async def increment(table: Any, engine: FastSQLiteEngine) -> None:
    async with engine.transaction():
        row = await table.select(table.value).first()
        await asyncio.sleep(0)  # let other tasks run between the read and the write
        await table.update({table.value: row["value"] + 1}, force=True)


async def counter_value(table: Any) -> int:
    row = await table.select(table.value).first()
    return int(row["value"])


@pytest.mark.asyncio
async def test_values_round_trip_like_the_stock_engine(thing: Any, tmp_path: Path) -> None:
    stock_engine = SQLiteEngine(path=str(tmp_path / "stock.sqlite"))
    stock_thing = thing_table(stock_engine)
    await stock_thing.create_table()

    await thing.insert(sample_row(thing))
    await stock_thing.insert(sample_row(stock_thing))

    fast_rows = await thing.select()
    stock_rows = await stock_thing.select()
    assert fast_rows == stock_rows
    assert await thing.select().output(load_json=True) == await stock_thing.select().output(load_json=True)

    row = fast_rows[0]
    assert row["name"] == "包裹 parcel"
    assert row["qty"] == 7
    assert row["at"] == datetime.datetime(2024, 5, 1, 10, 30, 5, 123456, tzinfo=datetime.UTC)
    assert row["at"].tzinfo is not None
    assert row["flag"] is True
    assert row["note"] is None
    assert row["price"] == decimal.Decimal("12.50")
    assert row["tags"] == ["x", "y"]
    loaded = (await thing.select(thing.data, thing.meta).output(load_json=True))[0]
    assert loaded == {"data": {"a": [1, 2]}, "meta": {"k": "v", "n": 1}}


@pytest.mark.asyncio
async def test_piccolo_query_helpers_work(thing: Any, engine: FastSQLiteEngine) -> None:
    inserted = await thing.insert(sample_row(thing), sample_row(thing)).returning(thing.id, thing.qty)
    assert [r["id"] for r in inserted] == [1, 2]
    plain = await thing.insert(sample_row(thing))
    assert plain == [{"id": 3}]
    assert await thing.count() == 3
    assert await thing.exists().where(thing.id == 2)
    assert not await thing.exists().where(thing.id == 99)
    first = await thing.objects().where(thing.id == 3).first()
    assert first is not None and first.qty == 7
    first.qty = 8
    await first.save()
    assert (await thing.select(thing.qty).where(thing.id == 3).first())["qty"] == 8
    updated = await thing.update({thing.qty: 9}).where(thing.id == 1).returning(thing.qty)
    assert updated == [{"qty": 9}]

    atomic = engine.atomic()
    atomic.add(thing.insert(sample_row(thing)), thing.delete().where(thing.id == 1))
    await atomic.run()
    assert await thing.count() == 3

    await engine.run_ddl("CREATE INDEX thing_qty ON thing (qty)")
    async with await thing.select(thing.id).order_by(thing.id).batch(batch_size=2) as batch:
        pages = [page async for page in batch]
    assert pages == [[{"id": 2}, {"id": 3}], [{"id": 4}]]


@pytest.mark.asyncio
async def test_migrations_run_forwards_and_backwards_through_the_engine(
    engine: FastSQLiteEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Piccolo resolves the engine through piccolo_conf (engine_finder); point it at ours.
    monkeypatch.setattr(Finder, "get_engine", lambda self, module_name=None: engine)
    manager = MigrationManager(migration_id="2024-01-01T00:00:00:000000", app_name="test")
    manager.add_table(class_name="Parcel", tablename="parcel")
    manager.add_column(
        table_class_name="Parcel",
        tablename="parcel",
        column_name="code",
        db_column_name="code",
        column_class_name="Varchar",
        column_class=Varchar,
        params={"length": 20, "default": "", "null": False},
    )

    async def tables() -> set[str]:
        rows = await engine._run("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r["name"] for r in rows}

    await manager.run()
    assert "parcel" in await tables()
    await manager.run(backwards=True)
    assert "parcel" not in await tables()
    await engine.close()


@pytest.mark.asyncio
async def test_transaction_commits(thing: Any, engine: FastSQLiteEngine) -> None:
    async with engine.transaction():
        await thing.insert(sample_row(thing))
    assert await thing.count() == 1


@pytest.mark.asyncio
async def test_it_rolls_back_on_exception_and_releases_the_lock(thing: Any, engine: FastSQLiteEngine) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with engine.transaction():
            await thing.insert(sample_row(thing))
            raise RuntimeError("boom")
    assert await thing.count() == 0
    await asyncio.wait_for(thing.insert(sample_row(thing)), DEADLOCK_TIMEOUT)
    assert await thing.count() == 1


@pytest.mark.asyncio
async def test_it_rolls_back_on_cancellation_and_releases_the_lock(
    thing: Any, engine: FastSQLiteEngine
) -> None:
    inserted = asyncio.Event()

    async def hang_in_transaction() -> None:
        async with engine.transaction():
            await thing.insert(sample_row(thing))
            inserted.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hang_in_transaction())
    await asyncio.wait_for(inserted.wait(), DEADLOCK_TIMEOUT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await thing.count() == 0
    async with asyncio.timeout(DEADLOCK_TIMEOUT):
        async with engine.transaction():
            await thing.insert(sample_row(thing))
    assert await thing.count() == 1


@pytest.mark.asyncio
async def test_concurrent_read_then_write_transactions_lose_no_update(
    counter: Any, engine: FastSQLiteEngine
) -> None:
    async with asyncio.timeout(DEADLOCK_TIMEOUT * 3):
        await asyncio.gather(*(increment(counter, engine) for _ in range(50)))
    assert await counter_value(counter) == 50


@pytest.mark.asyncio
async def test_reads_do_not_wait_for_a_long_write_transaction(thing: Any, engine: FastSQLiteEngine) -> None:
    await thing.insert(sample_row(thing))
    holding = asyncio.Event()
    release = asyncio.Event()

    async def long_writer() -> None:
        async with engine.transaction():
            await thing.insert(sample_row(thing))
            holding.set()
            await release.wait()

    task = asyncio.create_task(long_writer())
    try:
        await asyncio.wait_for(holding.wait(), DEADLOCK_TIMEOUT)
        # Readers see the last committed snapshot, not the open transaction's row.
        assert await asyncio.wait_for(thing.count(), 2.0) == 1
        assert len(await asyncio.wait_for(thing.select(), 2.0)) == 1
        # Writes, by contrast, queue behind the open transaction.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(thing.insert(sample_row(thing)), 0.3)
    finally:
        release.set()
        await task
    assert await thing.count() == 2


@pytest.mark.asyncio
async def test_nested_transaction_joins_the_outer(thing: Any, engine: FastSQLiteEngine) -> None:
    async with asyncio.timeout(DEADLOCK_TIMEOUT):
        with pytest.raises(RuntimeError):
            async with engine.transaction() as outer:
                async with engine.transaction() as inner:
                    assert inner is outer
                    await thing.insert(sample_row(thing))
                # Joined, so the inner block's exit committed nothing on its own.
                assert await thing.count() == 1
                raise RuntimeError("undo everything")
    assert await thing.count() == 0


@pytest.mark.asyncio
async def test_queries_in_a_transaction_see_its_own_writes(thing: Any, engine: FastSQLiteEngine) -> None:
    async with engine.transaction():
        await thing.insert(sample_row(thing))
        assert await thing.count() == 1
        assert await asyncio.create_task(thing.count().run()) == 1  # child tasks inherit the context


@pytest.mark.asyncio
async def test_two_engines_on_one_file_lose_no_update(counter: Any, db_path: str) -> None:
    # A second engine stands in for a second server process: separate lock, separate writer.
    other_engine = FastSQLiteEngine(path=db_path, busy_timeout_ms=20_000)
    other_counter = counter_table(other_engine)
    first_engine = counter._meta.db
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(
                *(increment(counter, first_engine) for _ in range(25)),
                *(increment(other_counter, other_engine) for _ in range(25)),
            )
        assert await counter_value(counter) == 50
        assert await counter_value(other_counter) == 50
    finally:
        await other_engine.close()


@pytest.mark.asyncio
async def test_wal_mode_and_pragmas_are_set_on_every_connection(thing: Any, db_path: str) -> None:
    assert await thing.raw("PRAGMA journal_mode") == [{"journal_mode": "wal"}]
    for statement, expected in [
        ("SELECT * FROM pragma_foreign_keys()", 1),
        ("SELECT * FROM pragma_synchronous()", 1),  # NORMAL
        ("SELECT * FROM pragma_busy_timeout()", 5000),
    ]:
        assert list((await thing.raw(statement))[0].values()) == [expected]  # reader connection
        async with thing._meta.db.transaction():
            assert list((await thing.raw(statement))[0].values()) == [expected]  # writer
    with sqlite3.connect(db_path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.asyncio
async def test_readers_refuse_writes_that_bypass_the_lock(thing: Any, engine: FastSQLiteEngine) -> None:
    state = await engine._get_state()
    reader = await engine._acquire_reader(state)
    try:
        with pytest.raises(sqlite3.OperationalError):
            await reader.execute("DELETE FROM thing")
    finally:
        engine._release_reader(state, reader)


@pytest.mark.asyncio
async def test_close_is_idempotent_and_the_engine_reopens(thing: Any, engine: FastSQLiteEngine) -> None:
    await thing.insert(sample_row(thing))
    await engine.close()
    await engine.close()
    assert await thing.count() == 1
    await thing.insert(sample_row(thing))
    assert await thing.count() == 2


def aiosqlite_threads() -> int:
    """Threads running an aiosqlite connection (its worker thread's target lives in aiosqlite)."""
    return sum(
        1
        for t in threading.enumerate()
        if getattr(getattr(t, "_target", None), "__module__", "").startswith("aiosqlite")
    )


def test_it_works_across_event_loops_without_leaking_threads(db_path: str) -> None:
    engine = FastSQLiteEngine(path=db_path)
    table = counter_table(engine)
    # Counted among aiosqlite's own threads: other tests' threads may start or end meanwhile.
    threads_before = aiosqlite_threads()

    async def setup() -> None:
        await table.create_table()
        await table.insert(table(value=0))

    async def bump() -> int:
        await increment(table, engine)
        return await counter_value(table)

    asyncio.run(setup())
    # This loop closes without engine.close(): the next loop must discard its connections.
    assert asyncio.run(bump()) == 1
    assert asyncio.run(bump()) == 2
    assert table.select().run_sync()[0]["value"] == 2  # Piccolo's run_sync: yet another loop

    asyncio.run(engine.close())
    assert asyncio.run(bump()) == 3
    asyncio.run(engine.close())
    # A closed connection's thread ends a moment after close() returns (later still on a loaded
    # machine); a leaked one never does.
    deadline = time.monotonic() + 5
    while aiosqlite_threads() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert aiosqlite_threads() <= threads_before


# -- scripts (server/db/script.py): one hop, group commit --------------------------------------------
_ADD = Sql('INSERT INTO "counter" ("value") VALUES ({}) RETURNING id')
_VALUES = Sql('SELECT "value" FROM "counter" ORDER BY id')


def add_value(value: int, fail: bool = False) -> Script[int]:
    rows = yield _ADD, (value,)
    if fail:
        raise ValueError(f"script {value} fails after writing")
    return int(rows[0]["id"])


@pytest.mark.asyncio
async def test_scripts_arriving_together_share_a_commit_and_one_failing_is_rolled_back_alone(
    counter: Any, engine: FastSQLiteEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    run_group = sqlite_engine._run_group

    def counting(connection: Any, scripts: list[Any]) -> Any:
        groups.append(len(scripts))
        return run_group(connection, scripts)

    monkeypatch.setattr(sqlite_engine, "_run_group", counting)
    committed: list[int] = []
    await run_script(engine, add_value(-1))  # the writer is open: the rest queue behind one hop

    async def one(value: int) -> int:
        return await run_script(
            engine, add_value(value, fail=value == 7), on_commit=lambda: committed.append(value)
        )

    async with asyncio.timeout(DEADLOCK_TIMEOUT):
        results = await asyncio.gather(*(one(v) for v in range(1, 21)), return_exceptions=True)
    assert isinstance(results[6], ValueError)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 6)
    # Fewer transactions than scripts: they shared commits; every script but the failing one committed,
    # and each after-commit step ran once, in commit order.
    assert sum(groups) == 21 and len(groups) < 21
    assert committed == [v for v in range(1, 21) if v != 7]
    values = [r["value"] for r in await counter.raw(_VALUES.sqlite)]
    assert values == [0, -1, *committed]
    # The lock is free and the engine goes on.
    assert await asyncio.wait_for(run_script(engine, add_value(99)), DEADLOCK_TIMEOUT) > 0


@pytest.mark.asyncio
async def test_a_script_inside_a_transaction_joins_it(counter: Any, engine: FastSQLiteEngine) -> None:
    with pytest.raises(RuntimeError, match="outer"):
        async with engine.transaction():
            await run_script(engine, add_value(5))
            raise RuntimeError("outer")
    assert [r["value"] for r in await counter.raw(_VALUES.sqlite)] == [0]
    async with engine.transaction():
        await run_script(engine, add_value(6))
    assert [r["value"] for r in await counter.raw(_VALUES.sqlite)] == [0, 6]


@pytest.mark.asyncio
async def test_a_failing_lone_script_leaves_nothing_and_releases_the_lock(
    counter: Any, engine: FastSQLiteEngine
) -> None:
    with pytest.raises(ValueError):
        await run_script(engine, add_value(3, fail=True))
    assert [r["value"] for r in await counter.raw(_VALUES.sqlite)] == [0]
    async with asyncio.timeout(DEADLOCK_TIMEOUT):
        async with engine.transaction():
            await counter.insert(counter(value=4))
    assert [r["value"] for r in await counter.raw(_VALUES.sqlite)] == [0, 4]
