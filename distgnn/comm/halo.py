"""Halo exchange: fetch the neighbour rows other ranks own, and send their gradients back.

Forward: each rank sends peer q the owned rows q needs (``send_idx[send_offsets[q]:send_offsets[q+1]]``)
and receives its halo rows, which arrive already in halo order (halo rows are grouped by owner).
Backward: the gradient of each halo row goes back to its owner, which accumulates it (``index_add_``)
into the gradient of the owned row it sent. Both directions are one ``all_to_all_single`` with uneven
splits on the explicitly passed group (gloo on CPU and NCCL on CUDA both implement it).

``start(h)`` launches the exchange asynchronously and returns a :class:`HaloHandle`; ``handle.wait()``
returns the halo rows, attached to autograd, so the caller can compute on its own rows meanwhile.
An optional wire dtype (bf16/fp16) casts the payload for the wire and back on receipt, both directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from distgnn.comm.clock import HostClock, Mark, clock_for
from distgnn.comm.counters import CommCounters
from distgnn.errors import DistGNNError
from distgnn.kernels import pool

if TYPE_CHECKING:
    from distgnn.comm.layout import ProcessLayout
    from distgnn.partitioning.part import Part

WIRE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
GradSink = Callable[[Hashable, Tensor], None]


class HaloPlan:
    """The static routing of one partition: which owned rows go to which peer, how many rows come back."""

    def __init__(
        self,
        send_idx: Tensor,
        send_counts: Sequence[int],
        recv_counts: Sequence[int],
        n_owned: int,
    ) -> None:
        self.send_idx = send_idx
        self.send_counts = [int(c) for c in send_counts]
        self.recv_counts = [int(c) for c in recv_counts]
        self.n_owned = int(n_owned)
        if sum(self.send_counts) != send_idx.shape[0]:
            raise DistGNNError("halo plan is inconsistent: send counts do not add up to send_idx")
        if send_idx.numel() and (int(send_idx.min()) < 0 or int(send_idx.max()) >= n_owned):
            raise DistGNNError(f"halo plan sends rows outside the {n_owned} owned rows")

    @property
    def n_halo(self) -> int:
        return sum(self.recv_counts)

    @property
    def n_send(self) -> int:
        return sum(self.send_counts)

    @classmethod
    def from_part(cls, part: Part, device: torch.device | str = "cpu") -> HaloPlan:
        send_counts = np.diff(part.send_offsets).tolist()
        recv_counts = np.diff(part.halo_offsets).tolist()
        if len(send_counts) != part.num_parts or len(recv_counts) != part.num_parts:
            raise DistGNNError(f"part {part.part_id}: send/halo offsets must have num_parts + 1 entries")
        # np.array copies the (read-only, memory-mapped) array into memory torch may own.
        send_idx = torch.from_numpy(np.array(part.send_idx, dtype=np.int64)).to(device)
        return cls(send_idx, send_counts, recv_counts, part.n_owned)


class PendingExchange:
    """One launched all-to-all; ``wait()`` blocks until the rows are in and returns them (cached).

    Timing (marks of the counters' clock, see ``distgnn.comm.clock``): ``comm`` runs from the launch
    until the transfer is first *observed* complete, either by :meth:`poll` (which callers invoke
    between pieces of overlapped computation) or at the end of ``wait()``; ``exposed_comm`` is only the
    time the caller is blocked (the launch call and ``wait()``). Polling finely keeps ``comm`` close to
    the real transfer time instead of stretching it to whenever the caller happens to wait. On CUDA
    (event clock) ``poll`` records nothing: the end of ``comm`` is where the current stream has waited
    for the transfer, and ``exposed_comm`` the time the stream spent waiting.
    """

    def __init__(
        self,
        work: dist.Work | None,
        out: Tensor,
        result_dtype: torch.dtype,
        counters: CommCounters | None,
        started: Mark,
        slot: tuple[Hashable, str] = ("", "fwd"),
    ) -> None:
        self._slot = slot
        self._work = work
        self._out = out
        self._dtype = result_dtype
        self._counters = counters
        self._clock = counters.clock if counters is not None else HostClock()
        self._started = started
        self._done: Mark | None = None  # when the transfer was first seen complete (host clock only)
        self._result: Tensor | None = None

    def poll(self) -> bool:
        """Non-blocking: note the completion time if the transfer has finished; True once it has."""
        if self._work is None:
            return True
        if self._done is None and self._clock.polls and self._work.is_completed():
            self._done = self._clock.mark()
        return self._done is not None

    def wait(self) -> Tensor:
        if self._result is None:
            if self._work is not None:
                t0 = self._clock.mark()
                if self._counters is None:
                    self._work.wait()
                else:
                    with self._counters.range(*self._slot, "wait"):
                        self._work.wait()
                t1 = self._clock.mark()
                done = self._done if self._done is not None else t1
                if self._counters is not None:
                    self._counters.completed(*self._slot, in_flight=(self._started, done), waited=(t0, t1))
            self._result = self._out if self._out.dtype == self._dtype else self._out.to(self._dtype)
            self._work = None
            self._out = None  # type: ignore[assignment]
        return self._result


class HaloExchange:
    """Halo exchange for one partition over one process group, with byte/time accounting."""

    def __init__(
        self,
        plan: HaloPlan,
        layout: ProcessLayout,
        *,
        counters: CommCounters | None = None,
        wire_dtype: torch.dtype | None = None,
    ) -> None:
        if wire_dtype is not None and wire_dtype not in WIRE_DTYPES:
            raise DistGNNError(f"unsupported wire dtype {wire_dtype}; use one of {WIRE_DTYPES}")
        if len(plan.send_counts) != layout.world_size:
            raise DistGNNError(
                f"halo plan has {len(plan.send_counts)} peers but the job has {layout.world_size} processes"
            )
        self.plan = plan
        self.layout = layout
        self.counters = (
            counters if counters is not None else CommCounters(layout.world_size, clock_for(layout.device))
        )
        self.wire_dtype = wire_dtype

    # -- low level -------------------------------------------------------------------------------
    def launch(
        self,
        rows: Tensor,
        out_counts: Sequence[int],
        in_counts: Sequence[int],
        *,
        key: Hashable,
        direction: str,
    ) -> PendingExchange:
        """Send ``rows`` [sum(in_counts), W] split per peer; receive [sum(out_counts), W] (async).

        ``rows`` is cast to the wire dtype for the transfer; the result comes back in ``rows.dtype``.
        Every rank of the group must call this in the same order (it is a collective).
        """
        rows = flat_rows(rows.detach())
        width = rows.shape[1]
        result_dtype = rows.dtype
        wire = self.wire_dtype or rows.dtype
        payload = rows.to(wire).contiguous()
        out = pool.empty((sum(out_counts), width), payload)
        clock = self.counters.clock
        if self.layout.world_size == 1:
            return PendingExchange(None, out, result_dtype, self.counters, clock.mark())
        esize = payload.element_size()
        self.counters.add_bytes(
            key, direction, [c * width * esize for c in in_counts], [c * width * esize for c in out_counts]
        )
        started = clock.mark()
        with self.counters.range(key, direction, "launch"):
            work = dist.all_to_all_single(
                out, payload, list(out_counts), list(in_counts), group=self.layout.group, async_op=True
            )
        self.counters.launched(key, direction, (started, clock.mark()))  # the launch blocks too
        return PendingExchange(work, out, result_dtype, self.counters, started, (key, direction))

    def launch_forward(self, h: Tensor, *, key: Hashable, direction: str = "fwd") -> PendingExchange:
        """Launch the owned-rows -> halo-rows transfer of ``h`` [owned, ...] (no autograd)."""
        self._check_rows(h)
        flat = flat_rows(h.detach())
        idx = self.plan.send_idx
        rows = torch.index_select(flat, 0, idx, out=pool.empty((idx.shape[0], flat.shape[1]), flat))
        return self.launch(rows, self.plan.recv_counts, self.plan.send_counts, key=key, direction=direction)

    def launch_backward(self, grad_halo: Tensor, *, key: Hashable) -> PendingExchange:
        """Launch the halo-gradient -> owner transfer; the result is [n_send, W] in send_idx order."""
        rows = flat_rows(grad_halo)
        return self.launch(rows, self.plan.send_counts, self.plan.recv_counts, key=key, direction="bwd")

    def accumulate(self, received: Tensor, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        """Scatter-add gradients received for the sent rows into a zero owned-row gradient of ``shape``."""
        grad = pool.empty((self.plan.n_owned, received.shape[1]), received.new_empty(0, dtype=dtype)).zero_()
        grad.index_add_(0, self.plan.send_idx, received.to(dtype))
        return grad.reshape(tuple(shape))

    # -- autograd-aware API ------------------------------------------------------------------------
    def start(self, h: Tensor, *, key: Hashable, on_grad: GradSink | None = None) -> HaloHandle:
        """Launch the exchange of ``h`` [owned, ...]; ``wait()`` on the handle returns [halo, ...].

        When ``h`` requires grad, the returned rows carry a backward that sends their gradient to the
        owners (synchronously) and accumulates what this rank receives into ``h``'s gradient.
        ``on_grad(key, received)`` (optional) sees the received gradient rows, e.g. to keep them.
        """
        direction = "fwd" if torch.is_grad_enabled() else "eval"
        pending = self.launch_forward(h, key=key, direction=direction)
        return HaloHandle(self, h, pending, key, on_grad)

    def exchange(self, h: Tensor, *, key: Hashable) -> Tensor:
        """Synchronous halo exchange: ``start(h).wait()``."""
        return self.start(h, key=key).wait()

    def _check_rows(self, h: Tensor) -> None:
        if h.shape[0] != self.plan.n_owned:
            raise DistGNNError(f"halo exchange expects {self.plan.n_owned} owned rows, got {h.shape[0]}")


class HaloHandle:
    """An exchange in flight. ``wait()`` returns the halo rows (attached to autograd when needed)."""

    def __init__(
        self, ex: HaloExchange, h: Tensor, pending: PendingExchange, key: Hashable, on_grad: GradSink | None
    ) -> None:
        self._ex, self._h, self._pending, self._key, self._on_grad = ex, h, pending, key, on_grad
        self._rows: Tensor | None = None

    def wait(self) -> Tensor:
        if self._rows is None:
            shape = (self._ex.plan.n_halo, *self._h.shape[1:])
            if self._h.requires_grad and torch.is_grad_enabled():
                self._rows = _HaloRows.apply(self._h, self)
            else:
                self._rows = self._pending.wait().reshape(shape)
        return self._rows

    def received(self) -> Tensor:
        """The raw received rows [halo, ...] without autograd (waits if needed)."""
        return self._pending.wait().reshape((self._ex.plan.n_halo, *self._h.shape[1:]))


class _HaloRows(torch.autograd.Function):
    """Identity on the received rows in forward; reverse exchange + index_add_ in backward."""

    @staticmethod
    def forward(ctx, h: Tensor, handle: HaloHandle) -> Tensor:
        # Not the handle itself: it caches this function's output, and an output reachable from its own
        # ctx is a reference cycle through the autograd graph, freed only by a full collection, which a
        # training process rarely runs (every epoch's graph stayed alive). Only what backward needs.
        ctx.ex, ctx.key, ctx.on_grad = handle._ex, handle._key, handle._on_grad
        ctx.h_shape, ctx.h_dtype = h.shape, h.dtype
        # A fresh tensor, so autograd never attaches to a buffer someone else keeps.
        received = handle.received()
        return pool.empty(received.shape, received).copy_(received)

    @staticmethod
    def backward(ctx, grad_rows: Tensor):
        ex: HaloExchange = ctx.ex
        received = ex.launch_backward(grad_rows.contiguous(), key=ctx.key).wait()
        if ctx.on_grad is not None:
            ctx.on_grad(ctx.key, received)
        return ex.accumulate(received, ctx.h_shape, ctx.h_dtype), None


def flat_rows(t: Tensor) -> Tensor:
    """[n, ...] -> [n, prod(...)], also for n == 0."""
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))
