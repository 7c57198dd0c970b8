"""Dropout masks that do not depend on where a row is computed.

A mask element is a pure function of (seed, counter) (see :func:`distgnn.kernels.dropout`). Keying it by
a *global node id* and drawing the seed from (run seed, epoch, dropout site) instead of a per-process
random stream makes the masks of a node identical whichever rank, partition, pipeline stage or chunk
computes it: distributed training then draws exactly the masks single-process training draws, so
exactness tests can run with dropout on.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

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
