"""Units of work that reach the database in one round trip: raw statements, prepared once, run as a script.

Why: a pickup create is about a dozen statements. Built by Piccolo's query objects each cost more CPU
than SQLite takes to run it, and each was a hop to the SQLite connection's thread (and back) while the
process's one writer lock was held, so the lock, not the CPU, capped creates per second. Here the hot
path's statements are plain parameterised SQL written once (`Sql`), and the whole unit runs where the
connection is: on SQLite in the writer's own thread, from BEGIN IMMEDIATE to COMMIT, in one hop. Piccolo
stays for the schema, migrations and every cold path.

A script is a generator: it yields `(Sql, args)` and is sent back the rows (dicts) of that statement, and
returns its result:

    def count_offers(pickup_id: int) -> Script[int]:
        rows = yield _COUNT, (pickup_id,)
        return rows[0]["n"]

A script yields `TURN` just before it writes the event log (server/push/log.py): the runner then takes
the process's publish-order lock (`on_turn`), which must be held from handing out event ids to
publishing them. On SQLite write transactions already take turns, so it is taken with the writer lock,
before the hop; on PostgreSQL it is taken when the script reaches that point.

Drivers:
* FastSQLiteEngine (server/db/sqlite_engine.py): the script runs in the writer's thread
  (`FastSQLiteEngine.run_script`); sqlite3 keeps each distinct SQL text prepared (its statement cache).
  Scripts that arrive while the writer is busy share one transaction (group commit, a savepoint each):
  a COMMIT was a third of a create's database time.
* PostgreSQL (and Piccolo's stock SQLite engine, for comparisons): each statement is one call on the
  transaction's connection; asyncpg prepares each distinct SQL text once per connection and reuses it.
Inside a transaction the caller already holds (a Piccolo `engine.transaction()`, a unit_of_work), a
script joins it: no BEGIN or COMMIT of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from functools import lru_cache
from typing import Any, TypeVar

from piccolo.engine.base import Engine
from piccolo.engine.sqlite import TransactionType
from piccolo.querystring import QueryString

T = TypeVar("T")

# What a script yields: a statement and its arguments, or TURN; what it is sent: the statement's rows.
Step = tuple["Sql", tuple[Any, ...]]
Script = Generator[Any, list[dict[str, Any]], T]
OnTurn = Callable[[], Awaitable[None]] | None
OnCommit = Callable[[], None] | None


class _Turn:
    def __repr__(self) -> str:
        return "TURN"


TURN = _Turn()


class Sql:
    """One statement's text with `{}` placeholders, compiled once to each engine's own (`?`, `$n`)."""

    __slots__ = ("postgres", "sqlite", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts = text.split("{}")
        self.sqlite = "?".join(parts)
        self.postgres = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))

    def __repr__(self) -> str:
        return f"Sql({self.text!r})"


@lru_cache(maxsize=256)
def insert_sql(table: str, columns: tuple[str, ...], rows: int, returning: tuple[str, ...] = ()) -> Sql:
    """INSERT of `rows` rows of these columns (one statement text per shape, built once)."""
    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join(["{}"] * len(columns)) + ")"
    text = f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([one] * rows)
    if returning:
        text += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    return Sql(text)


# Bound parameters per statement: well inside SQLite's 32,766 and PostgreSQL's 32,767.
MAX_PARAMETERS = 20_000


def insert_steps(
    table: str, rows: list[dict[str, Any]], returning: tuple[str, ...] = (), chunk: int = 0
) -> Script[list[dict[str, Any]]]:
    """INSERT `rows` (dicts with the same keys, column names) as few statements as the limits allow;
    the `returning` columns of the rows written, in the order given."""
    if not rows:
        return []
    columns = tuple(rows[0])
    per_statement = chunk or max(1, MAX_PARAMETERS // len(columns))
    written: list[dict[str, Any]] = []
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        args = tuple(row[c] for row in part for c in columns)
        written.extend((yield insert_sql(table, columns, len(part), returning), args))
    return written


async def run_script(
    engine: Engine, script: Script[T], on_turn: OnTurn = None, on_commit: OnCommit = None
) -> T:
    """Run the script as one transaction (or inside the caller's, without `on_commit`): see the module
    docstring. `on_commit` runs once it has committed, before the next transaction's own."""
    from server.db.sqlite_engine import FastSQLiteEngine

    if isinstance(engine, FastSQLiteEngine):
        return await engine.run_script(script, on_turn, on_commit)
    result = await _run_statement_by_statement(engine, script, on_turn)
    if on_commit is not None:
        on_commit()
    return result


def drive_in_thread(connection: Any, script: Script[T], own_transaction: bool) -> T:
    """Run a whole script on a sqlite3 connection, in the thread that owns it (TURN is a no-op here:
    the runner took the publish-order lock before the hop)."""
    if own_transaction:
        connection.execute("BEGIN IMMEDIATE")
    try:
        step = script.send(None)  # type: ignore[arg-type]
        while True:
            if step is TURN:
                step = script.send([])
                continue
            sql, args = step
            step = script.send(connection.execute(sql.sqlite, args).fetchall())
    except StopIteration as done:
        if own_transaction:
            connection.execute("COMMIT")
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        script.close()
        if own_transaction and connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


async def _run_statement_by_statement(engine: Engine, script: Script[T], on_turn: OnTurn) -> T:
    postgres = engine.engine_type in ("postgres", "cockroach")
    # Joins the caller's transaction if there is one. Piccolo's stock SQLite engine begins DEFERRED,
    # and a DEFERRED transaction that reads and then writes fails at once with "database is locked"
    # when another holds the write lock: IMMEDIATE, as every writer here.
    transaction_context = (
        engine.transaction() if postgres else engine.transaction(transaction_type=TransactionType.immediate)  # type: ignore[call-arg]
    )
    async with transaction_context as transaction:
        connection = transaction.connection
        try:
            step = script.send(None)  # type: ignore[arg-type]
            while True:
                rows: list[dict[str, Any]]
                if step is TURN:
                    if on_turn is not None:
                        await on_turn()
                    rows = []
                elif postgres:
                    sql, args = step
                    rows = [dict(r) for r in await connection.fetch(sql.postgres, *args)]
                else:
                    sql, args = step
                    rows = list(await connection.execute_fetchall(sql.sqlite, args))
                step = script.send(rows)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except BaseException:
            script.close()
            raise


async def fetch(engine: Engine, sql: Sql, *args: Any) -> list[dict[str, Any]]:
    """One statement on its own (a read or a lone write on a hot path): the SQL written once, no query
    object built per call; in the caller's transaction if there is one, else on a reader (SQLite, for
    a SELECT) or the pool."""
    from server.db.sqlite_engine import FastSQLiteEngine

    if isinstance(engine, FastSQLiteEngine):
        return await engine._run(sql.sqlite, list(args))
    if engine.engine_type in ("postgres", "cockroach"):
        transaction = engine.current_transaction.get()
        if transaction is not None:
            records = await transaction.connection.fetch(sql.postgres, *args)
        elif getattr(engine, "pool", None) is not None:
            records = await engine._run_in_pool(sql.postgres, args)  # type: ignore[attr-defined]
        else:
            records = await engine._run_in_new_connection(sql.postgres, args)  # type: ignore[attr-defined]
        return [dict(r) for r in records]
    return list(await engine.run_querystring(QueryString(sql.text, *args)))
