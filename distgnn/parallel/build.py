"""Build the strategy a training config names, over the world's process layout (the one factory)."""

from __future__ import annotations

import os

from distgnn.comm.layout import ProcessLayout
from distgnn.comm.mesh import Mesh2D
from distgnn.config import JobShape, TrainConfig
from distgnn.errors import DistGNNError
from distgnn.parallel.node_data import NodeData
from distgnn.parallel.precision import compute_dtype
from distgnn.parallel.strategy import Strategy


def build_strategy(cfg: TrainConfig, part_dir: str | os.PathLike, world: ProcessLayout) -> Strategy:
    """Split ``world`` into the config's (stages x graph parts) mesh and load this rank's data."""
    from distgnn.parallel.graph import GraphStrategy
    from distgnn.parallel.halo_prop import HaloPropagation

    mesh = Mesh2D.build(world, JobShape.of(cfg.parallel, world.world_size))
    if cfg.parallel.strategy == "graph":
        prop = HaloPropagation.from_partition_dir(
            part_dir,
            mesh.graph,
            staleness=cfg.parallel.halo_staleness,
            comm_dtype=cfg.parallel.torch_comm_dtype,
            overlap=cfg.parallel.overlap,
            kernel_impl=cfg.parallel.kernel,
            compute_dtype=compute_dtype(cfg.parallel.precision),
        )
        data = NodeData.from_part(prop.part, device=world.device, feature_norm=cfg.optim.feature_norm)
        prop.release_bulk()
        return GraphStrategy(mesh, data, prop, seed=cfg.optim.seed)
    if cfg.parallel.strategy == "pipeline":
        from distgnn.parallel.pipeline import PipelineStrategy
        from distgnn.partitioning import load_meta, load_part

        if mesh.graph_size != 1:
            raise DistGNNError(
                f"--strategy pipeline runs one process per stage: {world.world_size} processes for "
                f"{cfg.parallel.stages} stages (use --strategy hybrid for stages x graph parts)"
            )
        if int(load_meta(part_dir)["num_parts"]) != 1:
            raise DistGNNError(
                f"--strategy pipeline needs a 1-part partition directory (each stage holds the whole graph); "
                f"{part_dir} has {load_meta(part_dir)['num_parts']} parts"
            )
        part = load_part(part_dir, 0)
        data = NodeData.from_part(part, device=world.device, feature_norm=cfg.optim.feature_norm)
        return PipelineStrategy(mesh, data, part, cfg)
    from distgnn.parallel.hybrid import HybridStrategy
    from distgnn.partitioning import load_meta, load_part

    num_parts = int(load_meta(part_dir)["num_parts"])
    if num_parts * cfg.parallel.stages != world.world_size:
        raise DistGNNError(
            f"--strategy hybrid runs stages x parts processes: {cfg.parallel.stages} x {num_parts} "
            f"({part_dir}) = {num_parts * cfg.parallel.stages}, the job has {world.world_size}"
        )
    part = load_part(part_dir, mesh.graph_rank)
    data = NodeData.from_part(part, device=world.device, feature_norm=cfg.optim.feature_norm)
    return HybridStrategy(mesh, data, part, cfg)
