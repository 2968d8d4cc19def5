"""`lanshou serve` under cProfile, for the load harness's --profile: where a server spends its CPU.

Run: python -m tests.bench.profiled_serve OUT.prof [serve arguments …]

`python -m cProfile -m server serve` writes nothing: on SIGTERM uvicorn shuts down, then raises the
signal again with the handler it found at start, and the default handler ends the process before
cProfile can write. Here that handler is ours: it writes the profile, then exits.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys

profile = cProfile.Profile()
written = False


def write_and_exit(*_: object) -> None:
    global written
    if not written:
        written = True
        profile.disable()
        profile.dump_stats(OUT)
    sys.exit(0)


if __name__ == "__main__":
    OUT = sys.argv[1]
    sys.argv = ["lanshou", "serve", *sys.argv[2:]]
    signal.signal(signal.SIGTERM, write_and_exit)
    signal.signal(signal.SIGINT, write_and_exit)
    profile.enable()
    try:
        runpy.run_module("server", run_name="__main__", alter_sys=True)
    finally:
        write_and_exit()
