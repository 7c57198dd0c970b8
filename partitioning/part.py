"""The rank-local view of one partition: what a training process loads from a partition directory.

Global node IDs are the *relabelled* IDs the partitioner writes: part p owns the contiguous range
``node_range = [start, end)``. Local node index ``i < n_owned`` is owned node ``start + i``; local index
``n_owned + k`` is halo node ``halo_gids[k]``. Halo nodes are sorted by global ID, hence grouped by owner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Part:
    part_id: int
    num_parts: int
    node_range: tuple[int, int]  # owned global IDs [start, end)
    indptr: np.ndarray  # int64 [n_owned + 1], in-edge CSR of owned destinations
    indices: np.ndarray  # int64 [E_local], local source index in [0, n_owned + n_halo)
    halo_gids: np.ndarray  # int64 [n_halo], sorted ascending (so grouped by owner)
    # int64 [P + 1]: halo rows owned by part q are [halo_offsets[q], halo_offsets[q+1])
    halo_offsets: np.ndarray
    # int64: owned local rows to send; to peer q: send_idx[send_offsets[q]:send_offsets[q+1]]
    send_idx: np.ndarray
    send_offsets: np.ndarray  # int64 [P + 1]; rows to q are in the order of q's halo rows owned by this part
    in_degree: np.ndarray  # int64 [n_owned + n_halo], global in-degree (self-loops removed)
    out_degree: np.ndarray  # int64 [n_owned + n_halo], global out-degree (self-loops removed)
    x: np.ndarray  # float32 [n_owned, F]
    y: np.ndarray  # int64 [n_owned], -1 = unlabelled
    train_mask: np.ndarray  # bool [n_owned]
    val_mask: np.ndarray  # bool [n_owned]
    test_mask: np.ndarray  # bool [n_owned]
    orig_ids: np.ndarray  # int64 [n_owned], node ID in the source graph before relabelling
    num_classes: int

    @property
    def n_owned(self) -> int:
        return int(self.node_range[1] - self.node_range[0])

    @property
    def n_halo(self) -> int:
        return int(self.halo_gids.shape[0])
