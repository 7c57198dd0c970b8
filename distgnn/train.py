"""The full-graph training loop, the same on one process and on many, for every strategy.

The trainer owns the model, the optimiser, the loop, metrics, evaluation bookkeeping and checkpoints; a
:class:`~distgnn.parallel.strategy.Strategy` owns how a step and an evaluation run across ranks. Per
epoch: the strategy runs forward and backward (the loss is the sum of cross-entropy over training nodes
divided by the *global* number of training nodes), sums each parameter's gradient over the ranks that
computed it, and every rank takes one Adam step on the parameters it owns. Every rank starts from the
same parameters, so with an exact strategy the loss and gradients equal single-process full-graph
training (up to float summation order).
"""

from __future__ import annotations

import math
import resource
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from distgnn.checkpoint import files as ckpt
from distgnn.checkpoint import sets as checkpoint_set
from distgnn.comm.clock import Seconds, clock_for
from distgnn.comm.collectives import all_reduce
from distgnn.comm.layout import set_timeout
from distgnn.config import TrainConfig
from distgnn.errors import AgreedError, DistGNNError, TrainingInterrupted
from distgnn.kernels import isa, pool
from distgnn.metrics import (
    EVAL_WIDTH,
    MetricsWriter,
    TensorBoardWriter,
    evaluated_metrics,
    format_summary,
    selection,
    summarize,
)
from distgnn.models.registry import build_model
from distgnn.parallel.determinism import set_deterministic
from distgnn.parallel.node_data import NodeData, model_input, row_normalize
from distgnn.parallel.strategy import Strategy

__all__ = ["NodeData", "StopFlag", "TrainResult", "Trainer", "model_input", "param_groups", "row_normalize"]


class StopFlag(Protocol):
    """What the loop reads of a stop request (``distgnn.runtime.interrupt.StopRequest``): whether a
    SIGINT/SIGTERM came, and which (0: none)."""

    signum: int

    @property
    def requested(self) -> bool: ...


def param_groups(
    model: nn.Module,
    weight_decay: float,
    scope: str,
    params: list[nn.Parameter] | None = None,
    conv_weight_decay: float | None = None,
) -> list[dict]:
    """Adam parameter groups over ``params`` (default: all): L2 on every one (``all``) or on those of
    ``model.first_layer`` (``first``, the GCN paper's regularisation: weight decay on the first layer).
    With ``conv_weight_decay``, ``model.conv_parameters()`` get that L2 instead (GCNII's two groups).
    """
    params = list(model.parameters()) if params is None else params
    convs = {id(p) for p in model.conv_parameters()} if conv_weight_decay is not None else set()
    rest = [p for p in params if id(p) not in convs]
    if scope == "all":
        groups = [{"params": rest, "weight_decay": weight_decay}]
    else:
        first = {id(p) for p in model.first_layer.parameters()}
        groups = [
            {"params": [p for p in rest if id(p) in first], "weight_decay": weight_decay},
            {"params": [p for p in rest if id(p) not in first], "weight_decay": 0.0},
        ]
    if convs:
        groups.append({"params": [p for p in params if id(p) in convs], "weight_decay": conv_weight_decay})
    return groups


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    model: nn.Module | None = None


# One epoch's numbers as a float64 row, reduced over all ranks in one all-reduce: sums, then the times
# (averaged over ranks), then the evaluated flag, (correct, total) for train/val/test and last the
# non-finite code (distgnn.train.Trainer.nonfinite_code; on the device, no host read per step).
# "stop_votes": ranks that got SIGINT/SIGTERM (distgnn.runtime.interrupt); every rank sees the same sum.
# "minor_faults" / "sys_s": pages this process faulted in and kernel CPU time it used during the step
# (getrusage), where a step that reuses its memory faults almost nothing.
SUMMED = (
    "loss", "comm_bytes", "history_bytes", "stale_reads", "neighbour_reads", "stop_votes", "minor_faults"
)  # fmt: skip
AVERAGED = ("epoch_s", "comm_s", "exposed_comm_s", "bubble_s", "grad_sync_s", "eval_s", "sys_s")
WAITS = ("exposed_comm_s", "bubble_s", "grad_sync_s")  # an epoch's time not spent computing
# Host syncs (reads of device values: item / tolist / bool / cpu / nonzero) of a training step and of an
# evaluation, once the first step has built its caches: none. The batched reduction of the metrics reads
# the device once (the reduced table's .cpu()) and then the host copy (.tolist()). tests/dist/
# test_sync_audit.py counts them on CPU; tests/gpu checks the step with CUDA's sync debug mode.
HOST_SYNCS_PER_STEP = 0
HOST_READS_PER_REDUCTION = ("cpu", "tolist")


@dataclass
class EpochRow:
    """One epoch of one rank, unreduced: host numbers (floats or unread ``Seconds``: SUMMED, AVERAGED,
    evaluated) and a float64 [7] device tensor (the loss if it is a device tensor, then the 6 counts)."""

    host: list
    device: Tensor


class Trainer:
    """Owns the model, the optimiser and the loop for one rank; built identically on every rank."""

    def __init__(
        self,
        cfg: TrainConfig,
        strategy: Strategy,
        stop: StopFlag | None = None,
        partition: dict | None = None,
        on_timeout: Callable[[float], None] | None = None,
        callbacks: Sequence[Callable[[dict], None]] = (),
    ) -> None:
        """``stop``: the SIGINT/SIGTERM request (training then raises TrainingInterrupted after the epoch);
        ``partition``: :func:`distgnn.runtime.preflight.partition_identity` of the directory trained on,
        kept in checkpoints so that a resume on another partitioning is refused (None: not checked);
        ``on_timeout``: told each new collective timeout (the worker's watchdog takes it as its grace);
        ``callbacks``: each called with every epoch's metrics record (see :meth:`fit`)."""
        self.cfg, self.strategy, self.stop, self.partition = cfg, strategy, stop, partition
        self.on_timeout = on_timeout
        self.callbacks = tuple(callbacks)
        self.world = strategy.mesh.world
        self.rank = self.world.rank
        self.clock = clock_for(self.world.device)  # host timers on CPU, CUDA events on CUDA
        set_deterministic(cfg.optim.deterministic, self.world.device)
        # Same seed on every rank -> same initial parameters; the broadcast below makes it a guarantee.
        # Dropout masks do not use torch's RNG: they are keyed by (seed, epoch, site, node id).
        torch.manual_seed(cfg.optim.seed)
        data = strategy.data
        self.in_dim, self.out_dim = int(data.x.shape[1]), int(data.num_classes)
        self.model = build_model(
            cfg.model.name,
            self.in_dim,
            cfg.model.hidden,
            self.out_dim,
            layers=cfg.model.layers,
            dropout=cfg.model.dropout,
            heads=cfg.model.heads,
            alpha=cfg.model.alpha,
            lam=cfg.model.lam,
            attention_dropout=cfg.model.attention_dropout,
        ).to(self.world.device)
        self._broadcast_parameters()
        self.params = strategy.attach(self.model)  # the parameters this rank updates
        self.optimizer = torch.optim.Adam(
            param_groups(
                self.model,
                cfg.optim.weight_decay,
                cfg.optim.weight_decay_scope,
                self.params,
                cfg.optim.conv_weight_decay,
            ),
            lr=cfg.optim.lr,
        )
        self.global_counts = strategy.global_counts  # train, val, test
        if self.global_counts[0] == 0:
            raise DistGNNError("the graph has no training nodes (train_mask is empty on every rank)")
        self.history: list[dict] = []
        self.start_epoch = 0
        self.stop_votes = 0.0  # summed over ranks by reduce_epochs
        self.run_token: str | None = None  # rank 0: the run owning --checkpoint-dir (checkpoint/files.py)
        self.last_checkpoint: int | None = None  # the newest complete set this run resumed or wrote

    def _broadcast_parameters(self) -> None:
        if not self.world.is_distributed:
            return
        with torch.no_grad():
            params = list(self.model.parameters())
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            dist.broadcast(flat, src=dist.get_global_rank(self.world.group, 0), group=self.world.group)
            offset = 0
            for p in params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    # -- one epoch -------------------------------------------------------------------------------------
    def train_step(self, epoch: int) -> dict:
        """The strategy's forward and backward, the gradient sums, one optimiser step. Local numbers.

        Times are :class:`~distgnn.comm.clock.Seconds` of the device's clock and the loss may be a device
        tensor: nothing here waits for the device (see :meth:`reduce_epochs`).
        """
        clock = self.clock
        usage = resource.getrusage(resource.RUSAGE_SELF)
        t0 = clock.mark()
        self.optimizer.zero_grad(set_to_none=False)
        stats = self.strategy.train_step(self.model, epoch)
        bad = self.nonfinite_code(stats.loss)  # checked before the sum: names the rank it came from
        t_sync = clock.mark()
        self.strategy.reduce_gradients(self.model, self.params)
        t_synced = clock.mark()
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.optim.lr_at(epoch)
        if self.cfg.run.on_nonfinite != "skip-step" or not self._any_rank(bad):
            self.optimizer.step()
        epoch_s, grad_sync_s = Seconds(clock), Seconds(clock)
        epoch_s.add(t0, clock.mark())
        grad_sync_s.add(t_sync, t_synced)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return vars(stats) | {
            "epoch_s": epoch_s,
            "grad_sync_s": grad_sync_s,
            "nonfinite": bad,
            "minor_faults": float(after.ru_minflt - usage.ru_minflt),
            "sys_s": after.ru_stime - usage.ru_stime,
        }

    def nonfinite_code(self, loss: float | Tensor) -> Tensor:
        """This rank's unreduced check, a float64 device scalar (no host read): 1 loss, 2 gradient, 3 both."""
        dev = self.world.device
        if isinstance(loss, Tensor):
            loss_bad = (~torch.isfinite(loss.detach())).to(dev, torch.float64).reshape(())
        else:
            loss_bad = torch.tensor(float(not math.isfinite(loss)), dtype=torch.float64, device=dev)
        grads = [p.grad.reshape(-1) for p in self.params if p.grad is not None]
        # one check over all gradients (a per-tensor check costs two ops per parameter every step)
        ok = torch.isfinite(torch.cat(grads)).all() if grads else torch.tensor(True)
        return (~ok).to(dev, torch.float64) * 2 + loss_bad

    def _any_rank(self, code: Tensor) -> bool:
        """Whether any rank saw a non-finite value this step (skip-step only: one 1-value all-reduce and
        one host read per step)."""
        code = code.clone()
        if self.world.is_distributed:
            dist.all_reduce(code, op=dist.ReduceOp.MAX, group=self.world.group)
        return bool(code > 0)

    def is_eval_epoch(self, epoch: int) -> bool:
        return (epoch + 1) % self.cfg.run.eval_every == 0 or epoch + 1 == self.cfg.optim.epochs

    def local_epoch(self, epoch: int) -> EpochRow:
        """Train one epoch (and evaluate when scheduled); this rank's numbers, not yet reduced or read."""
        step = self.train_step(epoch)
        step["stop_votes"] = float(self.stop is not None and self.stop.requested)
        dev = self.world.device
        counts = torch.zeros(EVAL_WIDTH, dtype=torch.float64, device=dev)
        evaluated = self.is_eval_epoch(epoch)
        if evaluated:
            t0 = self.clock.mark()
            counts = self.strategy.evaluate(self.model).to(dev, torch.float64, non_blocking=True)
            step["eval_s"] = Seconds(self.clock)
            step["eval_s"].add(t0, self.clock.mark())
        loss = step.pop("loss")
        bad = step.pop("nonfinite").reshape(1)
        if isinstance(loss, Tensor):  # on the device: goes into the device half of the row
            device = torch.cat([loss.detach().to(torch.float64).reshape(1), counts, bad])
            loss = 0.0
        else:
            device = torch.cat([counts.new_zeros(1), counts, bad])
        host = [loss] + [step.get(k, 0.0) for k in SUMMED[1:] + AVERAGED] + [float(evaluated)]
        pool.trim()  # the next epoch reuses this one's large buffers (kernels/pool.py)
        return EpochRow(host=host, device=device)

    def reduce_epochs(self, first_epoch: int, rows: list[EpochRow]) -> list[dict]:
        """One all-reduce for the numbers of several epochs: loss, bytes and counts are sums over ranks,
        times become means over ranks. Batching keeps the epochs between evaluations free of host syncs:
        a reduction reads the device once (``.cpu()`` of the reduced table, then ``tolist`` of that host
        copy), whatever the number of epochs, and reads the timers' events (CUDA) once.
        """
        host = torch.tensor([[float(v) for v in r.host] for r in rows], dtype=torch.float64)
        device = torch.stack([r.device for r in rows])
        table = torch.cat([host.to(device.device, non_blocking=True), device], dim=1)
        local = table.clone()  # the all-reduce below works in place
        if self.world.is_distributed:  # gloo and NCCL both reduce on the device the group uses
            table = all_reduce(table, self.world)
        rows_read = table.cpu().tolist()  # the reduction's one device read
        bad_ranks = self.check_finite(first_epoch, local, rows_read)
        n_sum, n_avg = len(SUMMED), len(AVERAGED)
        n_host = n_sum + n_avg + 1
        records = []
        for i, row in enumerate(rows_read):
            summed = dict(zip(SUMMED, row[:n_sum], strict=True))
            summed["loss"] += row[n_host]  # the device half's loss
            avg = {
                k: v / self.world.world_size
                for k, v in zip(AVERAGED, row[n_sum : n_sum + n_avg], strict=True)
            }
            evaluated = row[n_sum + n_avg] > 0
            self.stop_votes += summed["stop_votes"]
            accs, val_loss = (
                evaluated_metrics(row[n_host + 1 : -1]) if evaluated else ([math.nan] * 3, math.nan)
            )
            reads = summed["neighbour_reads"]
            records.append(
                {
                    "epoch": first_epoch + i + 1,
                    "loss": summed["loss"],
                    "train_acc": accs[0],
                    "val_acc": accs[1],
                    "test_acc": accs[2],
                    "val_loss": val_loss,
                    "epoch_s": avg["epoch_s"],
                    "compute_s": max(
                        avg["epoch_s"] - avg["exposed_comm_s"] - avg["bubble_s"] - avg["grad_sync_s"], 0.0
                    ),
                    "comm_s": avg["comm_s"],
                    "exposed_comm_s": avg["exposed_comm_s"],
                    "comm_bytes": int(round(summed["comm_bytes"])),
                    "bubble_s": avg["bubble_s"],
                    "history_bytes": int(round(summed["history_bytes"])),
                    "stale_read_frac": summed["stale_reads"] / reads if reads else 0.0,
                    "grad_sync_s": avg["grad_sync_s"],
                    "eval_s": avg["eval_s"],
                    "nonfinite_ranks": len(bad_ranks.get(i, {})),
                    "minor_faults": int(round(summed["minor_faults"])),
                    "sys_s": avg["sys_s"],
                }
            )
        return records

    def check_finite(
        self, first_epoch: int, local: Tensor, rows: list[list[float]]
    ) -> dict[int, dict[int, int]]:
        """Rows whose reduced non-finite column is set: which ranks saw what (one all-gather, only then).

        ``--on-nonfinite stop`` raises the same error on every rank, naming the first such epoch and its
        ranks; ``skip-step`` (whose steps were already skipped) notes it on rank 0 and returns them.
        """
        found: dict[int, dict[int, int]] = {}
        for i in [i for i, row in enumerate(rows) if row[-1] > 0]:
            codes = local[i, -1].reshape(1).to(self.world.device)
            if self.world.is_distributed:
                gathered = [torch.zeros_like(codes) for _ in range(self.world.world_size)]
                dist.all_gather(gathered, codes, group=self.world.group)
                codes = torch.cat(gathered)
            found[i] = {r: int(c) for r, c in enumerate(codes.tolist()) if c > 0}
            message = nonfinite_message(first_epoch + i + 1, found[i])
            if self.cfg.run.on_nonfinite == "stop":
                raise AgreedError(f"{message}; stopping (--on-nonfinite skip-step would skip such steps)")
            if self.rank == 0:  # a warning, shown with --no-progress too
                print(f"distgnn: warning: {message}; optimiser step skipped", file=sys.stderr, flush=True)
        return found

    def run_epoch(self, epoch: int) -> dict:
        """Train, evaluate when scheduled and reduce the metrics of one epoch."""
        return self.reduce_epochs(epoch, [self.local_epoch(epoch)])[0]

    # -- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self, epoch: int) -> dict:
        owned = {id(p) for p in self.params}
        state = {
            "epoch": epoch,
            "world_size": self.world.world_size,
            "rank": self.rank,
            "signature": {**self.cfg.model_signature(), "partition": self.partition},
            "model": self.model.state_dict(),
            # What `distgnn export` needs to gather one model: the parameters this rank updates (a
            # pipeline stage: its layers'), and how to build the model again.
            "owned": [name for name, p in self.model.named_parameters() if id(p) in owned],
            "model_config": {**asdict(self.cfg.model), "in_dim": self.in_dim, "out_dim": self.out_dim},
            "optimizer": self.optimizer.state_dict(),
            "rng": ckpt.rng_state(),
            "history": self.history,
        }
        state["strategy"] = self.strategy.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        saved = state["signature"]
        wrong_partition = ckpt.partition_mismatch(saved.get("partition"), self.partition)
        if wrong_partition:  # the same on every rank (their meta.json agree): printed once
            raise AgreedError(wrong_partition)
        # a key older checkpoints lack was at its default then (options added later default to old behaviour)
        default = TrainConfig().model_signature()
        diff = sorted(k for k, v in self.cfg.model_signature().items() if saved.get(k, default[k]) != v)
        if diff:
            raise DistGNNError(f"checkpoint was written with different settings: {', '.join(diff)}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:  # same settings, another graph: the feature or class count differs
            detail = str(err).strip().splitlines()[-1].strip()
            raise DistGNNError(f"checkpoint does not fit this model and partition: {detail}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.strategy.load_state_dict(state["strategy"])
        ckpt.set_rng_state(state["rng"])
        self.history = [{"val_loss": math.nan, **r} for r in state["history"]]  # older records lack it
        self.start_epoch = int(state["epoch"])

    def maybe_resume(self) -> None:
        """With ``--resume``, or after an elastic restart (torchrun / ``--max-restarts``), continue from
        the newest checkpoint every rank can load; a restart only resumes this run's own checkpoints."""
        root = self.cfg.run.checkpoint_dir
        if not root:
            return
        restarted = checkpoint_set.restart_count() > 0
        if self.rank == 0:
            self.run_token = ckpt.run_token(root, new=not (self.cfg.run.resume or restarted))
        if not (self.cfg.run.resume or restarted):
            return
        only = self.run_token if restarted and not self.cfg.run.resume else None
        found = checkpoint_set.resume_set(self.world, root, run=only)
        log = self._log if not restarted else self._note  # a restart is always worth a line
        prefix = f"restart {checkpoint_set.restart_count()}: " if restarted else ""
        if found is None:
            log(f"{prefix}no checkpoint in {root}; starting from epoch 0")
            return
        epoch, state = found
        self.load_state_dict(state)
        self.last_checkpoint = epoch
        log(f"{prefix}resumed from epoch {epoch} ({root})")

    def save_checkpoint(self, epoch: int) -> bool:
        """Every rank: save ``epoch``'s set; False (after one warning) when the save failed."""
        root = self.cfg.run.checkpoint_dir
        assert root is not None
        state = self.state_dict(epoch)
        keep = self.cfg.run.keep_checkpoints
        saved = checkpoint_set.save_set(self.world, root, epoch, state, keep=keep, run=self.run_token)
        if saved:
            self.last_checkpoint = epoch
        return saved

    def interrupted(self, done: int, saved: bool) -> TrainingInterrupted:
        """Every rank, once the ranks agreed to stop after ``done`` epochs: checkpoint when asked to (and
        not just done), and say where the newest complete checkpoint is."""
        root = self.cfg.run.checkpoint_dir
        if self.cfg.run.checkpoint_on_exit and not saved:
            self.save_checkpoint(done)
        path = str(ckpt.epoch_dir(root, self.last_checkpoint)) if root and self.last_checkpoint else None
        # a rank that got no signal itself stops on its peers' request: it reports SIGTERM (exit 143)
        signum = self.stop.signum if self.stop is not None and self.stop.signum else int(signal.SIGTERM)
        return TrainingInterrupted(done, path, signum)

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train from the start (or the resumed epoch) to ``--epochs``; the history and the model.

        Per-epoch records (what ``--metrics-out`` gets, one dict per epoch) are reduced in batches, at
        evaluation epochs, checkpoint epochs and the last epoch: every rank gets the same records then,
        in epoch order, and hands each to the writers (rank 0) and to every callback (every rank), before
        that epoch's checkpoint is saved. A callback gets its own copy of the record. What a callback
        raises propagates like any error of this rank (the worker's failure reporting names the rank;
        its peers stop at their next collective instead of waiting for it).
        """
        self._log(f"distgnn: {isa.describe()}")  # which CPU kernel entry point runs (once, rank 0)
        self.maybe_resume()
        cfg = self.cfg
        writers: list[MetricsWriter | TensorBoardWriter] = []  # rank 0: the same records to each
        if self.rank == 0 and cfg.run.metrics_out:
            writers.append(MetricsWriter(cfg.run.metrics_out, keep_through=self.start_epoch))
        if self.rank == 0 and cfg.run.tensorboard:
            writers.append(TensorBoardWriter(cfg.run.tensorboard, keep_through=self.start_epoch))
        bar = tqdm(
            total=cfg.optim.epochs,
            initial=self.start_epoch,
            desc=f"train {cfg.model.name}",
            unit="epoch",
            file=sys.stderr,
            disable=not (self.rank == 0 and cfg.run.progress),
            dynamic_ncols=True,
        )
        try:
            pending: list[EpochRow] = []
            for epoch in range(self.start_epoch, cfg.optim.epochs):
                pending.append(self.local_epoch(epoch))
                done = epoch + 1
                save = bool(cfg.run.checkpoint_every) and (
                    done % cfg.run.checkpoint_every == 0 or done == cfg.optim.epochs
                )
                # Metrics are reduced at evaluation epochs, checkpoints and the end: no extra sync between.
                if self.is_eval_epoch(epoch) or save:
                    for record in self.reduce_epochs(done - len(pending), pending):
                        self.history.append(record)
                        for writer in writers:
                            writer.write(record)
                        for callback in self.callbacks:
                            callback(dict(record))
                    pending = []
                    last = self.history[-1]
                    bar.set_postfix(loss=f"{last['loss']:.4f}", val=_pct(last["val_acc"]), refresh=False)
                bar.update()
                # --patience: decided on the reduced records, which every rank holds alike
                stop_early = self.is_eval_epoch(epoch) and self.patience_exhausted(done)
                if stop_early and cfg.run.checkpoint_every:
                    save = True  # the run ends here: its last checkpoint is this epoch's
                if epoch == self.start_epoch:  # set-up and first-epoch warm-up are over
                    self.set_collective_timeout(cfg.run.collective_timeout)
                if save:
                    self.set_collective_timeout(self.world.timeout)  # ranks may write at different speeds
                    self.save_checkpoint(done)
                    self.set_collective_timeout(cfg.run.collective_timeout)
                if self.stop_votes:  # a rank got SIGINT/SIGTERM: every rank stops after this epoch
                    raise self.interrupted(done, save)
                if stop_early:
                    best, improved = selection(self.history, cfg.run.best_by)
                    self._log(
                        f"distgnn: stopped early after epoch {done}: no better validation epoch "
                        f"({cfg.run.best_by}) since epoch {improved}, {cfg.run.patience} epochs ago; "
                        f"best: epoch {best['epoch']}, accuracy {_pct(best['val_acc'])}, "
                        f"loss {best['val_loss']:.4f}"
                    )
                    break
        finally:
            bar.close()
            for writer in writers:
                writer.close()
        summary = summarize(self.history, cfg.run.best_by)
        if self.rank == 0 and cfg.run.progress:
            print(format_summary(summary), file=sys.stderr, flush=True)
        return TrainResult(history=self.history, summary=summary, model=self.model)

    def patience_exhausted(self, done: int) -> bool:
        """``--patience K``: whether the last improvement (``--best-by``) is K or more epochs old after
        ``done``."""
        if not self.cfg.run.patience:
            return False
        best, improved = selection(self.history, self.cfg.run.best_by)
        return best is not None and done - improved >= self.cfg.run.patience

    def set_collective_timeout(self, seconds: float | None) -> None:
        """How long a rank waits for a silent peer in any of this job's groups (None: leave as is)."""
        if self.world.is_distributed and seconds is not None:
            mesh = self.strategy.mesh
            set_timeout([mesh.world.group, mesh.pipe.group, mesh.graph.group], seconds)
            if self.on_timeout is not None:  # a rank stopped longer than its peers wait is of no use to them
                self.on_timeout(seconds)

    def _log(self, message: str) -> None:
        if self.rank == 0 and self.cfg.run.progress:
            print(message, file=sys.stderr, flush=True)

    def _note(self, message: str) -> None:
        if self.rank == 0:
            print(f"distgnn: {message}", file=sys.stderr, flush=True)


def nonfinite_message(epoch: int, codes: dict[int, int]) -> str:
    """``non-finite loss on rank 1 and gradient on ranks 0, 1 at epoch 3`` from {rank: 1 loss, 2 gradient,
    3 both}. A NaN spreads to the gradients of a rank's peers through the halo exchange: the loss names
    where it started."""
    parts = []
    for bit, what in ((1, "loss"), (2, "gradient")):
        ranks = [r for r, code in sorted(codes.items()) if code & bit]
        if ranks:
            parts.append(f"{what} on rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}")
    return f"non-finite {' and '.join(parts)} at epoch {epoch}"


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.1f}%"
