"""A per-worker watchdog process: a worker stopped (SIGSTOP) for longer than its peers wait for it is killed.

A stopped process cannot act, and its launcher sees it running: torch elastic's agent (torchrun,
``--nproc``) only checks whether its workers exited, so under multi-node torchrun the stopped rank's agent
waits forever while the other nodes' ranks time out and exit. Each worker of a multi-process job starts
this small process (a child, so SIGSTOP sent to the worker does not stop it; it runs the standard library
only, started with ``python -I -S``). Every ``POLL_S`` it reads the worker's state from ``/proc``. Once it
has seen the worker stopped (``T``; not ``t``, a debugger's stop) without a break for longer than the
grace -- the job's current collective timeout, after which every peer has given up on it -- it prints
one line naming the rank and the cause and SIGKILLs the worker; the launcher then sees a dead worker and
ends (or restarts) the group. A gap in its own polling (it was stopped too: a scheduler suspending the
whole job) starts the count again. It exits as soon as its worker exits (its parent changes, or the
worker closes the pipe the grace updates arrive on), so it never outlives it.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

POLL_S = 0.5
MESSAGE = (
    "distgnn train: error: rank {rank} on {host}: stopped (SIGSTOP) for more than {grace:g} s, longer than "
    "its peers wait for it (--collective-timeout); killed by its watchdog"
)


class Watchdog:
    """The worker's handle on its watchdog process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def set_grace(self, seconds: float) -> None:
        """How long the worker may stay stopped from now on (the group's collective timeout)."""
        try:
            self.proc.stdin.write(f"{float(seconds)}\n".encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the watchdog is gone (or closed): nothing to update
            pass

    def close(self) -> None:
        """The worker is done: the watchdog sees the pipe close and exits."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2 * POLL_S + 1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_active: Watchdog | None = None


def start(rank: int, grace: float) -> Watchdog | None:
    """Start this process's watchdog (None where there is no ``/proc`` to read a state from)."""
    global _active
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        return None
    cmd = [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), str(rank), str(grace)]
    _active = Watchdog(subprocess.Popen(cmd, stdin=subprocess.PIPE, close_fds=True))
    return _active


def set_grace(seconds: float) -> None:
    """Tell this process's watchdog, if it has one, the group's new collective timeout."""
    if _active is not None:
        _active.set_grace(seconds)


def stop() -> None:
    """Stop this process's watchdog, if it has one."""
    global _active
    if _active is not None:
        _active.close()
        _active = None


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``/proc/PID/stat``), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def watch(pid: int, rank: int, grace: float, poll: float = POLL_S) -> None:
    """The watchdog's loop (in the child): return when ``pid``, its parent, exits or was killed here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the worker, which ends us
    fd, pending = sys.stdin.fileno(), b""
    stopped_since, last = None, time.monotonic()
    while os.getppid() == pid:
        if select.select([fd], [], [], poll)[0]:
            data = os.read(fd, 4096)
            if not data:
                return  # the worker closed the pipe (done, or gone)
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                grace = float(line)
        now, state = time.monotonic(), proc_state(pid)
        if state is None or state in "ZX":
            return
        if state != "T":
            stopped_since = None
        elif stopped_since is None or now - last > 3 * poll:  # first seen, or we were not watching
            stopped_since = now
        last = now
        if stopped_since is not None and now - stopped_since > grace:
            print(
                MESSAGE.format(rank=rank, host=socket.gethostname(), grace=grace), file=sys.stderr, flush=True
            )
            os.kill(pid, signal.SIGKILL)
            return


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
