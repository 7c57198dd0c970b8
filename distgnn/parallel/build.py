"""Build the strategy a training config names, over the world's process layout (the one factory)."""

from __future__ import annotations

import os

from distgnn.config import TrainConfig
from distgnn.parallel.layout import ProcessLayout
from distgnn.parallel.mesh import Mesh2D
from distgnn.parallel.node_data import NodeData
from distgnn.parallel.strategy import Strategy


def build_strategy(cfg: TrainConfig, part_dir: str | os.PathLike, world: ProcessLayout) -> Strategy:
    """Split ``world`` into the config's (stages x graph parts) mesh and load this rank's data."""
    from distgnn.parallel.graph import GraphParallel, GraphStrategy

    mesh = Mesh2D.build(world, cfg.stages)
    if cfg.strategy == "graph":
        prop = GraphParallel.from_partition_dir(
            part_dir,
            mesh.graph,
            staleness=cfg.halo_staleness,
            comm_dtype=cfg.torch_comm_dtype,
            overlap=cfg.overlap,
            kernel_impl=cfg.kernel,
        )
        data = NodeData.from_part(prop.part, device=world.device, feature_norm=cfg.feature_norm)
        return GraphStrategy(mesh, data, prop, seed=cfg.seed)
    raise NotImplementedError(cfg.strategy)
