"""The part of a partition directory the profiler reads: sizes and the per-peer routing counts.

Only ``meta.json`` and two ``(P + 1)``-entry offset arrays per part are read (checksummed), so a
1024-part directory loads in well under a second and nothing of the graph is brought into memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distgnn.errors import DistGNNError
from distgnn.partitioning import load_meta
from distgnn.partitioning.format import load_array


@dataclass(frozen=True)
class PartitionInfo:
    """Sizes and halo routing of a partition: ``send_rows[p, q]`` owned rows part p sends part q."""

    path: str
    meta: dict
    send_rows: np.ndarray  # int64 [P, P]
    n_owned: np.ndarray  # int64 [P]
    n_halo: np.ndarray  # int64 [P]
    n_edges: np.ndarray  # int64 [P], in-edges of owned rows (local CSR entries)

    @property
    def num_parts(self) -> int:
        return int(self.send_rows.shape[0])

    @property
    def feat_dim(self) -> int:
        return int(self.meta["feat_dim"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @classmethod
    def from_dir(cls, part_dir: str | os.PathLike) -> PartitionInfo:
        root = Path(part_dir)
        meta = load_meta(root)  # checks the format name and version
        p_count = int(meta["num_parts"])
        send = np.zeros((p_count, p_count), dtype=np.int64)
        recv = np.zeros((p_count, p_count), dtype=np.int64)
        for p in range(p_count):
            send[p] = np.diff(load_array(root, meta, p, "send_offsets", mmap=False, verify=True))
            recv[p] = np.diff(load_array(root, meta, p, "halo_offsets", mmap=False, verify=True))
        if not np.array_equal(recv, send.T):
            p, q = (int(v) for v in np.argwhere(recv != send.T)[0])
            raise DistGNNError(
                f"{root}: part {p} expects {recv[p, q]} halo rows from part {q}, which sends {send[q, p]}"
            )
        sizes = meta["part_sizes"]
        return cls(
            path=str(root),
            meta=meta,
            send_rows=send,
            n_owned=np.array([s["n_owned"] for s in sizes], dtype=np.int64),
            n_halo=np.array([s["n_halo"] for s in sizes], dtype=np.int64),
            n_edges=np.array([s["n_edges"] for s in sizes], dtype=np.int64),
        )
