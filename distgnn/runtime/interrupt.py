"""SIGINT/SIGTERM during training: stop every rank at the next safe point instead of dying mid-step.

A :class:`StopRequest` is installed as the worker's SIGINT and SIGTERM handler; it only records the
signal. The trainer puts each rank's request into the per-epoch metrics row it already all-reduces, so
all ranks see the same decision after the same epoch (one rank's signal stops every rank, and nobody
is left waiting in a collective). It then optionally checkpoints and raises
:class:`distgnn.errors.TrainingInterrupted`, which the worker turns into one line and exit code
128 + signal (130 for SIGINT, 143 for SIGTERM).

A worker whose training runs in a thread other than its process's main thread (a Ray Train worker actor)
cannot install a handler there: its request is fed instead (:meth:`StopRequest.polling`) from what
another thread or process received -- the main thread's signals, recorded by :func:`record_signals`,
and the Ray driver's, relayed by ``launch/ray_train.py``. The rest of the path is the same.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.25  # how often a polled request reads its source; far below an epoch's 3 s test margin


class StopRequest:
    """Records the first SIGINT/SIGTERM; later ones change nothing (the launcher may forward a signal
    this process already got)."""

    def __init__(self) -> None:
        self.signum = 0

    def __call__(self, signum: int, frame: FrameType | None = None) -> None:
        if not self.signum:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum != 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT/SIGTERM with this request while the block runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def polling(self, source: Callable[[], int], every: float = POLL_S) -> Iterator[StopRequest]:
        """While the block runs, a thread reads ``source()`` (a signal number, 0: none) every ``every``
        seconds and records the first one: for signals this thread cannot handle itself. A failing read
        (the driver gone) is skipped: the job then ends by its failure path, not by this one."""
        done = threading.Event()

        def poll() -> None:
            while not done.wait(every) and not self.requested:
                try:
                    signum = source()
                except Exception:  # noqa: BLE001 - the source's own failure is not a stop request
                    continue
                if signum:
                    self(signum)

        reader = threading.Thread(target=poll, name="distgnn-stop-poll", daemon=True)
        reader.start()
        try:
            yield self
        finally:
            done.set()
            reader.join(timeout=2 * every + 1)


_received = StopRequest()  # what record_signals' handlers got (one per process: signals are per process)


def record_signals() -> bool:
    """Run on a process's main thread: from now on its SIGINT/SIGTERM are only recorded, for
    :func:`received_signal`, instead of handled as before (Ray's worker main loop exits on SIGTERM, which
    would kill the actor mid-epoch). For a process whose training runs in another thread and ends with
    the process (a Ray Train worker actor). False, changing nothing, off the main thread."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        return False
    _received = StopRequest()
    for s in SIGNALS:
        signal.signal(s, _received)
    return True


def received_signal() -> int:
    """The first SIGINT/SIGTERM this process got since :func:`record_signals` (0: none, or not recording)."""
    return _received.signum
