"""Byte and time counters for the communication layer, reset once per epoch.

Bytes are what actually goes on the wire (after any wire-dtype cast), counted per call site ``key``,
per direction (``fwd`` halo rows, ``bwd`` halo gradients) and per peer. Times are wall-clock seconds:

- ``comm``: from the launch of an exchange until the transfer is first observed complete (the
  overlapped schedule polls it between blocks of computation; otherwise at the end of ``wait()``), so
  it stays close to the transfer time even when the caller waits late;
- ``exposed_comm``: the part of that the caller spent blocked (launching the transfer and in
  ``wait()``), i.e. communication not hidden behind computation;
- ``compute``: aggregation work the strategy times around its kernels.

On CUDA the times measure host-side blocking only (NCCL work is asynchronous on its stream).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager

Direction = str  # "fwd" | "bwd"


class CommCounters:
    """Per-epoch bytes per (key, direction, peer) and named timers."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.reset()

    def reset(self) -> None:
        """Start a new epoch: zero every byte count and timer."""
        self.sent: dict[tuple[Hashable, Direction], list[int]] = {}
        self.recv: dict[tuple[Hashable, Direction], list[int]] = {}
        self.times: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[tuple[Hashable, Direction], int] = defaultdict(int)

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
        self.times[name] += seconds

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to timer ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] += time.perf_counter() - t0

    def bytes_sent(self, key: Hashable | None = None, direction: Direction | None = None) -> int:
        return _total(self.sent, key, direction)

    def bytes_recv(self, key: Hashable | None = None, direction: Direction | None = None) -> int:
        return _total(self.recv, key, direction)

    def per_peer_sent(self) -> list[int]:
        return [sum(v[q] for v in self.sent.values()) for q in range(self.world_size)]

    def per_peer_recv(self) -> list[int]:
        return [sum(v[q] for v in self.recv.values()) for q in range(self.world_size)]

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
            "comm_s": self.times.get("comm", 0.0),
            "exposed_comm_s": self.times.get("exposed_comm", 0.0),
            "compute_s": self.times.get("compute", 0.0),
        }


def _total(
    table: dict[tuple[Hashable, Direction], list[int]], key: Hashable | None, direction: Direction | None
) -> int:
    return sum(
        sum(v)
        for (k, d), v in table.items()
        if (key is None or k == key) and (direction is None or d == direction)
    )
