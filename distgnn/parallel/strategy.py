"""The strategy seam: how one training step and one evaluation run across ranks.

The trainer (``distgnn/train.py``) owns the loop, the optimiser, metrics, evaluation bookkeeping and
checkpoints. A strategy owns the rest: which rows and layers this rank computes, how a step's forward and
backward run (and communicate), which parameters this rank updates and over which process groups their
gradients are summed, and its own state for checkpoints. ``graph``, ``pipeline`` and ``hybrid`` are one
file each in this folder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distgnn.comm.clock import Seconds
from distgnn.comm.collectives import all_reduce, sum_grads
from distgnn.comm.mesh import Mesh2D
from distgnn.errors import DistGNNError
from distgnn.kernels import pool
from distgnn.metrics import evaluation_counts
from distgnn.models.layered import LayeredModel
from distgnn.parallel import precision
from distgnn.parallel.node_data import NodeData


@dataclass
class StepStats:
    """This rank's numbers for one training step (summed or averaged over ranks by the trainer)."""

    # This rank's share of the global loss (0 on ranks that compute no loss); a 0-d tensor on the device
    # keeps the step free of host syncs (the trainer reads it at its batched reduction).
    loss: float | Tensor
    comm_bytes: int = 0  # bytes this rank sent (halo exchange and stage-to-stage)
    comm_s: float | Seconds = 0.0  # Seconds: read (float()) by the trainer at its reduction
    exposed_comm_s: float | Seconds = 0.0
    bubble_s: float = 0.0  # time waiting for a neighbouring stage
    history_bytes: int = 0  # bytes held in historical-embedding caches
    stale_reads: int = 0  # neighbour rows read from history
    neighbour_reads: int = 0  # all neighbour rows read by aggregations


class Strategy(ABC):
    """One rank's part of a distributed training run. Subclasses implement the step and the evaluation."""

    name: str = ""

    def __init__(self, mesh: Mesh2D, data: NodeData, *, compute_dtype: torch.dtype = torch.float32) -> None:
        """``compute_dtype``: what the model's forward computes in (``--precision``, see
        ``precision.py``); parameters and their gradients stay float32 either way."""
        self.mesh = mesh
        self.data = data
        self.compute_dtype = compute_dtype
        self.layers: tuple[int, int] | None = None  # this rank's layer range, set by attach
        counts = torch.stack([m.sum() for m in data.masks()]).to(torch.float64)
        if self.rows_are_partitioned:
            counts = all_reduce(counts, mesh.graph)
        self.global_counts = [int(c) for c in counts.tolist()]  # train, val, test over the whole graph
        # Training rows as index tensors, built once per row set: indexing with the boolean mask would
        # cost a host sync (nonzero) at every step.
        self._train_rows: dict[tuple, tuple[Tensor | slice, Tensor, Tensor]] = {}
        self._loss_rows(slice(None))

    @property
    def rows_are_partitioned(self) -> bool:
        """True when the graph's rows are split over ``mesh.graph`` (counts and losses are summed there)."""
        return self.mesh.graph_size > 1

    # -- what the trainer calls ----------------------------------------------------------------------
    def attach(self, model: LayeredModel) -> list[nn.Parameter]:
        """Check the model can run here and fix this rank's layer range; the parameters it updates."""
        if not isinstance(model, LayeredModel):
            raise DistGNNError(f"the {self.name} strategy needs a LayeredModel, got {type(model).__name__}")
        self.layers = self.layer_range(model.num_layers)
        return model.range_parameters(*self.layers)

    def layer_range(self, num_layers: int) -> tuple[int, int]:
        """This rank's layers (all of them unless the strategy pipelines)."""
        return (0, num_layers)

    @abstractmethod
    def train_step(self, model: LayeredModel, epoch: int) -> StepStats:
        """Forward and backward of one epoch; leaves this rank's (unreduced) gradients in ``.grad``."""

    @abstractmethod
    def evaluate(self, model: LayeredModel) -> Tensor:
        """This rank's :func:`~distgnn.metrics.evaluation_counts`, float64 [EVAL_WIDTH] (zeros where no
        logits)."""

    def reduce_gradients(self, model: LayeredModel, params: list[nn.Parameter]) -> None:
        """Sum gradients over the ranks that computed them: the stage's graph group for every parameter,
        and across stages too for the parameters every stage reads (``replicated_parameters``)."""
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        sum_grads(params, self.mesh.graph)
        replicated = {id(p) for p in model.replicated_parameters()}
        sum_grads([p for p in params if id(p) in replicated], self.mesh.pipe)

    def state_dict(self) -> dict:
        """Strategy state for checkpoints (history caches, stale buffers); empty by default."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def flush(self) -> None:
        """Wait for communication still in flight (before the process group goes away)."""
        return None

    # -- shared by the strategies ----------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager[None]:
        """The context a model forward runs in: autocast to ``compute_dtype`` (none for float32). The
        backward runs outside it, as torch.autocast intends."""
        return precision.autocast(self.compute_dtype, self.mesh.world.device)

    def loss(self, logits: Tensor, rows: Tensor | slice = slice(None)) -> Tensor:
        """Summed cross-entropy over the training rows among ``rows``, over the *global* training count."""
        idx, y = self._loss_rows(rows)
        # Indexing keeps the graph connected: a rank without training rows still runs its backward. The
        # softmax and the sum run in float32 whatever the compute dtype (.float() is free for float32).
        logits = pool.select_rows(logits, idx).float()
        return F.cross_entropy(logits, y, reduction="sum") / self.global_counts[0]

    def _loss_rows(self, rows: Tensor | slice) -> tuple[Tensor, Tensor]:
        """(positions of the training rows among ``rows``, their labels), cached per ``rows`` object."""
        key = ("rows", id(rows)) if isinstance(rows, Tensor) else ("slice", rows.start, rows.stop, rows.step)
        hit = self._train_rows.get(key)
        if hit is None or (isinstance(rows, Tensor) and hit[0] is not rows):
            idx = self.data.train_mask[rows].nonzero().squeeze(1)  # once per row set
            hit = (rows, idx, self.data.y[rows].index_select(0, idx))
            self._train_rows[key] = hit
        return hit[1], hit[2]

    def counts(self, logits: Tensor) -> Tensor:
        return evaluation_counts(logits, self.data.y, self.data.masks())
