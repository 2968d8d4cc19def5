"""The `lanshou` command: serve, migrate, demo, user create, partner create and revoke."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "server.piccolo_conf")

from server.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"lanshou: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    from server.db.engine import close_engine, get_engine, open_engine

    async def main() -> Any:
        engine = get_engine(settings.database_url)
        await open_engine(engine)
        try:
            return await work()
        finally:
            await close_engine(engine)

    return asyncio.run(main())


async def migrate() -> list[str]:
    """Apply Piccolo migrations from migrations/ (the only way tables are created outside tests);
    returns the ids of those applied, oldest first."""
    from piccolo.apps.migrations.commands.forwards import ForwardsMigrationManager
    from piccolo.apps.migrations.tables import Migration

    manager = ForwardsMigrationManager(app_name="lanshou")
    await manager.create_migration_table()
    app_config = manager.get_app_config(app_name="lanshou")
    modules = manager.get_migration_modules(app_config.resolved_migrations_folder_path)
    done = set(await Migration.get_migrations_which_ran(app_name="lanshou"))
    pending = sorted(set(manager.get_migration_ids(modules)) - done)
    if not pending:
        return []
    # Piccolo's own report is misleading ("4 migrations already complete" beside "4 migrations not yet
    # run" on a new database): keep it for when something goes wrong, and say what happened ourselves.
    piccolo_output = io.StringIO()
    try:
        with contextlib.redirect_stdout(piccolo_output):
            result = await manager.run_migrations(app_config)  # the table and config are in hand
    except Exception:
        print(piccolo_output.getvalue(), file=sys.stderr)
        raise
    if not result.success:
        print(piccolo_output.getvalue(), file=sys.stderr)
        raise SystemExit(f"lanshou: migration failed: {result.message}")
    return pending


def report_migrations(applied: list[str]) -> None:
    for migration_id in applied:
        print(f"  {migration_id} [forwards]")
    if applied:
        n = len(applied)
        print(f"lanshou: applied {n} migration{'s' if n != 1 else ''}; the database is up to date")
    else:
        print("lanshou: database is up to date (no migrations to apply)")


def cmd_serve(args: argparse.Namespace) -> None:
    if args.workers < 1:
        print("lanshou: --workers must be at least 1", file=sys.stderr)
        raise SystemExit(2)
    if args.workers > 1:
        cmd_serve_workers(args)
        return
    # Settings first: they check PROMETHEUS_MULTIPROC_DIR, which the app's metrics use once imported.
    settings = _settings()
    from server.app import create_app
    from server.serve import serve

    serve(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_format=settings.log_format,
        header_timeout_s=settings.header_timeout_s,
        parser=args.http,
    )


def workers_refused(settings: Settings) -> str | None:
    """Why several server processes cannot serve with these settings (None: they can)."""
    if settings.is_sqlite:
        return (
            "--workers needs PostgreSQL (LANSHOU_DATABASE_URL=postgresql://…): SQLite has one writer at a "
            "time, so more processes add contention, not throughput; run one process"
        )
    if not settings.channels_url:
        return (
            "--workers needs LANSHOU_CHANNELS_URL (postgresql://… for LISTEN/NOTIFY, or redis://…): with "
            "in-process channels each worker would push only to its own streams, and couriers connected "
            "to the others would miss offers"
        )
    return None


def cmd_serve_workers(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    # /metrics adds the workers up through a shared directory (server/ops/metrics.py); without one
    # configured, a fresh one for this run, set before any worker starts and removed at the end.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="lanshou-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        settings = _settings()
        refused = workers_refused(settings)
        if refused:
            print(f"lanshou: {refused}", file=sys.stderr)
            raise SystemExit(2)
        from server.serve import serve

        serve(
            "server.app:create_app",  # each worker builds its own app (settings read from the environment)
            host=args.host or settings.host,
            port=args.port or settings.port,
            log_level=settings.log_level,
            log_format=settings.log_format,
            header_timeout_s=settings.header_timeout_s,
            parser=args.http,
            workers=args.workers,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings()
    report_migrations(_run(settings, migrate))


def cmd_demo(args: argparse.Namespace) -> None:
    from server.demo import roster, seed_demo

    settings = _settings()

    async def work() -> tuple[list[str], dict[str, Any]]:
        return await migrate(), await seed_demo()

    applied, info = _run(settings, work)
    report_migrations(applied)
    print("Demo city seeded: central Changsha, 3 stations, 6 zones.")
    print("  couriers courier01 … courier12, dispatcher `dispatch`, admin `admin`; password: demo")
    print("  zones (each with the point at its middle) and who works them:")
    for line in roster():
        print(f"    {line}")
    print(f"  partner `{info['partner']}` API key (shown once, stored hashed):")
    print(f"    {info['api_key']}")
    print(f"Start the server with `lanshou serve`, then open http://{settings.host}:{settings.port}/")


def cmd_user_create(args: argparse.Namespace) -> None:
    from server.admin.schemas import UserCreate, ZoneMembership
    from server.admin.service import add_user
    from server.errors import ApiError
    from server.push.log import Actor

    settings = _settings()
    password = args.password or os.environ.get("LANSHOU_NEW_PASSWORD") or getpass.getpass("Password: ")
    zones = []
    for spec in args.zone or []:
        code, _, role = spec.partition(":")
        zones.append(ZoneMembership(zone=code, role=role or "primary"))  # type: ignore[arg-type]
    data = UserCreate(
        username=args.username,
        password=password,
        role=args.role,
        display_name=args.name,
        phone=args.phone,
        station=args.station,
        zones=zones,
    )
    try:
        user = _run(settings, lambda: add_user(data, Actor("admin")))
    except ApiError as exc:
        print(f"lanshou: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"created {user.role} {user.username} (user id {user.id})")


def cmd_partner_create(args: argparse.Namespace) -> None:
    from server.auth.service import create_partner

    settings = _settings()
    key = _run(settings, lambda: create_partner(args.code, args.name or args.code))
    print(f"partner {args.code}: API key (shown once, stored hashed):\n  {key}")


def cmd_partner_revoke(args: argparse.Namespace) -> None:
    from server.auth.service import revoke_partner

    settings = _settings()
    if not _run(settings, lambda: revoke_partner(args.code)):
        print(f"lanshou: no partner {args.code!r}", file=sys.stderr)
        raise SystemExit(1)
    print(
        f"partner {args.code}: revoked; its API key is refused and its webhooks stopped "
        "(`lanshou partner create --code` gives it a new key)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lanshou", description="Lanshou doorstep pickup dispatch")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the web server",
        description="Run the web server until SIGINT or SIGTERM (open SSE streams are ended at once; the "
        "apps reconnect and resume from the event log). With --workers N > 1, SIGHUP replaces the workers "
        "one at a time without closing the port (a release picked up with no gap).",
    )
    serve.add_argument("--host", help="address to listen on (default LANSHOU_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default LANSHOU_PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (default 1). More than one needs PostgreSQL and "
        "LANSHOU_CHANNELS_URL (postgresql://… or redis://…) so that push reaches every process; "
        "about one per CPU core (README: Operations, scale-out)",
    )
    serve.add_argument(
        "--http",
        choices=["auto", "httptools", "h11"],
        default="auto",
        help="HTTP parser (auto: httptools when installed, else h11)",
    )
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="create or upgrade the database tables").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="migrate and seed the demo city (Changsha)").set_defaults(func=cmd_demo)
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create a user")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=["courier", "dispatcher", "admin"])
    create.add_argument("--password", help="or LANSHOU_NEW_PASSWORD, or asked for")
    create.add_argument("--name", help="display name")
    create.add_argument("--phone")
    create.add_argument("--station", help="station code")
    create.add_argument("--zone", action="append", help="zone code, optionally :backup (repeatable)")
    create.set_defaults(func=cmd_user_create)
    partner = sub.add_parser("partner", help="manage partners").add_subparsers(
        dest="partner_command", required=True
    )
    pcreate = partner.add_parser("create", help="create a partner or rotate its API key")
    pcreate.add_argument("--code", required=True)
    pcreate.add_argument("--name")
    pcreate.set_defaults(func=cmd_partner_create)
    prevoke = partner.add_parser("revoke", help="revoke a partner's API key and stop its webhooks")
    prevoke.add_argument("--code", required=True)
    prevoke.set_defaults(func=cmd_partner_revoke)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
