"""The supervisor's pause before replacing a worker that keeps dying (server/workers.py), and how it
names the way a worker ended."""

from __future__ import annotations

from server.workers import MAX_BACKOFF_S, backoff_s, exit_status


def test_a_single_death_is_replaced_at_once_and_repeated_ones_wait_longer_each_time() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [0, 1, 2, 4, 8, 16, MAX_BACKOFF_S]
    assert backoff_s(100) == MAX_BACKOFF_S  # never longer, however long the run of deaths


def test_it_names_the_signal_that_killed_a_worker() -> None:
    assert exit_status(-9) == "killed by SIGKILL"
    assert exit_status(3) == "status 3"
