"""Dropout masks that do not depend on where a row is computed.

A mask element is a pure function of (seed, counter) (see :func:`distgnn.kernels.dropout`). Keying it by
a *global node id* and drawing the seed from (run seed, epoch, dropout site) instead of a per-process
random stream makes the masks of a node identical whichever rank, partition, pipeline stage or chunk
computes it: distributed training then draws exactly the masks single-process training draws, so
exactness tests can run with dropout on.

Edge masks (GAT's attention dropout) work the same way: an edge's key is built from the original ids of
its two ends, so it is the same wherever the edge is aggregated. Sites ``>= 0`` are the model's own;
negative sites belong to masks the propagation draws (:func:`attention_site`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from distgnn.errors import DistGNNError

if TYPE_CHECKING:
    from distgnn.kernels import CSR

SEED_BOUND = 2**62  # seeds the dropout kernels accept: [0, 2^62)
_M64 = (1 << 64) - 1


def mix(*values: int) -> int:
    """A seed in [0, 2^62) from integers (splitmix64 finaliser folded over them); deterministic."""
    z = 0x9E3779B97F4A7C15
    for v in values:
        z = (z + (int(v) & _M64) + 0x9E3779B97F4A7C15) & _M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        z ^= z >> 31
    return z % SEED_BOUND


@dataclass(frozen=True)
class MaskKey:
    """The seed of one dropout site in one step, and the global node id of every row it applies to."""

    seed: int
    rows: Tensor  # int64 [rows]


@dataclass
class MaskSeeds:
    """Per-step dropout seeds shared by every rank: ``mix(run_seed, step)`` then ``mix(step_seed, site)``.

    ``step`` is None outside training steps (then no key: evaluation applies no dropout anyway).
    """

    run_seed: int
    step: int | None = None

    def key(self, site: int, rows: Tensor) -> MaskKey | None:
        if self.step is None:
            return None
        return MaskKey(mix(self.run_seed, self.step, site), rows)


def attention_site(layer: int) -> int:
    """The dropout site of layer ``layer``'s attention coefficients (negative: never a model's own site)."""
    return -1 - layer


def edge_mask_keys(csr: CSR, dst_keys: Tensor, src_keys: Tensor, num_nodes: int) -> Tensor:
    """Per edge of ``csr``, ``dst_id * num_nodes + src_id`` from the original node ids of its rows
    (``dst_keys``) and sources (``src_keys``): the same key wherever the edge is held.

    ``num_nodes`` is the whole graph's node count (every rank must pass the same). The key of an edge's
    mask element is ``key * width + column`` in 64 bits: see :func:`check_edge_key_range`.
    """
    rows = csr.row_ids(cache=False).long()
    return dst_keys[rows] * num_nodes + src_keys[csr.indices.long()]


def check_edge_key_range(num_nodes: int, width: int) -> None:
    """Refuse graphs whose edge mask counters (``edge key * width + column``) would pass 2^63."""
    if num_nodes * num_nodes * max(width, 1) >= 2**63:
        raise DistGNNError(
            f"attention dropout keys edges by (destination, source) node ids: {num_nodes:,} nodes with "
            f"{width} heads do not fit 64 bits; train without --attention-dropout"
        )
