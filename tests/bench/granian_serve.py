"""Lanshou under granian instead of uvicorn, for comparing the two with the load harness
(`python -m tests.bench.load --granian …`; README "Operations", scale-out, has the figures).

Run: python -m tests.bench.granian_serve [--workers N] --port P

Only for measuring: `lanshou serve` runs uvicorn, with the request-head deadline and the streams ended
at a signal (server/serve.py) that this does not have. Settings come from the environment as for
`lanshou serve`; several workers get a temporary prometheus_client multiprocess directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from granian import Granian  # type: ignore[import-not-found]
from granian.constants import Interfaces, Loops  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="lanshou-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        Granian(
            "server.app:create_app",
            factory=True,
            address="127.0.0.1",
            port=args.port,
            interface=Interfaces.ASGI,
            workers=args.workers,
            loop=Loops.uvloop,
            http="1",
            websockets=False,
            log_level="warning",
        ).serve()
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
