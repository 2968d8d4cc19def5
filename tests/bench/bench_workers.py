"""Creates/s of `lanshou serve --workers 2` against one process, on PostgreSQL with push shared through
LISTEN/NOTIFY, in the same run, for uvicorn (what `lanshou serve` runs) and granian.

Run: python -m tests.bench.bench_workers --postgres URL [--rate 600] [--seconds 8] [--rounds 1]
         [--servers uvicorn,granian]

Each measurement is one load harness run (tests/bench/load.py, `--serve-workers K --channels db`) driven
open-loop above what the server can do, so creates/s achieved is its capacity; the harness's own checks
(offers lost or duplicated against the event log) are printed beside it. The configurations alternate
round by round, so drift in what else the machine is doing falls on all of them. The load generator and
PostgreSQL share the machine with the server: on 2 cores, 2 workers compete with both.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from tests.bench import load


def measure(args: argparse.Namespace, server: str, workers: int) -> dict[str, Any]:
    argv = [
        "--postgres", args.postgres, "--channels", "db", "--serve-workers", str(workers),
        "--rate", str(args.rate), "--seconds", str(args.seconds), "--couriers", str(args.couriers),
        "--zones", str(args.zones), "--ceiling-seconds", "0", "--drain", "15",
    ]  # fmt: skip
    if server == "granian":
        argv.append("--granian")
    return load.main(argv)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", metavar="URL", required=True)
    parser.add_argument("--rate", type=float, default=600)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--couriers", type=int, default=100)
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--servers", default="uvicorn,granian")
    args = parser.parse_args()
    runs: list[tuple[str, int, dict[str, Any]]] = []
    for _ in range(args.rounds):
        for server in args.servers.split(","):
            for workers in (1, 2):
                runs.append((server, workers, measure(args, server, workers)))
    print()
    print(f"{'server':<9}{'workers':>8}{'creates/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/create':>15}"
          f"{'lost':>6}{'dup':>5}{'errors':>8}  load average before → after")  # fmt: skip
    for server, workers, r in runs:
        log = r["offers"]["event_log"]
        print(
            f"{server:<9}{workers:>8}{r['creates']['per_second']:>11.0f}{r['http_ms']['p50'] or 0:>9.0f}"
            f"{r['http_ms']['p99'] or 0:>9.0f}{r['server']['cpu_ms_per_create'] or 0:>15.2f}"
            f"{log['lost']:>6}{log['duplicated']:>5}{sum(r['errors'].values()):>8}  "
            f"{r['machine']['load_average_before'][0]:.2f} → {r['machine']['load_average_after'][0]:.2f}"
        )
    for server in args.servers.split(","):
        one = [r["creates"]["per_second"] for s, w, r in runs if s == server and w == 1]
        two = [r["creates"]["per_second"] for s, w, r in runs if s == server and w == 2]
        if one and two:
            print(f"{server}: 2 workers / 1 = {sum(two) / sum(one):.2f}× (mean over {len(one)} round(s))")
    print(f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
