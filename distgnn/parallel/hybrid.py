"""Hybrid parallelism (``--strategy hybrid --stages S``, world = S x G, G = the partition's part count).

Rank (s, g) runs stage s's layers on partition g: a pipeline stage (``pipeline.py``) over one part. Inside
a stage, each layer exchanges the halo rows of the chunk being computed over the stage's graph-parallel
group, with the same fresh/historical rule as local rows (a halo row is fresh when its owner's chunk is
no later than the reader's); between stages, rank (s, g) sends its chunk rows to (s + 1, g). Gradients
are summed over the stage's graph group (and, for parameters every stage reads, over the stages too).
With one chunk it is exact: stages x graph-parallel training equals single-process training.
"""

from __future__ import annotations

from distgnn.comm.mesh import Mesh2D
from distgnn.config import TrainConfig
from distgnn.errors import DistGNNError
from distgnn.parallel.node_data import NodeData
from distgnn.parallel.pipeline import PipelineStrategy
from distgnn.partitioning.part import Part


class HybridStrategy(PipelineStrategy):
    name = "hybrid"

    def __init__(self, mesh: Mesh2D, data: NodeData, part: Part, cfg: TrainConfig) -> None:
        if mesh.graph_size < 2 and mesh.stages < 2:
            raise DistGNNError("--strategy hybrid needs more than one stage or graph part")
        super().__init__(mesh, data, part, cfg)
