"""How fast is `POST /api/v1/pickups`, and how far from the floor a bare Litestar app sets?

Run: python -m tests.bench.bench_create_pickup [--seconds 5] [--concurrency 16] [--postgres URL]

Measured in one run, each target in its own `uvicorn` process on a free loopback port, driven by the
keep-alive load generator in tests/bench/loadgen.py (C connections, a 1 s warm-up, then N seconds):

* Lanshou on a fresh SQLite database (`lanshou serve`, demo city seeded, two couriers on duty in the
  zone every pickup lands in, so each create also inserts their offers and the offered event);
* the same with Piccolo's stock SQLiteEngine (LANSHOU_SQLITE_ENGINE=stock, seeded by it too, so the
  file keeps the stock rollback journal rather than inheriting our WAL mode);
* with --postgres URL, the same on PostgreSQL: URL names a server and a database to connect to for
  creating (and finally dropping) a uniquely named database, as LANSHOU_TEST_DATABASE_URL does for tests;
* the bare app (tests/bench/bare_app.py): the same request decoded into the same PickupCreate struct,
  201 with a small JSON, no database, no auth, no middleware.

It prints a table and the Lanshou/bare ratios and asserts nothing: the numbers belong to the machine.
On 2 cores the server gets one and the client the other; the CPU columns show who was saturated.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from tests.bench.loadgen import LoadResult, build_request, load, run
from tests.conftest import ROOT, Database, free_port, stop_process, wait_until_serving

# A pickup inside demo zone CS-TX-02 (天心·坡子街), given in WGS-84 so no datum shift moves it out.
ZONE = "CS-TX-02"
PICKUP = {
    "sender": {"name": "李四", "phone": "+86 139 1234 5678"},
    "address": {
        "province": "湖南省",
        "city": "长沙市",
        "district": "天心区",
        "street": "坡子街街道",
        "detail": "坡子街 88 号 3 栋 1201",
        "lat": 28.165,
        "lng": 112.99,
        "datum": "wgs84",
    },
    "parcel_count": 2,
    "weight_kg": 1.5,
    "note": "下午三点后在家",
}
# The demo's primary couriers of CS-TX-02.
ON_DUTY = ("courier09", "courier10")


class Served:
    """A server command in a subprocess on a free loopback port, up once GET /health says push_ready."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [*args, "--port", str(self.port)]
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_until_serving(self.proc, self.url, self.log_path)
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)

    def cpu_seconds(self) -> float:
        """User + system CPU the server process (all its threads) has used so far; Linux only."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Row:
    target: str
    result: LoadResult
    server_cpu: float  # cores, averaged over warm-up and window
    expected: int = 201

    def line(self) -> str:
        r = self.result
        return (
            f"{self.target:<38}{r.rate:>9,.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
            f"{r.statuses[self.expected]:>9,}{r.bad(self.expected):>7,}"
            f"{self.server_cpu:>8.2f}{self.cpu_ms_per_request:>9.2f}{r.client_cpu:>8.2f}"
        )

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU per request: steadier than req/s on a machine other work shares."""
        return self.server_cpu / self.result.rate * 1000 if self.result.rate else float("nan")


def measure(served: Served, request: bytes, args: argparse.Namespace) -> tuple[LoadResult, float]:
    cpu0, t0 = served.cpu_seconds(), time.monotonic()
    result = run(
        load(
            "127.0.0.1", served.port, request, concurrency=args.concurrency, seconds=args.seconds, warmup=1.0
        )
    )
    server_cpu = (served.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    return result, server_cpu


def pickup_request(port: int, api_key: str | None) -> bytes:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return build_request(
        "POST", "/api/v1/pickups", host=f"127.0.0.1:{port}", body=msgspec.json.encode(PICKUP), headers=headers
    )


def bench_bare(tmp: Path, args: argparse.Namespace) -> Row:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSHOU_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "tests.bench.bare_app", "--log-level", "warning"]
    with Served(cmd, env, tmp / "bare.log") as served:
        r = httpx.post(served.url + "/api/v1/pickups", json=PICKUP)
        assert r.status_code == 201, r.text
        result, server_cpu = measure(served, pickup_request(served.port, None), args)
    return Row("bare Litestar app (no DB)", result, server_cpu)


def bench_lanshou(
    label: str, tmp: Path, args: argparse.Namespace, pg_admin_url: str | None = None, **env: str
) -> Row:
    workdir = tmp / re.sub(r"\W+", "-", label).strip("-").lower()
    workdir.mkdir()
    db = Database(workdir, pg_admin_url, prefix="lanshou_bench")
    try:
        out = db.cli("demo", **env)
        match = re.search(r"(lsk_[A-Za-z0-9_\-]+)", out)
        assert match, out
        api_key = match.group(1)
        cmd = [sys.executable, "-m", "server", "serve"]
        with Served(cmd, db.env(**env), workdir / "server.log") as served:
            couriers = [httpx.Client(base_url=served.url, timeout=30) for _ in ON_DUTY]
            try:
                for username, courier in zip(ON_DUTY, couriers, strict=True):
                    r = courier.post("/auth/login", json={"username": username, "password": "demo"})
                    assert r.status_code == 200, r.text
                    r = courier.post("/api/v1/courier/duty", json={"on_duty": True})
                    assert r.status_code == 200 and r.json()["on_duty"] is True, r.text
                # One create by hand: it must land in the zone and be offered to both couriers on duty.
                r = httpx.post(
                    served.url + "/api/v1/pickups",
                    json=PICKUP,
                    headers={"authorization": f"Bearer {api_key}"},
                )
                assert r.status_code == 201, r.text
                assert r.json()["status"] == "offered" and r.json()["zone"]["code"] == ZONE, r.text
                for courier in couriers:
                    offers = courier.get("/api/v1/courier/pickups").json()["offers"]
                    assert r.json()["id"] in [o["id"] for o in offers], offers
            finally:
                for courier in couriers:
                    courier.close()
            result, server_cpu = measure(served, pickup_request(served.port, api_key), args)
            for status, body in result.samples.items():
                if status != 201:
                    print(
                        f"  {label}: {result.statuses[status]} × {status}, e.g. {body[:300]!r}",
                        file=sys.stderr,
                    )
            if result.errors:
                print(f"  {label}: {result.errors} transport errors", file=sys.stderr)
    finally:
        db.drop()
    return Row(label, result, server_cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per target (default 5)")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--postgres", metavar="URL", help="also run Lanshou on PostgreSQL (admin URL)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lanshou-bench-"))
    rows: list[Row] = []
    try:
        print(
            f"POST /api/v1/pickups · {args.concurrency} keep-alive connections · 1 s warm-up + "
            f"{args.seconds:g} s · loopback · {os.cpu_count()} CPUs · load average "
            f"{os.getloadavg()[0]:.2f} · Python {platform.python_version()}",
            flush=True,
        )
        targets: list[tuple[str, Callable[[], Row]]] = [
            ("bare", lambda: bench_bare(tmp, args)),
            ("fast", lambda: bench_lanshou("Lanshou, SQLite (FastSQLiteEngine)", tmp, args)),
            (
                "stock",
                lambda: bench_lanshou(
                    "Lanshou, SQLite (stock SQLiteEngine)", tmp, args, LANSHOU_SQLITE_ENGINE="stock"
                ),
            ),
        ]
        if args.postgres:
            targets.append(
                (
                    "postgres",
                    lambda: bench_lanshou("Lanshou, PostgreSQL", tmp, args, pg_admin_url=args.postgres),
                )
            )
        for name, bench in targets:
            try:
                rows.append(bench())
            except Exception as exc:  # report it and measure the others
                print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"{'target':<38}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'201s':>9}{'other':>7}"
        f"{'srv CPU':>8}{'ms/req':>9}{'cli CPU':>8}"
    )
    for row in rows:
        print(row.line())
    print(
        "srv CPU / cli CPU: cores used by the server process (all threads) and by the load generator;\n"
        "ms/req: server CPU milliseconds per request; other: non-201 responses and transport errors."
    )
    bare = next((row for row in rows if row.target.startswith("bare")), None)
    if bare is None or not bare.result.rate:
        return
    print()
    for row in rows:
        if row is bare:
            continue
        r, b = row.result, bare.result
        print(
            f"{row.target} / bare: throughput {r.rate / b.rate:.3f}×, median latency "
            f"{r.p50_ms / b.p50_ms:.1f}×, p99 {r.p99_ms / b.p99_ms:.1f}×, "
            f"server CPU per request {row.cpu_ms_per_request / bare.cpu_ms_per_request:.0f}×"
        )


if __name__ == "__main__":
    main()
