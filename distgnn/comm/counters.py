"""Byte and time counters for the communication layer, reset once per epoch.

Bytes are what actually goes on the wire (after any wire-dtype cast), counted per call site ``key``,
per direction (``fwd`` halo rows, ``bwd`` halo gradients, ``eval`` rows of an evaluation pass) and per
peer. Times are wall-clock seconds:

- ``comm``: from the launch of an exchange until the transfer is first observed complete (the
  overlapped schedule polls it between blocks of computation; otherwise at the end of ``wait()``), so
  it stays close to the transfer time even when the caller waits late;
- ``exposed_comm``: the part of that the caller spent blocked (launching the transfer and in
  ``wait()``), i.e. communication not hidden behind computation;
- ``compute``: aggregation work the strategy times around its kernels.

The same times are kept per exchange slot ``(key, direction)`` as ``launch``, ``in_flight`` (= comm)
and ``wait`` seconds. With :meth:`start_recording` every epoch's numbers are archived when the next
epoch resets the counters (the measured profile, see ``distgnn.profile.recorder``), with each call's
launch and completion as Unix times on the host clock (``spans``): other ranks' spans of the same call
tell when the last rank launched, so the transfer can be timed without the ranks' skew
(``distgnn.profile.skew``); with ``trace`` on,
launches, waits and compute blocks become named ``torch.profiler`` ranges (``halo/layer3/fwd/launch``,
``halo/layer3/fwd/wait``, ``aggregate/inner`` while a transfer is in flight, else ``aggregate``).

Times are kept by the counters' clock (``distgnn.comm.clock``): host timers on CPU; on CUDA, events on the
current stream, read only when a time is asked for (``times``, ``epoch_record``, or a lazy
:meth:`seconds` the trainer reads at its batched reduction), so accounting adds no per-step host sync.
With events, ``comm`` runs from the launch to the point where the current stream has waited for the
transfer, and ``exposed_comm`` is the time the stream spent in that wait (plus the launch).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

from torch.profiler import record_function

from distgnn.comm.clock import HostClock, Mark, Seconds

Direction = str  # "fwd" | "bwd" | "eval"
Slot = tuple[Hashable, Direction]
SLOT_TIMES = ("launch", "in_flight", "wait")


class CommCounters:
    """Per-epoch bytes per (key, direction, peer) and named timers."""

    def __init__(self, world_size: int, clock: object | None = None) -> None:
        self.world_size = world_size
        self.clock = clock if clock is not None else HostClock()
        self.trace = False  # emit torch.profiler ranges (set by the profiler session)
        self.epochs: list[dict] | None = None  # archived epochs while recording
        self._in_flight = 0
        # perf_counter is per machine; spans are shifted to Unix time so ranks' spans compare.
        self._unix_offset = time.time() - time.perf_counter()
        self.reset()

    def reset(self) -> None:
        """Start a new epoch: zero every byte count and timer (archiving the last one when recording)."""
        if self.epochs is not None and self.calls:
            self.epochs.append(self.epoch_record())
        self.sent: dict[Slot, list[int]] = {}
        self.recv: dict[Slot, list[int]] = {}
        self._times: defaultdict[str, Seconds] = defaultdict(lambda: Seconds(self.clock))
        self.calls: defaultdict[Slot, int] = defaultdict(int)
        self._slot_times: defaultdict[Slot, dict[str, Seconds]] = defaultdict(
            lambda: {k: Seconds(self.clock) for k in SLOT_TIMES}
        )
        self._spans: defaultdict[Slot, list[tuple[float, float]]] = defaultdict(list)
        self._epoch_start = time.perf_counter()

    @property
    def times(self) -> defaultdict[str, float]:
        """This epoch's seconds per timer (on CUDA: waits for the events recorded so far)."""
        return defaultdict(float, {k: float(v) for k, v in self._times.items()})

    @property
    def slot_times(self) -> dict[Slot, dict[str, float]]:
        """This epoch's launch / in-flight / wait seconds per exchange slot."""
        return {slot: {k: float(v) for k, v in t.items()} for slot, t in self._slot_times.items()}

    def seconds(self, name: str) -> Seconds:
        """Timer ``name`` so far, read later (no host sync now; survives :meth:`reset`)."""
        return self._times[name].copy() if name in self._times else Seconds(self.clock)

    def start_recording(self) -> None:
        """Archive every epoch from now on (see :meth:`epoch_record`); :meth:`finish_recording` ends it."""
        self.epochs = []
        self.reset()

    def finish_recording(self) -> list[dict]:
        """The archived epochs, including the current one; recording stops."""
        epochs = self.epochs or []
        if self.calls:
            epochs.append(self.epoch_record())
        self.epochs = None
        return epochs

    def add_bytes(
        self, key: Hashable, direction: Direction, sent: Sequence[int], recv: Sequence[int]
    ) -> None:
        """Record one exchange: bytes sent to and received from each peer."""
        if len(sent) != self.world_size or len(recv) != self.world_size:
            raise ValueError(f"per-peer byte lists must have {self.world_size} entries")
        slot = (key, direction)
        s = self.sent.setdefault(slot, [0] * self.world_size)
        r = self.recv.setdefault(slot, [0] * self.world_size)
        for q in range(self.world_size):
            s[q] += int(sent[q])
            r[q] += int(recv[q])
        self.calls[slot] += 1

    def add_time(self, name: str, seconds: float) -> None:
        self._times[name].add_seconds(seconds)

    def launched(self, key: Hashable, direction: Direction, launch: tuple[Mark, Mark]) -> None:
        """An exchange was launched; the launch call took the span ``launch`` (exposed)."""
        self._times["exposed_comm"].add(*launch)
        self._slot_times[(key, direction)]["launch"].add(*launch)
        self._in_flight += 1

    def completed(
        self, key: Hashable, direction: Direction, in_flight: tuple[Mark, Mark], waited: tuple[Mark, Mark]
    ) -> None:
        """An exchange finished: ``in_flight`` spans launch to completion, ``waited`` the blocked wait."""
        self._times["comm"].add(*in_flight)
        self._times["exposed_comm"].add(*waited)
        slot = self._slot_times[(key, direction)]
        slot["in_flight"].add(*in_flight)
        slot["wait"].add(*waited)
        if self.epochs is not None and not self.clock.deferred:  # host marks: seconds, kept per call
            self._spans[(key, direction)].append(in_flight)
        self._in_flight = max(self._in_flight - 1, 0)

    def range(self, key: Hashable, direction: Direction, phase: str):
        """A ``halo/layer{key}/{direction}/{phase}`` profiler range when tracing, else a no-op."""
        if not self.trace:
            return nullcontext()
        return record_function(f"halo/layer{key}/{direction}/{phase}")

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to timer ``name``."""
        label = "aggregate/inner" if self._in_flight else "aggregate"
        with record_function(label) if self.trace else nullcontext():
            t0 = self.clock.mark()
            try:
                yield
            finally:
                self._times[name].add(t0, self.clock.mark())

    def bytes_sent(self, key: Hashable | None = None, direction: Direction | None = None) -> int:
        return _total(self.sent, key, direction)

    def bytes_recv(self, key: Hashable | None = None, direction: Direction | None = None) -> int:
        return _total(self.recv, key, direction)

    def per_peer_sent(self) -> list[int]:
        return [sum(v[q] for v in self.sent.values()) for q in range(self.world_size)]

    def per_peer_recv(self) -> list[int]:
        return [sum(v[q] for v in self.recv.values()) for q in range(self.world_size)]

    def epoch_record(self) -> dict:
        """This epoch per exchange slot (bytes per peer, calls, launch/in-flight/wait/exposed seconds)."""
        exchanges = []
        slot_times, times = self.slot_times, self.times
        for (key, direction), sent in self.sent.items():
            t = slot_times.get((key, direction), dict.fromkeys(SLOT_TIMES, 0.0))
            exchanges.append(
                {
                    "layer": key if isinstance(key, int) else str(key),
                    "direction": direction,
                    "calls": self.calls[(key, direction)],
                    "sent_bytes": list(sent),
                    "recv_bytes": list(self.recv[(key, direction)]),
                    "launch_s": t["launch"],
                    "in_flight_s": t["in_flight"],
                    "wait_s": t["wait"],
                    "exposed_s": t["launch"] + t["wait"],
                    "spans": self._unix_spans((key, direction)),
                }
            )
        return {
            "wall_s": time.perf_counter() - self._epoch_start,
            "compute_s": times.get("compute", 0.0),
            "comm_s": times.get("comm", 0.0),
            "exposed_comm_s": times.get("exposed_comm", 0.0),
            "exchanges": exchanges,
        }

    def _unix_spans(self, slot: Slot) -> list[list[float]] | None:
        """Each recorded call's [launch, completion] in Unix seconds; None without host spans."""
        spans = self._spans.get(slot)
        return [[a + self._unix_offset, b + self._unix_offset] for a, b in spans] if spans else None

    def snapshot(self) -> dict:
        """A JSON-friendly summary of the epoch so far (keys become strings)."""
        by_key: dict[str, dict[str, int]] = {}
        for (key, direction), v in self.sent.items():
            by_key.setdefault(str(key), {})[f"{direction}_sent"] = sum(v)
        for (key, direction), v in self.recv.items():
            by_key.setdefault(str(key), {})[f"{direction}_recv"] = sum(v)
        return {
            "bytes_sent": self.bytes_sent(),
            "bytes_recv": self.bytes_recv(),
            "bytes_sent_per_peer": self.per_peer_sent(),
            "bytes_recv_per_peer": self.per_peer_recv(),
            "bytes_by_key": by_key,
            **{f"{k}_s": self.times.get(k, 0.0) for k in ("comm", "exposed_comm", "compute")},
        }


def _total(table: dict[Slot, list[int]], key: Hashable | None, direction: Direction | None) -> int:
    return sum(
        sum(v)
        for (k, d), v in table.items()
        if (key is None or k == key) and (direction is None or d == direction)
    )
