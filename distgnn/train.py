"""The full-graph training loop, the same on one process and on many.

Per epoch every rank runs one forward pass over the rows it owns (the strategy behind ``prop`` fetches
neighbour rows), computes the sum of cross-entropy over its own training nodes divided by the *global*
number of training nodes, backpropagates, sums parameter gradients over ranks with one all-reduce and
takes one Adam step. Since every rank starts from the same parameters and applies the same summed
gradient, the parameters stay identical across ranks, and the loss and gradients equal single-process
full-graph training (up to float summation order) when the strategy is exact.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from distgnn import checkpoint as ckpt
from distgnn.config import TrainConfig
from distgnn.errors import DistGNNError
from distgnn.metrics import MetricsWriter, accuracies, correct_counts, format_summary, summarize
from distgnn.models.inputs import Input, SparseRows
from distgnn.models.propagation import Propagation
from distgnn.models.registry import build_model
from distgnn.parallel.graph import GraphParallel
from distgnn.parallel.layout import ProcessLayout


class Layout(Protocol):
    """What the loop needs of :class:`distgnn.parallel.layout.ProcessLayout`."""

    rank: int
    world_size: int
    device: torch.device
    group: Any

    def barrier(self) -> None: ...


@dataclass
class NodeData:
    """This rank's owned rows: features, labels, split masks (all on the training device)."""

    x: Tensor
    y: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    num_classes: int

    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        train_mask: np.ndarray,
        val_mask: np.ndarray,
        test_mask: np.ndarray,
        num_classes: int,
        *,
        device: torch.device | str = "cpu",
        feature_norm: str = "none",
    ) -> NodeData:
        # np.array copies the read-only memory-mapped partition arrays into memory torch may own.
        feats = torch.from_numpy(np.array(x, dtype=np.float32)).to(device)
        if feature_norm == "row":
            feats = row_normalize(feats)
        elif feature_norm != "none":
            raise DistGNNError(f"feature-norm must be one of none, row, got {feature_norm!r}")

        def t(a: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.from_numpy(np.array(a)).to(device=device, dtype=dtype)

        return cls(
            x=feats,
            y=t(y, torch.int64),
            train_mask=t(train_mask, torch.bool),
            val_mask=t(val_mask, torch.bool),
            test_mask=t(test_mask, torch.bool),
            num_classes=int(num_classes),
        )

    @classmethod
    def from_part(
        cls, part: Any, *, device: torch.device | str = "cpu", feature_norm: str = "none"
    ) -> NodeData:
        """From a :class:`distgnn.partitioning.Part` (or anything with the same fields, e.g. a Graph)."""
        return cls.from_arrays(
            part.x,
            part.y,
            part.train_mask,
            part.val_mask,
            part.test_mask,
            part.num_classes,
            device=device,
            feature_norm=feature_norm,
        )


SPARSE_INPUT_DENSITY = 0.1  # below this fraction of non-zeros, features are fed as sparse CSR


def model_input(x: Tensor) -> Input:
    """The features as the first layer reads them: sparse when mostly zero (bag-of-words), else dense.

    Same values either way; sparse makes input dropout and the first linear map ~1/density cheaper.
    """
    if x.numel() and int(torch.count_nonzero(x)) <= SPARSE_INPUT_DENSITY * x.numel():
        return SparseRows.from_dense(x)
    return x


def param_groups(model: nn.Module, weight_decay: float, scope: str) -> list[dict]:
    """Adam parameter groups: L2 on every parameter (``all``) or on ``model.first_layer``'s (``first``).

    ``first`` is the GCN paper's regularisation (Kipf & Welling apply weight decay to the first layer).
    """
    params = list(model.parameters())
    if scope == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    first = {id(p) for p in model.first_layer.parameters()}
    return [
        {"params": [p for p in params if id(p) in first], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in first], "weight_decay": 0.0},
    ]


def row_normalize(x: Tensor) -> Tensor:
    """Scale each row to sum 1 (the GCN paper's preprocessing); all-zero rows stay zero.

    It is a per-node operation, so each rank normalises its own rows and the result equals normalising
    the whole graph.
    """
    if bool((x < 0).any()):
        raise DistGNNError("--feature-norm row needs non-negative features (found negative values)")
    s = x.sum(dim=1, keepdim=True)
    return torch.where(s > 0, x / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(x))


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    model: nn.Module | None = None


class Trainer:
    """Owns the model, the optimiser and the loop for one rank; built identically on every rank."""

    def __init__(self, cfg: TrainConfig, data: NodeData, prop: Propagation, layout: Layout) -> None:
        self.cfg, self.data, self.prop, self.layout = cfg, data, prop, layout
        self.rank, self.world = layout.rank, layout.world_size
        torch.use_deterministic_algorithms(cfg.deterministic)
        # Same seed on every rank -> same initial parameters; the broadcast below makes it a guarantee.
        torch.manual_seed(cfg.seed)
        self.model = build_model(
            cfg.model,
            int(data.x.shape[1]),
            cfg.hidden,
            data.num_classes,
            layers=cfg.layers,
            dropout=cfg.dropout,
            heads=cfg.heads,
        ).to(layout.device)
        self.params = [p for p in self.model.parameters()]
        self._broadcast_parameters()
        # Dropout masks are per node, so each rank draws its own (seeded per rank, reproducible).
        torch.manual_seed(cfg.seed * 1_000_003 + 7919 * (self.rank + 1))
        self.optimizer = torch.optim.Adam(
            param_groups(self.model, cfg.weight_decay, cfg.weight_decay_scope), lr=cfg.lr
        )
        counts = self._all_reduce(torch.stack([m.sum() for m in self._masks()]).to(torch.float64))
        self.global_counts = [int(c) for c in counts.tolist()]  # train, val, test
        if self.global_counts[0] == 0:
            raise DistGNNError("the graph has no training nodes (train_mask is empty on every rank)")
        self.x = model_input(data.x)
        self.history: list[dict] = []
        self.start_epoch = 0

    # -- collectives -----------------------------------------------------------------------------------
    def _all_reduce(self, t: Tensor) -> Tensor:
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.layout.group)
        return t

    def _broadcast_parameters(self) -> None:
        if self.world == 1:
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.params])
            dist.broadcast(flat, src=dist.get_global_rank(self.layout.group, 0), group=self.layout.group)
            self._unflatten_into(flat, [p.data for p in self.params])

    def _sync_gradients(self) -> None:
        """Sum parameter gradients over ranks with one all-reduce of a flat buffer."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.layout.group)
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self._unflatten_into(flat, [p.grad for p in self.params])

    @staticmethod
    def _unflatten_into(flat: Tensor, targets: list[Tensor]) -> None:
        offset = 0
        for t in targets:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n

    def _masks(self) -> list[Tensor]:
        return [self.data.train_mask, self.data.val_mask, self.data.test_mask]

    # -- one epoch -------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        """Forward, loss, backward, gradient all-reduce and one optimiser step. Returns local timings."""
        counters = getattr(self.prop, "counters", None)
        if counters is not None:
            counters.reset()
        t0 = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        logits = self.model(self.x, self.prop)
        m = self.data.train_mask
        loss = F.cross_entropy(logits[m], self.data.y[m], reduction="sum") / self.global_counts[0]
        # Every rank must run backward, even without training nodes: the halo exchange in backward is
        # a collective. Indexing keeps the graph connected, so zero gradients still flow through it.
        loss.backward()
        t_sync = time.perf_counter()
        self._sync_gradients()
        grad_sync_s = time.perf_counter() - t_sync
        self.optimizer.step()
        epoch_s = time.perf_counter() - t0
        out = {"loss": float(loss.detach()), "epoch_s": epoch_s, "grad_sync_s": grad_sync_s}
        out.update(_comm_stats(counters))
        return out

    @torch.no_grad()
    def evaluate(self) -> tuple[Tensor, float]:
        """This rank's (correct, total) counts for train/val/test, and the local evaluation time."""
        t0 = time.perf_counter()
        self.model.eval()
        logits = self.model(self.x, self.prop)
        return correct_counts(logits, self.data.y, self._masks()), time.perf_counter() - t0

    def is_eval_epoch(self, epoch: int) -> bool:
        return (epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs

    def local_epoch(self, epoch: int) -> Tensor:
        """Train one epoch (and evaluate when scheduled); this rank's numbers, not yet reduced.

        Row layout: loss, bytes, epoch_s, comm_s, exposed_comm_s, grad_sync_s, eval_s, evaluated flag,
        then (correct, total) for train/val/test.
        """
        step = self.train_step()
        counts, eval_s = (
            self.evaluate() if self.is_eval_epoch(epoch) else (torch.zeros(6, dtype=torch.float64), 0.0)
        )
        head = [
            step["loss"],
            step["comm_bytes"],
            step["epoch_s"],
            step["comm_s"],
            step["exposed_comm_s"],
            step["grad_sync_s"],
            eval_s,
            float(self.is_eval_epoch(epoch)),
        ]
        return torch.cat([torch.tensor(head, dtype=torch.float64), counts.cpu()])

    def reduce_epochs(self, first_epoch: int, rows: list[Tensor]) -> list[dict]:
        """One all-reduce for the numbers of several epochs: loss, bytes and counts are sums over ranks,
        times become means over ranks. Batching keeps the epochs between evaluations free of extra syncs.
        """
        table = torch.stack(rows)
        if self.world > 1:  # gloo and NCCL both reduce on the device the group uses
            table = self._all_reduce(table.to(self.layout.device)).cpu()
        records = []
        for i, row in enumerate(table.tolist()):
            loss, nbytes = row[0], row[1]
            epoch_s, comm_s, exposed_s, grad_sync_s, eval_s = (v / self.world for v in row[2:7])
            accs = accuracies(torch.tensor(row[8:14])) if row[7] > 0 else [math.nan] * 3
            records.append(
                {
                    "epoch": first_epoch + i + 1,
                    "loss": loss,
                    "train_acc": accs[0],
                    "val_acc": accs[1],
                    "test_acc": accs[2],
                    "epoch_s": epoch_s,
                    "compute_s": max(epoch_s - exposed_s - grad_sync_s, 0.0),
                    "comm_s": comm_s,
                    "exposed_comm_s": exposed_s,
                    "comm_bytes": int(round(nbytes)),
                    "grad_sync_s": grad_sync_s,
                    "eval_s": eval_s,
                }
            )
        return records

    def run_epoch(self, epoch: int) -> dict:
        """Train, evaluate when scheduled and reduce the metrics of one epoch."""
        return self.reduce_epochs(epoch, [self.local_epoch(epoch)])[0]

    # -- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self, epoch: int) -> dict:
        state = {
            "epoch": epoch,
            "world_size": self.world,
            "rank": self.rank,
            "signature": self.cfg.model_signature(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": ckpt.rng_state(),
            "history": self.history,
        }
        if hasattr(self.prop, "state_dict"):
            state["prop"] = self.prop.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["signature"] != self.cfg.model_signature():
            diff = sorted(k for k, v in self.cfg.model_signature().items() if state["signature"].get(k) != v)
            raise DistGNNError(f"checkpoint was written with different settings: {', '.join(diff)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "prop" in state and hasattr(self.prop, "load_state_dict"):
            self.prop.load_state_dict(state["prop"])
        ckpt.set_rng_state(state["rng"])
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"])

    def maybe_resume(self) -> None:
        """With ``--resume``, continue from the newest complete checkpoint (if there is one)."""
        if not (self.cfg.resume and self.cfg.checkpoint_dir):
            return
        found = ckpt.latest(self.cfg.checkpoint_dir)
        if found is None:
            self._log(f"no checkpoint in {self.cfg.checkpoint_dir}; starting from epoch 0")
            return
        epoch, world = found
        if world != self.world:
            raise DistGNNError(
                f"checkpoint in {self.cfg.checkpoint_dir} was written by {world} processes, "
                f"this job has {self.world}"
            )
        self.load_state_dict(ckpt.load_rank_state(self.cfg.checkpoint_dir, epoch, self.rank))
        self._log(f"resumed from epoch {epoch} ({self.cfg.checkpoint_dir})")

    def save_checkpoint(self, epoch: int) -> None:
        root = self.cfg.checkpoint_dir
        assert root is not None
        ckpt.save_rank_state(root, epoch, self.rank, self.state_dict(epoch))
        self.layout.barrier()
        if self.rank == 0:
            ckpt.commit(root, epoch, self.world)
        self.layout.barrier()

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        self.maybe_resume()
        cfg = self.cfg
        writer = None
        if self.rank == 0 and cfg.metrics_out:
            writer = MetricsWriter(cfg.metrics_out, keep_through=self.start_epoch)
        bar = tqdm(
            total=cfg.epochs,
            initial=self.start_epoch,
            desc=f"train {cfg.model}",
            unit="epoch",
            file=sys.stderr,
            disable=not (self.rank == 0 and cfg.progress),
            dynamic_ncols=True,
        )
        try:
            pending: list[Tensor] = []
            for epoch in range(self.start_epoch, cfg.epochs):
                pending.append(self.local_epoch(epoch))
                done = epoch + 1
                save = bool(cfg.checkpoint_every) and (done % cfg.checkpoint_every == 0 or done == cfg.epochs)
                # Metrics are reduced at evaluation epochs, checkpoints and the end: no extra sync between.
                if self.is_eval_epoch(epoch) or save:
                    for record in self.reduce_epochs(done - len(pending), pending):
                        self.history.append(record)
                        if writer is not None:
                            writer.write(record)
                    pending = []
                    last = self.history[-1]
                    bar.set_postfix(loss=f"{last['loss']:.4f}", val=_pct(last["val_acc"]), refresh=False)
                bar.update()
                if save:
                    self.save_checkpoint(done)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        summary = summarize(self.history)
        if self.rank == 0 and cfg.progress:
            print(format_summary(summary), file=sys.stderr, flush=True)
        return TrainResult(history=self.history, summary=summary, model=self.model)

    def _log(self, message: str) -> None:
        if self.rank == 0 and self.cfg.progress:
            print(message, file=sys.stderr, flush=True)


def _comm_stats(counters: Any) -> dict:
    """This rank's halo traffic of the training step (forward rows and backward gradients)."""
    if counters is None:
        return {"comm_bytes": 0, "comm_s": 0.0, "exposed_comm_s": 0.0}
    return {
        "comm_bytes": counters.bytes_sent(direction="fwd") + counters.bytes_sent(direction="bwd"),
        "comm_s": float(counters.times.get("comm", 0.0)),
        "exposed_comm_s": float(counters.times.get("exposed_comm", 0.0)),
    }


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.1f}%"


def train(cfg: TrainConfig, data: NodeData, prop: Propagation, layout: Layout) -> TrainResult:
    """Build a :class:`Trainer` and run it to ``cfg.epochs``."""
    return Trainer(cfg, data, prop, layout).fit()


def train_partition(
    cfg: TrainConfig, part_dir: str, layout: ProcessLayout
) -> tuple[TrainResult, GraphParallel]:
    """One rank of a graph-parallel job: load this rank's part, build the strategy, train, drain the comm."""
    prop = GraphParallel.from_partition_dir(
        part_dir,
        layout,
        staleness=cfg.halo_staleness,
        comm_dtype=cfg.torch_comm_dtype,
        overlap=cfg.overlap,
        kernel_impl=cfg.kernel,
    )
    data = NodeData.from_part(prop.part, device=layout.device, feature_norm=cfg.feature_norm)
    result = train(cfg, data, prop, layout)
    prop.flush()
    return result, prop
