"""The per-worker watchdog (distgnn.runtime.watchdog), on a small stand-in worker: it kills its worker
once the worker has been stopped longer than the grace, leaves a worker stopped for less alone, and never
outlives its worker. The whole-job behaviour (two torchrun agents) is in test_hangs.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from guard_helpers import pid_gone

from distgnn.runtime import watchdog

# A stand-in worker: starts its watchdog (as `distgnn train` does), sets the grace as training does after
# the first epoch, prints both pids, then waits for stdin to close (or to be killed).
WORKER = """
import sys
from distgnn.runtime import watchdog
dog = watchdog.start(rank=1, grace=300)
dog.set_grace(float(sys.argv[1]))
print(dog.pid, flush=True)
sys.stdin.read()
watchdog.stop()
"""


def start_worker(grace: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(grace)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, int(proc.stdout.readline())


def wait_gone(pid: int, within: float) -> float | None:
    """Seconds until ``pid`` is gone (None if it still runs after ``within``)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if pid_gone(pid):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


@pytest.mark.timeout(60)
def test_a_stopped_worker_is_killed_after_the_grace_with_one_line():
    # Told a 1 s grace (it starts with 300 s), the watchdog kills the worker once it has seen it stopped
    # for 1 s: not before (the count starts when it sees the stop, after our SIGSTOP), and far sooner
    # than 300 s. The slack leaves a loaded machine room to schedule the watchdog's 0.5 s polls.
    grace, slack = 1.0, 30.0
    proc, dog = start_worker(grace=grace)
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        assert proc.wait(timeout=grace + slack) == -signal.SIGKILL
        took = time.monotonic() - stopped
        assert grace < took < grace + slack, took
        assert wait_gone(dog, 3) is not None  # the watchdog exits with its worker
        line = watchdog.MESSAGE.format(rank=1, host=socket.gethostname(), grace=grace)
        assert proc.stderr.read().splitlines() == [line]
    finally:
        proc.kill()


@pytest.mark.timeout(30)
def test_a_short_stop_is_left_alone_and_the_watchdog_ends_with_its_worker():
    proc, dog = start_worker(grace=2.0)
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(2.0)  # the count starts again after a continue: 2 s after the stop began is fine
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.poll() is None and not pid_gone(dog)
        proc.stdin.close()  # the worker finishes normally
        assert proc.wait(timeout=10) == 0
        assert wait_gone(dog, 3) is not None
        assert proc.stderr.read() == ""
    finally:
        proc.kill()


@pytest.mark.timeout(30)
def test_a_killed_worker_leaves_no_watchdog_behind():
    proc, dog = start_worker(grace=300.0)
    proc.kill()  # no clean-up code runs in the worker
    proc.wait()
    assert wait_gone(dog, 3) is not None


@pytest.mark.timeout(30)
def test_a_suspended_watchdog_does_not_count_the_time_it_slept():
    # A scheduler suspending the whole job stops the watchdog too; after SIGCONT the worker (stopped
    # first, continued last) must not be killed for the time both were stopped.
    proc, dog = start_worker(grace=1.5)
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(2 * watchdog.POLL_S)  # the watchdog has seen it stopped
        os.kill(dog, signal.SIGSTOP)
        time.sleep(3.0)
        os.kill(dog, signal.SIGCONT)
        time.sleep(watchdog.POLL_S / 2)
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(1.0)
        assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
