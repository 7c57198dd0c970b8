"""The 2-D process layout: pipeline stages x graph-parallel ranks, built once and passed explicitly.

World rank ``r = stage * graph_size + graph_rank`` (torch's ``DeviceMesh`` with dimensions
``("pipe", "graph")``, row-major: :class:`distgnn.config.JobShape`'s rank map). Rank (s, g) runs stage
s's layers on graph part g. The graph-parallel strategy is ``stages == 1``, the pipeline
``graph_size == 1``, the hybrid both > 1. Each dimension is exposed as a :class:`ProcessLayout` (rank and
size *within* that dimension, its process group), so the halo exchange runs unchanged over a stage's
graph group. World rank stays the name in logs and files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distgnn.comm.layout import ProcessLayout
from distgnn.config import JobShape

DIMS = ("pipe", "graph")


@dataclass
class Mesh2D:
    world: ProcessLayout
    stages: int
    graph_size: int
    pipe: ProcessLayout  # ranks of this graph part across stages
    graph: ProcessLayout  # ranks of this stage across graph parts
    device_mesh: Any = None  # torch.distributed.device_mesh.DeviceMesh (None for one process)

    @classmethod
    def build(cls, world: ProcessLayout, shape: JobShape | None = None) -> Mesh2D:
        """Split ``world`` into ``shape``'s stages x parts (default: one stage; a collective on every
        rank)."""
        shape = shape or JobShape("graph", 1, world.world_size)
        if shape.world != world.world_size:
            raise ValueError(f"a {shape.stages} x {shape.parts} mesh needs {shape.world} processes")
        stages, graph_size = shape.stages, shape.parts
        stage, graph_rank = shape.stage_part(world.rank)
        if not world.is_distributed:
            return cls(world, 1, 1, world, world)
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(world.device.type, (stages, graph_size), mesh_dim_names=DIMS)

        def dim(name: str, rank: int, size: int) -> ProcessLayout:
            group = mesh.get_group(name) if size > 1 else None
            return ProcessLayout(
                rank=rank, world_size=size, local_rank=world.local_rank, device=world.device,
                backend=world.backend, group=group,
            )  # fmt: skip

        return cls(
            world, stages, graph_size, dim("pipe", stage, stages), dim("graph", graph_rank, graph_size), mesh
        )

    @property
    def stage(self) -> int:
        return self.pipe.rank

    @property
    def graph_rank(self) -> int:
        return self.graph.rank

    def world_rank(self, stage: int, graph_rank: int) -> int:
        """The world rank of (stage, graph_rank)."""
        return stage * self.graph_size + graph_rank
