"""SIGINT/SIGTERM during training: stop every rank at the next safe point instead of dying mid-step.

A :class:`StopRequest` is installed as the worker's SIGINT and SIGTERM handler; it only records the
signal. The trainer puts each rank's request into the per-epoch metrics row it already all-reduces, so
all ranks see the same decision after the same epoch (one rank's signal stops every rank, and nobody
is left waiting in a collective). It then optionally checkpoints and raises
:class:`distgnn.errors.TrainingInterrupted`, which the worker turns into one line and exit code
128 + signal (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
