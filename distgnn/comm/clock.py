"""Clocks for the epoch and communication timers: host timers on CPU, CUDA events on CUDA.

On CPU a wall-clock reading after a call is the time the call took. On CUDA it is not: kernels and NCCL
transfers run asynchronously on their streams, so ``perf_counter`` around a launch measures the launch,
and with NCCL ``work.wait()`` only makes the current stream wait (the host does not block), so an exposed
communication time read on the host is ~0. A :class:`DeviceClock` instead records a CUDA event on the
current stream at each mark; the seconds between two marks are the GPU time between them, read when
the later event has completed. Reading is deferred: timers keep (start, end) marks and turn them into
seconds only when asked (at the batched metrics reduction), so timing adds no host synchronisation
per step.

A clock's marks are opaque; ``seconds(start, end)`` is only valid once ``end`` has completed, which
``wait(end)`` guarantees (a no-op on the host clock).
"""

from __future__ import annotations

import time
from typing import Any

import torch

Mark = Any  # a float (host clock) or a recorded torch.cuda.Event (device clock)


class HostClock:
    """Wall-clock marks (``time.perf_counter``): exact for CPU work, read immediately."""

    deferred = False  # seconds are known as soon as the end mark is taken
    polls = True  # a non-blocking completion check of a transfer is a meaningful time point

    def mark(self) -> Mark:
        return time.perf_counter()

    def wait(self, mark: Mark) -> None:
        return None

    def seconds(self, start: Mark, end: Mark) -> float:
        return float(end - start)


class DeviceClock:
    """CUDA-event marks on the current stream: the GPU time between two points of the stream's work."""

    deferred = True  # an event's time is known only once the stream has reached it
    polls = False  # the host observing a transfer says nothing about when the stream saw it

    def __init__(self, event_factory: Any = None) -> None:
        self._new = event_factory or (lambda: torch.cuda.Event(enable_timing=True))

    def mark(self) -> Mark:
        event = self._new()
        event.record()
        return event

    def wait(self, mark: Mark) -> None:
        mark.synchronize()

    def seconds(self, start: Mark, end: Mark) -> float:
        return start.elapsed_time(end) / 1000.0  # milliseconds -> seconds


def clock_for(device: torch.device | str) -> HostClock | DeviceClock:
    """The clock that measures work on ``device``: CUDA events for CUDA devices, host timers otherwise."""
    return DeviceClock() if torch.device(device).type == "cuda" else HostClock()


class Seconds:
    """A sum of (start, end) spans of one clock, turned into seconds when read (``float(s)``).

    Spans of a :class:`DeviceClock` are resolved with one ``wait`` on the latest end mark (events on one
    stream complete in order), so reading costs one host synchronisation however many spans there are.
    """

    def __init__(self, clock: HostClock | DeviceClock, total: float = 0.0) -> None:
        self.clock = clock
        self._total = total
        self._spans: list[tuple[Mark, Mark]] = []

    def add(self, start: Mark, end: Mark) -> None:
        if self.clock.deferred:
            self._spans.append((start, end))
        else:
            self._total += self.clock.seconds(start, end)

    def add_seconds(self, seconds: float) -> None:
        self._total += seconds

    def __float__(self) -> float:
        if self._spans:
            self.clock.wait(self._spans[-1][1])
            self._total += sum(self.clock.seconds(a, b) for a, b in self._spans)
            self._spans = []
        return self._total

    def copy(self) -> Seconds:
        out = Seconds(self.clock, self._total)
        out._spans = list(self._spans)
        return out

    def __repr__(self) -> str:
        return f"Seconds({self._total!r} + {len(self._spans)} pending spans)"
