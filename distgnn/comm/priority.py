"""Scheduling priority for the communication threads a CPU process group starts.

With gloo, a halo transfer makes progress only while gloo's own threads (the TCP device loop and the
process group's workers) get CPU time. When every core also runs a compute thread (e.g. 2 ranks x 1
thread on 2 cores), those threads queue behind compute at equal priority and a transfer that takes
~40 ms on an idle machine stretches to 150-250 ms, longer than the computation it should hide behind.
Raising their priority (a lower nice value) lets them preempt compute the moment data is ready; they
use little CPU in total, so compute barely slows down. This changes OS scheduling only, never values.

Linux only; lowering a nice value needs CAP_SYS_NICE (or an RLIMIT_NICE allowance), so without it the
boost is skipped and the threads keep the default priority.
"""

from __future__ import annotations

import os
import sys

COMM_NICE = -10  # nice value for communication threads (default 0; -20 is the highest priority)


def thread_ids() -> set[int]:
    """Native IDs of this process's threads (empty where /proc is unavailable)."""
    if sys.platform != "linux":
        return set()
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def boost_threads(tids: set[int], nice: int = COMM_NICE) -> bool:
    """Set the nice value of threads ``tids``; False (and nothing changed) if not permitted."""
    done: list[tuple[int, int]] = []
    for tid in sorted(tids):
        try:
            old = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            done.append((tid, old))
        except ProcessLookupError:  # the thread has exited meanwhile
            continue
        except OSError:  # not permitted: leave every thread as it was
            for t, old in done:
                try:
                    os.setpriority(os.PRIO_PROCESS, t, old)
                except OSError:
                    pass
            return False
    return bool(tids)
