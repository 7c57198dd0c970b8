"""Graph parallelism (``--strategy graph``): each process owns one partition and runs every layer over it.

:class:`GraphStrategy` trains with a :class:`~distgnn.parallel.halo_prop.HaloPropagation` (the engine that
answers the model's aggregations with halo exchanges, ``halo_prop.py``): every rank runs every layer over
its own rows, and gradients are summed over all ranks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgnn.comm.mesh import Mesh2D
from distgnn.errors import DistGNNError
from distgnn.models.layered import LayeredModel
from distgnn.parallel.halo_prop import HaloPropagation
from distgnn.parallel.node_data import NodeData, model_input
from distgnn.parallel.strategy import StepStats, Strategy


class GraphStrategy(Strategy):
    """Graph parallelism (``--strategy graph``): one partition per rank, every layer, halo exchanges (the
    propagation ``prop``)."""

    name = "graph"

    def __init__(self, mesh: Mesh2D, data: NodeData, prop: HaloPropagation, *, seed: int) -> None:
        """Computes in ``prop.compute_dtype`` (``--precision``): the propagation's rows and the model's
        forward agree on it."""
        if mesh.stages != 1:
            raise DistGNNError(f"the graph strategy runs one stage, the layout has {mesh.stages}")
        super().__init__(mesh, data, compute_dtype=prop.compute_dtype)
        self.prop = prop
        self.prop.seeds.run_seed = seed
        self.x = model_input(data.x)

    def attach(self, model: LayeredModel) -> list[nn.Parameter]:
        params = super().attach(model)
        # the first epoch then runs like the others (see HaloPropagation.prepare)
        self.prop.prepare(model.aggregation_norms())
        return params

    def train_step(self, model: LayeredModel, epoch: int) -> StepStats:
        self.prop.reset_counters()
        model.train()
        self.prop.seeds.step = epoch
        try:
            with self.autocast():
                logits = model(self.x, self.prop)
            loss = self.loss(logits)
            # Every rank runs backward, even without training rows: the halo exchange in it is a collective.
            loss.backward()
        finally:
            self.prop.seeds.step = None
        c = self.prop.counters
        # The loss stays on the device and the times stay unread: the trainer reads them at its batched
        # reduction, so a step makes no host synchronisation.
        return StepStats(
            loss=loss.detach(),
            comm_bytes=c.bytes_sent(direction="fwd") + c.bytes_sent(direction="bwd"),
            comm_s=c.seconds("comm"),
            exposed_comm_s=c.seconds("exposed_comm"),
        )

    @torch.no_grad()
    def evaluate(self, model: LayeredModel) -> Tensor:
        model.eval()
        with self.autocast():
            logits = model(self.x, self.prop)
        return self.counts(logits)

    def state_dict(self) -> dict:
        return self.prop.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.prop.load_state_dict(state)

    def flush(self) -> None:
        self.prop.flush()
