"""`lanshou serve --workers N`: N server processes on one listening socket, and a parent that keeps them.

The parent holds the port, starts N workers (fresh interpreters: multiprocessing's spawn) that each build
the app from its factory and serve it with server/serve.py's Server (so each keeps the request-head
deadline and ends its SSE streams at a signal), and then only watches. Each worker listens on a socket of
its own bound with SO_REUSEPORT, so the kernel spreads new connections evenly over the workers; on one
shared listening socket the first worker to wake took a whole burst of connections (after a restart,
every app reconnecting at once), and kept those streams. The parent's own socket is bound, never
listened on: it keeps the port and finds a port in use before any worker starts.

* SIGINT / SIGTERM: every worker is told to stop (each ends its streams at once, as one process does)
  and the parent exits when they have.
* SIGHUP: a rolling restart, one worker at a time: its replacement is started and, once it accepts
  connections, the old worker is stopped. Its streams end cleanly and the apps reconnect (to the other
  workers) resuming from the event log with Last-Event-ID; the port never closes. (A connection the
  kernel had queued for the old worker but it had not yet accepted is reset as it closes: the apps
  reconnect, and partner clients retry with their Idempotency-Key.)
  Used to pick up a new release without a gap.
* a worker that dies (killed, crashed, exited by itself) is replaced at once; the others keep serving
  the port meanwhile (the kernel sends new connections to the sockets still listening), and the dead
  one's live gauges leave /metrics (its counters stay: they are what it counted). A worker that dies
  within STABLE_S of starting, the one before it in that slot having done the same, is replaced only
  after a pause that doubles each time (1 s, 2 s, 4 s … up to MAX_BACKOFF_S): a crash at every start
  (the database refusing connections, memory short) is retried, not spun on. At the first start a
  worker that fails before it ever served (a bad database URL, a port in use) stops the whole server
  with status 3, as one process does: nothing is serving yet, and a setting will not fix itself.

What makes several processes correct lives elsewhere: push goes through the channels backend (every
process hears every event, server/push/hub.py), durable timers are claimed row by row (SKIP LOCKED,
server/dispatch/scheduler.py), webhook partners are leased (server/webhooks/service.py), throttles and
sessions are in the database, and /metrics adds the workers up through prometheus_client's multiprocess
directory (server/ops/metrics.py; the command makes a temporary one when none is configured).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType

from server.serve import Config, Server

log = logging.getLogger("uvicorn.error")

STARTUP_FAILURE = 3  # uvicorn's status for a server that could not start
# How long a new worker may take to start serving (migrations are not run here: seconds at most).
READY_TIMEOUT_S = 60.0
# How long a stopping worker may take: its streams end at once, other requests get uvicorn's 3 s.
STOP_TIMEOUT_S = 15.0
# A worker that dies sooner than this after it started, following one that did the same, is replaced
# after a pause (1 s, doubling each time a replacement dies that soon, up to MAX_BACKOFF_S).
STABLE_S = 10.0
MAX_BACKOFF_S = 30.0


def reuseport_socket(config: Config) -> socket.socket:
    """A socket bound to the server's address with SO_REUSEPORT (one per worker, and the parent's)."""
    family = socket.AF_INET6 if config.host and ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((config.host, config.port))
    return sock


def refuse_a_shared_port(config: Config) -> None:
    """Raises EADDRINUSE when anything listens on the port already, another Lanshou's workers included:
    their sockets have SO_REUSEPORT too, so ours would bind beside them and the kernel would split the
    connections between two servers. A socket without SO_REUSEPORT cannot bind beside a listener, and
    SO_REUSEADDR keeps the connections of a previous run that linger in TIME_WAIT from counting."""
    if not config.port:
        return
    family = socket.AF_INET6 if config.host and ":" in config.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((config.host, config.port))


def _run_worker(config: Config, ready: Event, go: Event) -> None:
    """A worker process's body (runs in the spawned interpreter): start the app, say so, and listen on
    a socket of its own once the parent says go."""
    config.configure_logging()  # the parent's logging setup does not travel with spawn
    sockets = [reuseport_socket(config)]

    def ready_then_wait() -> None:
        ready.set()
        go.wait()

    server = Server(config, before_listening=ready_then_wait)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn re-raises the signal it handled once it has shut down
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Worker:
    """A worker process. `ready` is set once its app has started (database open, push subscribed); it
    serves the socket once `go` is set."""

    def __init__(self, config: Config, *, go: bool = True, deaths_in_a_row: int = 0) -> None:
        self.started_at = time.monotonic()
        # Workers before this one in its slot that died one after another, each after the first within
        # STABLE_S of its start (the pause before the next replacement grows with it).
        self.deaths_in_a_row = deaths_in_a_row
        context = multiprocessing.get_context("spawn")
        self.ready = context.Event()
        self.go = context.Event()
        if go:
            self.go.set()
        self.process: SpawnProcess = context.Process(
            target=_run_worker, args=(config, self.ready, self.go), name="lanshou-worker"
        )
        self.process.start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def stop(self) -> None:
        self.go.set()  # one still waiting to listen would otherwise wait out STOP_TIMEOUT_S
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGTERM)

    def join(self) -> None:
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            log.error("worker [%d] did not stop in %.0f s; killed", self.pid, STOP_TIMEOUT_S)
            self.process.kill()
            self.process.join()
        _forget_metrics_of(self.pid)


def exit_status(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"status {exitcode}"


def backoff_s(deaths_in_a_row: int) -> float:
    """The pause before starting a worker after `deaths_in_a_row` deaths in its slot: none
    after one (a single crash is replaced at once), then 1 s, 2 s, 4 s … up to MAX_BACKOFF_S."""
    if deaths_in_a_row <= 1:
        return 0.0
    return min(2.0 ** (deaths_in_a_row - 2), MAX_BACKOFF_S)


def _forget_metrics_of(pid: int) -> None:
    """A worker's live gauges leave the shared metrics directory with it (a clean stop does this
    itself; a crash does not)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class Supervisor:
    def __init__(self, config: Config, workers: int) -> None:
        self.config = config
        self.count = workers
        self.workers: list[Worker] = []
        self.signals: list[int] = []
        # Slots whose worker died, and when (monotonic) their replacement may start.
        self.restart_at: dict[int, float] = {}

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; the exit status (0, or 3 when the workers could not start)."""
        try:
            refuse_a_shared_port(self.config)
            holder = reuseport_socket(self.config)
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", self.config.host, self.config.port, exc)
            return STARTUP_FAILURE
        self.config.port = holder.getsockname()[1]  # port 0: the one the system gave, for every worker
        log.info("listening on http://%s:%d with %d workers", self.config.host, self.config.port, self.count)
        try:
            return self._run()
        finally:
            holder.close()

    def _run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        # The port opens once every worker is up: the first up would otherwise take every connection
        # the apps make at once after a restart (thousands of streams), and keep them.
        self.workers = [Worker(self.config, go=False) for _ in range(self.count)]
        if all(self._wait_ready(w) for w in self.workers):
            for worker in self.workers:
                worker.go.set()
            log.info("%d workers serving [%s]", self.count, ", ".join(str(w.pid) for w in self.workers))
            status = self._watch()
        else:
            status = 0 if self._stop_requested() else STARTUP_FAILURE
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join()
        log.info("all workers stopped")
        return status

    def _watch(self) -> int:
        while True:
            while self.signals:
                sig = self.signals.pop(0)
                if sig in (signal.SIGINT, signal.SIGTERM):
                    log.info("received %s: stopping the workers", signal.Signals(sig).name)
                    return 0
                if sig == signal.SIGHUP:
                    self._rolling_restart()
            for index, worker in enumerate(self.workers):
                if worker.process.is_alive():
                    continue
                if index not in self.restart_at:
                    self._schedule_replacement(index, worker)
                if time.monotonic() >= self.restart_at[index]:
                    del self.restart_at[index]
                    new = Worker(self.config, deaths_in_a_row=worker.deaths_in_a_row)
                    self.workers[index] = new
                    log.warning("worker [%d] replaced by [%d]", worker.pid, new.pid)
            time.sleep(0.2)

    def _schedule_replacement(self, index: int, dead: Worker) -> None:
        dead.join()
        lived_s = time.monotonic() - dead.started_at
        # Deaths in a row: one that had lived STABLE_S starts the count again.
        dead.deaths_in_a_row = dead.deaths_in_a_row + 1 if lived_s < STABLE_S else 1
        pause_s = backoff_s(dead.deaths_in_a_row)
        self.restart_at[index] = time.monotonic() + pause_s
        what = "exited" if dead.ready.is_set() else "failed before serving"
        status = exit_status(dead.process.exitcode)
        if pause_s:
            log.error(
                "worker [%d] %s (%s) %.1f s after it started (%d deaths in a row); starting another in %.0f s",
                dead.pid, what, status, lived_s, dead.deaths_in_a_row, pause_s,
            )  # fmt: skip
        else:
            log.warning("worker [%d] %s (%s); starting another", dead.pid, what, status)

    def _rolling_restart(self) -> None:
        log.info("received SIGHUP: replacing the workers one at a time")
        for index, old in enumerate(list(self.workers)):
            new = Worker(self.config)
            if not self._wait_ready(new):
                new.process.kill()
                new.join()
                if not self._stop_requested():
                    log.error("a new worker did not start; keeping worker [%d], restart abandoned", old.pid)
                return
            self.workers[index] = new
            self.restart_at.pop(index, None)  # a dead worker waiting for its replacement has it now
            old.stop()
            old.join()
            log.info("worker [%d] replaced by [%d]", old.pid, new.pid)

    def _wait_ready(self, worker: Worker) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if worker.ready.wait(0.1):
                return True
            if not worker.process.is_alive():
                return False
            if self._stop_requested():
                return False
        return False

    def _stop_requested(self) -> bool:
        return any(sig in (signal.SIGINT, signal.SIGTERM) for sig in self.signals)
