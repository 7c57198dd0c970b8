"""Pipeline parallelism (``--strategy pipeline --stages S --chunks C``, GNNPipe-style): each rank runs a
contiguous range of layers over the *whole* graph, and the graph's chunks stream through the stages.
The same stage runs over one graph part in the hybrid strategy: ``hybrid.py`` subclasses
:class:`PipelineStrategy` and overrides its halo hooks (:meth:`~PipelineStrategy.chunk_ids`,
:meth:`~PipelineStrategy.halo_transfers`, :attr:`~PipelineStrategy.halo_group`) so that chunks are cut
per part and a stage's graph-parallel ranks exchange each chunk's halo rows (``chunk_exchange.py``).

Semantics (the contract): in epoch t, chunk c at layer l aggregates its in-neighbours' layer-l message
rows; a neighbour in a chunk computed earlier in this epoch (or in c itself) is fresh, one in a later
chunk is historical (its epoch t-1 value, from ``history.py``): a constant in the backward pass, or
(``--history-grad defer``) a row whose gradient is applied to its owner one epoch late. Epoch 0 (no
history yet) and ``exact_epochs`` warm-up epochs run as one chunk: exactly full-graph training. The chunk
order is fixed or (``--chunk-order shuffle``) drawn per epoch. Evaluation is always exact (the whole graph
as one chunk, no history).

Schedule: forward chunks in order (stage s works on chunk c while s+1 works on c-1: activations go to
the next stage with asynchronous point-to-point sends, and every receive of the epoch is posted up
front), then backward in reverse order (a chunk's input gradient is complete once every later chunk's
backward at that stage is done; it goes back to the previous stage at once), gradients accumulated over
chunks, one optimiser step per epoch. The loss is computed on the last stage. Time spent waiting for a
neighbouring stage is reported as ``bubble_s``.

Precision (``--precision bf16-mixed``): each stage's forward runs under autocast, and activations and
their gradients travel between stages in bfloat16 (half the bytes); the loss is float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from distgnn.comm.collectives import all_reduce
from distgnn.comm.layout import ProcessLayout
from distgnn.comm.mesh import Mesh2D
from distgnn.comm.p2p import BWD, FWD, Pending, StageLink
from distgnn.config import TrainConfig
from distgnn.errors import DistGNNError
from distgnn.metrics import EVAL_WIDTH
from distgnn.models.layered import LayeredModel
from distgnn.parallel.chunk_exchange import ChunkTransfer
from distgnn.parallel.chunk_prop import ChunkPropagation
from distgnn.parallel.chunks import Chunk, assign_chunks, build_chunks, chunk_slots
from distgnn.parallel.history import HistoryCache
from distgnn.parallel.node_data import NodeData, model_input
from distgnn.parallel.precision import compute_dtype, rows
from distgnn.parallel.strategy import StepStats, Strategy
from distgnn.partitioning.part import Part


def split_layers(costs: list[float], stages: int) -> list[tuple[int, int]]:
    """Contiguous layer ranges, one per stage, minimising the largest stage cost (exact, small DP)."""
    n = len(costs)
    if stages > n:
        raise DistGNNError(f"{stages} pipeline stages need at least {stages} layers, the model has {n}")
    prefix = np.concatenate([[0.0], np.cumsum(costs)])
    best = {(0, 0): (0.0, [])}
    for s in range(1, stages + 1):
        for end in range(s, n - (stages - s) + 1):
            options = []
            for start in range(s - 1, end):
                if (s - 1, start) in best:
                    worst, cuts = best[s - 1, start]
                    options.append((max(worst, prefix[end] - prefix[start]), cuts + [(start, end)]))
            best[s, end] = min(options, key=lambda o: o[0])
    return best[stages, n][1]


def layer_costs(model: LayeredModel, num_rows: int, num_edges: int) -> list[float]:
    """Per layer: aggregation (edges x aggregated width) plus the dense product (rows x in x out)."""
    widths = model.exchange_widths()
    dims = [model.input_width(layer) for layer in range(model.num_layers)] + [model.output_width()]
    return [num_edges * widths[i] + num_rows * dims[i] * dims[i + 1] for i in range(model.num_layers)]


def owned_chunks(part: Part, num_chunks: int, seed: int) -> np.ndarray:
    """The chunk of every owned row: METIS on the subgraph the owned rows induce."""
    n = part.n_owned
    indptr = np.asarray(part.indptr, dtype=np.int64)
    indices = np.asarray(part.indices, dtype=np.int64)
    if not part.n_halo:
        return assign_chunks(indptr, indices, num_chunks, seed=seed)
    keep = indices < n
    rows = np.repeat(np.arange(n), np.diff(indptr))[keep]
    sub_indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return assign_chunks(sub_indptr, indices[keep], num_chunks, seed=seed)


class PipelineStrategy(Strategy):
    name = "pipeline"

    def __init__(self, mesh: Mesh2D, data: NodeData, part: Part, cfg: TrainConfig) -> None:
        if part.num_parts != mesh.graph_size or part.part_id != mesh.graph_rank:
            raise DistGNNError(
                f"rank {mesh.world.rank} (stage {mesh.stage}, graph rank {mesh.graph_rank}) was given part "
                f"{part.part_id} of {part.num_parts}"
            )
        super().__init__(mesh, data, compute_dtype=compute_dtype(cfg.parallel.precision))
        self.cfg = cfg
        self.link = StageLink(mesh)  # activations to the next stage, gradients to the previous one
        device = mesh.world.device
        n, num_chunks = part.n_owned, cfg.parallel.chunks
        chunk_of = self.chunk_ids(part, num_chunks)
        whole_of = np.zeros(n + part.n_halo, np.int64)
        slot_of = chunk_slots(chunk_of, n)  # the cache's row order, the same for both chunkings
        args = (part.indptr, part.indices, part.in_degree, part.out_degree)
        self.chunks = build_chunks(chunk_of, *args, num_chunks, device, slot_of=slot_of)
        self.whole = build_chunks(whole_of, *args, 1, device, slot_of=slot_of)
        self.transfers = self.halo_transfers(part, chunk_of, self.chunks, slot_of)
        self.whole_transfers = self.halo_transfers(part, whole_of, self.whole, slot_of)
        # The cost-model split must be the same on every rank: use the whole graph's sizes.
        sizes = torch.tensor([n, int(part.indptr[-1])], dtype=torch.float64)
        self.graph_nodes, self.graph_edges = (int(v) for v in all_reduce(sizes, mesh.graph).tolist())
        defer = cfg.parallel.history_grad == "defer"
        self.history = HistoryCache(slot_of, cfg.parallel.history_dtype, device, keep_history_grads=defer)
        slot_keys = torch.empty(n + part.n_halo, dtype=torch.int64, device=device)
        row_keys = torch.cat([data.keys, self.halo_keys(part, data.keys)])  # original ids of [owned | halo]
        slot_keys[torch.from_numpy(slot_of).to(device)] = row_keys
        self.prop = ChunkPropagation(
            self.history,
            data.keys,
            slot_keys=slot_keys,
            num_nodes=self.graph_nodes,
            seed=cfg.optim.seed,
            kernel_impl=cfg.parallel.kernel,
            graph=self.halo_group,
            defer_history_grads=defer,
            compute_dtype=self.compute_dtype,
        )
        self.x_chunks = {id(c): model_input(data.x[c.rows]) for c in self.chunks + self.whole}
        self.stats = StepStats(loss=0.0)

    # -- halo hooks: a pipeline stage holds the whole graph (no halo); the hybrid overrides them ------------
    def chunk_ids(self, part: Part, num_chunks: int) -> np.ndarray:
        """The chunk of every local row: of the owned rows, METIS on the edges among them."""
        return owned_chunks(part, num_chunks, self.cfg.optim.seed)

    def halo_keys(self, part: Part, keys: Tensor) -> Tensor:
        """The original node ids of the halo rows (none here)."""
        return keys[:0]

    def halo_transfers(
        self, part: Part, chunk_of: np.ndarray, chunks: list[Chunk], slot_of: np.ndarray
    ) -> dict[int, ChunkTransfer] | None:
        """Per chunk id, the halo rows the chunk exchanges with the stage's graph-parallel peers (None:
        no peers)."""
        return None

    @property
    def halo_group(self) -> ProcessLayout | None:
        """The stage's graph-parallel ranks that exchange halo rows (None: no peers)."""
        return None

    def layer_range(self, num_layers: int) -> tuple[int, int]:
        return self.stage_ranges[self.mesh.stage]

    def attach(self, model: LayeredModel) -> list:
        if self.cfg.parallel.stage_layers:
            sizes = self.cfg.parallel.stage_layers
            if len(sizes) != self.mesh.stages or sum(sizes) != model.num_layers:
                raise DistGNNError(
                    f"--stage-layers {','.join(map(str, sizes))} must give {self.mesh.stages} stages "
                    f"summing to the model's {model.num_layers} layers"
                )
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            self.stage_ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        else:
            costs = layer_costs(model, self.graph_nodes, self.graph_edges)
            self.stage_ranges = split_layers(costs, self.mesh.stages)
        start, stop = self.stage_ranges[self.mesh.stage]
        self.in_width = model.input_width(start)
        self.out_width = model.input_width(stop) if stop < model.num_layers else model.output_width()
        return super().attach(model)

    # -- one epoch ---------------------------------------------------------------------------------------
    def train_step(self, model: LayeredModel, epoch: int) -> StepStats:
        model.train()
        exact = epoch < max(1, self.cfg.parallel.exact_epochs)
        chunks, transfers = (self.whole, self.whole_transfers) if exact else (self.chunks, self.transfers)
        chunks = self.chunk_order(chunks, epoch)
        self.prop.record, self.prop.stale_reads, self.prop.reads, self.prop.comm_bytes = True, 0, 0, 0
        self.prop.seeds.step = epoch
        self.stats = StepStats(loss=0.0)
        position = {c.index: i for i, c in enumerate(chunks)}
        inputs = self._post_receives(chunks, FWD)  # all of the phase's receives up front (see there)
        saved: list[tuple[Chunk, Tensor | None, Tensor]] = []  # (chunk, received input, output or loss)
        sends = []
        loss = torch.zeros((), dtype=torch.float64, device=self.mesh.world.device)
        try:
            for c in chunks:  # forward, chunk order
                h = self._wait(inputs[c.index], requires_grad=True)
                self.prop.use(c, position, transfers)
                out = self._forward(model, c, h)
                if self.is_last:
                    out = self.loss(out, c.rows)
                    loss += out.detach()
                else:
                    sends.append(self._send(out.detach(), c, FWD))
                saved.append((c, h, out))
            grads = self._post_receives(chunks[::-1], BWD)
            for c, h, out in reversed(saved):  # backward, reverse chunk order
                self.prop.use(c, position, transfers)
                out.backward(self._wait(grads[c.index]))
                if h is not None:
                    g = h.grad if h.grad is not None else torch.zeros_like(h)
                    sends.append(self._send(g, c, BWD))
            for w in sends:
                w.wait()
        finally:
            self.prop.seeds.step = None
        self.stats.loss = loss  # stays on the device until the trainer's batched reduction
        self.stats.comm_bytes += self.prop.comm_bytes
        self.stats.history_bytes = self.history.nbytes()
        self.stats.stale_reads, self.stats.neighbour_reads = self.prop.stale_reads, self.prop.reads
        return self.stats

    def chunk_order(self, chunks: list[Chunk], epoch: int) -> list[Chunk]:
        """This epoch's chunk order: as cut, or (``--chunk-order shuffle``) a permutation drawn from
        (seed, epoch), the same on every rank (the hybrid's exchanges pair chunks by position)."""
        if self.cfg.parallel.chunk_order == "fixed" or len(chunks) == 1:
            return chunks
        perm = np.random.default_rng([self.cfg.optim.seed, epoch]).permutation(len(chunks))
        return [chunks[i] for i in perm]

    @torch.no_grad()
    def evaluate(self, model: LayeredModel) -> Tensor:
        model.eval()
        self.stats = StepStats(loss=0.0)  # evaluation waits are not part of the training step's numbers
        self.prop.record = False
        c = self.whole[0]
        self.prop.use(c, {0: 0}, self.whole_transfers)
        h = self._wait(self._post_receives([c], FWD)[c.index])
        out = self._forward(model, c, h)
        self.prop.record = True
        if not self.is_last:
            self._send(out, c, FWD).wait()
            return torch.zeros(EVAL_WIDTH, dtype=torch.float64)
        return self.counts(out)

    def state_dict(self) -> dict:
        return {"history": self.history.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.history.load_state_dict(state["history"])

    # -- point to point (comm/p2p.py) ---------------------------------------------------------------------
    @property
    def is_last(self) -> bool:
        return self.link.is_last

    def _input(self, c: Chunk, h: Tensor | None):
        return self.x_chunks[id(c)] if h is None else h

    def _forward(self, model: LayeredModel, c: Chunk, h: Tensor | None) -> Tensor:
        """This stage's layers over chunk ``c`` (input ``h`` from the previous stage, else the features),
        under the compute dtype's autocast; a stage that is not the last hands on rows of the compute dtype
        (what the next stage's receive buffers hold; a layer may end in float32, e.g. after a float32
        bias)."""
        with self.autocast():
            out = model.forward_range(self._input(c, h), self.prop, *self.layers, x=self.x_chunks[id(c)])
        return out if self.is_last else rows(out, self.compute_dtype)

    def _send(self, t: Tensor, c: Chunk, direction: int) -> dist.Work:
        work, nbytes = self.link.send(t, c.index, direction)
        self.stats.comm_bytes += nbytes
        return work

    def _post_receives(self, chunks: list[Chunk], direction: int) -> dict[int, Pending]:
        """Post the receives of a phase at its start, so messages land while this stage computes. The
        gradient receives wait for the backward phase: on NCCL, a receive from the next stage shares a
        stream with the sends to it, so posted earlier it would hold back the activations it depends on."""
        width = self.in_width if direction == FWD else self.out_width
        sizes = [(c.index, c.rows.numel()) for c in chunks]
        return self.link.post_receives(sizes, direction, width, dtype=self.compute_dtype)

    def _wait(self, pending: Pending, *, requires_grad: bool = False) -> Tensor | None:
        """The received tensor, once it is there; the time spent waiting is the stage's bubble."""
        buf, waited = self.link.wait(pending)
        self.stats.bubble_s += waited
        return None if buf is None else buf.requires_grad_(requires_grad)
