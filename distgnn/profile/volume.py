"""A per-epoch communication volume, predicted or measured, in one shape every strategy fills in.

A volume is a list of :class:`Flow`: one exchanged tensor (a layer ``key``, a ``direction``: ``fwd`` rows
or ``bwd`` gradients) as a matrix of rows sent from rank p to rank q times the bytes per row. Flows share
their row matrices (the graph strategy's backward is its forward transposed), so a 1024-rank volume of
a 16-layer model costs a few row matrices of memory, not 32 byte matrices.

Everything a user asks (total, per rank, straggler, per peer pair, per layer, forward/backward) derives
from the flows; :meth:`Volume.summary` is the ``--json`` object of ``distgnn profile predict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIRECTIONS = ("fwd", "bwd")
MEMORY_KEYS = ("graph", "features", "activations", "history")


@dataclass(frozen=True)
class Flow:
    """``rows[p, q] * bytes_per_row`` bytes sent from rank p to rank q, once per training epoch."""

    key: int
    direction: str
    rows: np.ndarray  # int64 [P, P]
    bytes_per_row: int
    width: int  # elements per row

    def bytes(self) -> np.ndarray:
        return self.rows * self.bytes_per_row

    def sent(self) -> np.ndarray:
        """Bytes each rank sends [P]."""
        return self.rows.sum(axis=1) * self.bytes_per_row

    def received(self) -> np.ndarray:
        return self.rows.sum(axis=0) * self.bytes_per_row


@dataclass
class Volume:
    """The flows of one training epoch, plus evaluation traffic and per-rank memory."""

    strategy: str
    world_size: int
    options: dict
    flows: list[Flow]
    eval_flows: list[Flow] = field(default_factory=list)  # one evaluation (forward only)
    memory: list[dict[str, int]] = field(default_factory=list)  # per rank, MEMORY_KEYS

    def peer_bytes(self) -> np.ndarray:
        out = np.zeros((self.world_size, self.world_size), dtype=np.int64)
        for f in self.flows:
            out += f.bytes()
        return out

    def per_rank_sent(self) -> np.ndarray:
        return _sum_vectors([f.sent() for f in self.flows], self.world_size)

    def per_rank_recv(self) -> np.ndarray:
        return _sum_vectors([f.received() for f in self.flows], self.world_size)

    def total(self, direction: str | None = None) -> int:
        return int(sum(int(f.sent().sum()) for f in self.flows if direction in (None, f.direction)))

    def per_layer(self) -> list[dict]:
        keys = sorted({f.key for f in self.flows})
        out = []
        for k in keys:
            row: dict = {"layer": k}
            for d in DIRECTIONS:
                row[f"{d}_bytes"] = int(
                    sum(int(f.sent().sum()) for f in self.flows if (f.key, f.direction) == (k, d))
                )
            widths = {f.width for f in self.flows if f.key == k}
            row["width"] = max(widths) if widths else 0
            row["bytes"] = row["fwd_bytes"] + row["bwd_bytes"]
            out.append(row)
        return out

    def summary(self, *, peers: bool = True) -> dict:
        """The JSON object of ``profile predict --json`` (``peer_bytes`` left out with ``peers=False``)."""
        sent, recv = self.per_rank_sent(), self.per_rank_recv()
        busiest = np.maximum(sent, recv)
        straggler = int(np.argmax(busiest)) if self.world_size else 0
        out = {
            "strategy": self.strategy,
            "world_size": self.world_size,
            "options": self.options,
            "total_bytes": self.total(),
            "fwd_bytes": self.total("fwd"),
            "bwd_bytes": self.total("bwd"),
            "eval_bytes": int(sum(int(f.sent().sum()) for f in self.eval_flows)),
            "per_rank_bytes": [int(v) for v in sent],
            "per_rank_recv_bytes": [int(v) for v in recv],
            "straggler": {"rank": straggler, "bytes": int(busiest[straggler]) if self.world_size else 0},
            "per_layer_bytes": self.per_layer(),
            "per_rank_memory_bytes": [m | {"total": sum(m[k] for k in MEMORY_KEYS)} for m in self.memory],
        }
        if peers:
            out["peer_bytes"] = self.peer_bytes().tolist()
        return out


def _sum_vectors(vectors: list[np.ndarray], n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    for v in vectors:
        out += v
    return out
