"""Peak RSS of each rank of a multi-process run, read from /proc while it runs (Linux; stdlib only).

A driver's ``wait4`` gives one peak for a whole process tree (the largest of the launcher and every
worker), not one per rank. This samples the tree under the launched process every ``interval`` seconds:
for each descendant whose environment names a ``RANK`` (torch's elastic agent sets it for every worker
it starts as a new program: torchrun) or whose name is ``distgnn-r<RANK>`` (``distgnn train --nproc``'s
workers, forked from a forkserver, whose /proc environment is the server's; distgnn/runtime/forkserver.py),
its kernel-kept high-water mark ``VmHWM`` (peak resident set, the same figure ``ru_maxrss`` reports). A
rank's figure is the last ``VmHWM`` read before it exited, so growth in its final ``interval`` is missed.
"""

from __future__ import annotations

import threading
from pathlib import Path

PROC = Path("/proc")
WORKER_NAME = "distgnn-r"  # distgnn.runtime.forkserver.NAME_PREFIX (this module imports nothing of distgnn)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's ``children`` list; empty once it is gone)."""
    out: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        seen += kids
        todo += kids
    return seen


def rank_of(pid: int) -> int | None:
    """The ``RANK`` in the process's environment, else in its ``distgnn-r<RANK>`` name (None: not a
    rank, or not readable)."""
    try:
        env = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
        name = (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return None
    values = [item[5:] for item in env if item.startswith(b"RANK=")]
    if not values and name.startswith(WORKER_NAME):
        values = [name[len(WORKER_NAME) :].encode()]
    return int(values[0]) if values and values[0].isdigit() else None


def peak_rss_mb(pid: int) -> float | None:
    """``VmHWM`` of ``pid`` in MB (MiB), None when it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


class RankPeaks:
    """Samples the ranks under ``pid`` in a thread between :meth:`start` and :meth:`stop`."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ranks: dict[int, int] = {}  # pid -> rank, once known

    def sample(self, pid: int) -> None:
        for child in descendants(pid):
            rank = self._ranks.get(child)
            if rank is None:
                rank = rank_of(child)
                if rank is None:
                    continue
                self._ranks[child] = rank
            mb = peak_rss_mb(child)
            if mb is not None:
                self.peaks[rank] = max(self.peaks.get(rank, 0.0), mb)

    def start(self, pid: int) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample(pid)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict[int, float]:
        """Stop sampling; the peak RSS in MB of each rank seen, by rank."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return dict(sorted(self.peaks.items()))
