"""Stock Piccolo SQLiteEngine vs FastSQLiteEngine under 16 concurrent asyncio tasks.

Run: python -m tests.bench.bench_sqlite_engine [--seconds 3]

Prints throughput and per-operation latency; it asserts nothing, since the numbers depend on the
machine. Each engine gets a fresh database file so neither inherits the other's journal mode.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piccolo.columns import Integer, Varchar
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.table import Table

from server.db.sqlite_engine import FastSQLiteEngine

TASKS = 16


@dataclass
class Result:
    engine: str
    workload: str
    ops: int
    errors: int
    seconds: float
    latencies: list[float]

    def row(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        rate = self.ops / self.seconds
        return f"{self.engine:<18}{self.workload:<24}{rate:>10,.0f}{p50:>10.2f}{p99:>10.2f}{self.errors:>8}"


def bench_table(engine: SQLiteEngine) -> Any:
    class BenchRow(Table, db=engine, tablename="bench_row"):
        name = Varchar(length=50)
        n = Integer()

    return BenchRow


async def hammer(
    engine_name: str, workload: str, seconds: float, operation: Callable[[int], Awaitable[object]]
) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(worker_id: int) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await operation(worker_id * 1_000_000 + i)
            except Exception:  # e.g. "database is locked" from the stock engine
                errors += 1
            else:
                latencies.append(time.perf_counter() - started)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(TASKS)))
    return Result(engine_name, workload, len(latencies), errors, time.perf_counter() - started, latencies)


async def bench_engine(name: str, engine: SQLiteEngine, seconds: float) -> list[Result]:
    table = bench_table(engine)
    await table.create_table()

    async def insert(i: int) -> None:
        await table.insert(table(name=f"row {i}", n=i))

    async def insert_in_transaction(i: int) -> None:
        async with engine.transaction():
            await table.insert(table(name=f"row {i}", n=i))

    results = [
        await hammer(name, "insert (autocommit)", seconds, insert),
        await hammer(name, "insert (transaction)", seconds, insert_in_transaction),
    ]
    max_id = (await table.select(table.id).order_by(table.id, ascending=False).first())["id"]

    async def read(_: int) -> None:
        await table.select().where(table.id == random.randint(1, max_id)).first()

    results.append(await hammer(name, "select by pk", seconds * 2 / 3, read))
    if isinstance(engine, FastSQLiteEngine):
        await engine.close()
    return results


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stock = SQLiteEngine(path=str(Path(tmp) / "stock.sqlite"))
        fast = FastSQLiteEngine(path=str(Path(tmp) / "fast.sqlite"))
        results = await bench_engine("SQLiteEngine", stock, seconds)
        results += await bench_engine("FastSQLiteEngine", fast, seconds)

    print(f"\n{TASKS} concurrent tasks, ~{seconds:g} s per insert workload\n")
    print(f"{'engine':<18}{'workload':<24}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    print("-" * 80)
    for result in results:
        print(result.row())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().seconds))
