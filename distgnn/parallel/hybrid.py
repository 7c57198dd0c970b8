"""Hybrid parallelism (``--strategy hybrid --stages S``, world = S x G, G = the partition's part count).

Rank (s, g) runs stage s's layers on partition g: a pipeline stage over one part. Inside a stage, each
layer exchanges the halo rows of the chunk being computed over the stage's graph-parallel group, with the
same fresh/historical rule as local rows (a halo row is fresh when its owner's chunk is no later than the
reader's); between stages, rank (s, g) sends its chunk rows to (s + 1, g). Gradients are summed over the
stage's graph group (and, for parameters every stage reads, over the stages too). With one chunk it is
exact: stages x graph-parallel training equals single-process training.

Where the code lives: the schedule (chunks through stages, sends, receives, backward order) is the
pipeline's, so :class:`HybridStrategy` subclasses :class:`~distgnn.parallel.pipeline.PipelineStrategy`
and this file holds what the hybrid adds to it, the pipeline's halo hooks: the chunk ids and original
ids of halo rows, the per-chunk transfer plans and the group that exchanges them. The plans and the
all-to-all are in ``chunk_exchange.py``; the exchange itself runs inside the chunk propagation's autograd node
(``chunk_prop.ChunkSources``), because its backward must return halo gradients at a fixed point of each
chunk's backward. Gradient sums over the graph group and the stages, and row counts over the graph
group, are the base :class:`~distgnn.parallel.strategy.Strategy`'s (``reduce_gradients``,
``rows_are_partitioned``).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from distgnn.comm.layout import ProcessLayout
from distgnn.comm.mesh import Mesh2D
from distgnn.config import TrainConfig
from distgnn.errors import DistGNNError
from distgnn.parallel.chunk_exchange import ChunkTransfer, chunk_transfers, halo_chunk_ids, halo_values
from distgnn.parallel.chunks import Chunk
from distgnn.parallel.node_data import NodeData
from distgnn.parallel.pipeline import PipelineStrategy
from distgnn.partitioning.part import Part


class HybridStrategy(PipelineStrategy):
    """Pipeline stages x graph parts: a :class:`PipelineStrategy` stage over one part, with per-chunk halo
    exchanges among the stage's graph-parallel ranks (none when the partition has one part)."""

    name = "hybrid"

    def __init__(self, mesh: Mesh2D, data: NodeData, part: Part, cfg: TrainConfig) -> None:
        if mesh.graph_size < 2 and mesh.stages < 2:
            raise DistGNNError("--strategy hybrid needs more than one stage or graph part")
        super().__init__(mesh, data, part, cfg)

    def chunk_ids(self, part: Part, num_chunks: int) -> np.ndarray:
        """The owned rows' chunks, then the halo rows': each its owner's (a collective over the graph
        group)."""
        chunk_of = super().chunk_ids(part, num_chunks)
        if self.mesh.graph_size > 1:
            chunk_of = np.concatenate([chunk_of, halo_chunk_ids(part, chunk_of, self.mesh.graph)])
        return chunk_of

    def halo_keys(self, part: Part, keys: Tensor) -> Tensor:
        """The halo rows' original node ids, from their owners (a collective over the graph group)."""
        return halo_values(part, keys, self.mesh.graph) if self.mesh.graph_size > 1 else keys[:0]

    def halo_transfers(
        self, part: Part, chunk_of: np.ndarray, chunks: list[Chunk], slot_of: np.ndarray
    ) -> dict[int, ChunkTransfer] | None:
        if self.mesh.graph_size < 2:
            return None
        return chunk_transfers(part, chunk_of, chunks, slot_of, self.mesh.world.device)

    @property
    def halo_group(self) -> ProcessLayout | None:
        return self.mesh.graph if self.mesh.graph_size > 1 else None
