"""Exact halo aggregation with the exchange overlapped in both directions (staleness 0).

One autograd Function per aggregation owns the schedule, so the backward exchange overlaps too (a
generic autograd graph would send the halo gradients and wait for them inside one node):

- forward: launch the owned rows the peers need -> aggregate the *inner* edges (source owned, plus
  GCN's self-loops) -> wait -> add the *boundary* edges (source in the halo);
- backward(g): the halo-row gradients first (transposed boundary CSR), launch their transfer to the
  owners -> the owned-row gradient over the transposed inner CSR while it travels -> wait ->
  ``index_add_`` the received gradients into the rows that were sent.

On CPU the inner aggregations run in row blocks with a non-blocking poll of the transfer between
blocks, so the measured ``comm`` time ends when the transfer is first seen complete (see
``PendingExchange``), not when the caller waits. Blocks do not change any value: each output row is
still one kernel call over the same edges in the same order. On CUDA the inner edges are one kernel
launch (blocks would be N/16384 launches plus an output copy, and a host-side poll says nothing about
the streams): the transfer runs on NCCL's stream while that kernel runs on the current one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable

import torch
from torch import Tensor

from distgnn.comm.counters import CommCounters
from distgnn.comm.halo import HaloExchange, PendingExchange
from distgnn.kernels import CSR, gspmm, pool
from distgnn.parallel.local_graph import LocalGraph

BLOCK_ROWS = 16384  # rows per inner block: fine enough to poll often, coarse enough to cost nothing


def empty_output(like: Tensor, rows: int) -> Tensor:
    """An uninitialised [rows, ...] output, from the kernels' buffer pool when large (kernels/pool.py):
    the blocks are written into one buffer, whose first-touch page faults would cost more than the
    copy itself."""
    return pool.empty((rows, *like.shape[1:]), like)


def scale_for(scale: Tensor | None, x: Tensor) -> Tensor | None:
    """A normalisation vector for aggregating ``x``: float32, or float64 for float64 ``x``. 16-bit rows
    keep float32 scales: the kernels multiply in float32, and a rounded degree norm would be one more
    error per edge."""
    if scale is None:
        return None
    return scale.to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def row_blocks(csr: CSR, block_rows: int = BLOCK_ROWS) -> list[tuple[int, int, CSR]]:
    """Split ``csr`` into consecutive row ranges ``[a, b)``, each a CSR over the same sources (views)."""
    n = csr.num_dst
    if n <= block_rows:
        return [(0, n, csr)]
    ip = csr.indptr
    out = []
    for a in range(0, n, block_rows):
        b = min(a + block_rows, n)
        lo, hi = int(ip[a]), int(ip[b])
        block = CSR(ip[a : b + 1] - lo, csr.indices[lo:hi], csr.num_src, validate=False, dtype=csr.dtype)
        out.append((a, b, block))
    return out


class OverlapSchedule:
    """The overlapped aggregation of one partition: its CSR blocks, its exchange and its timers."""

    def __init__(
        self,
        graph: LocalGraph,
        exchange: HaloExchange,
        counters: CommCounters,
        *,
        kernel_impl: str = "auto",
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        self.graph = graph
        self.ex = exchange
        self.counters = counters
        self.impl = kernel_impl
        # CUDA: one kernel over all inner rows (see the module docstring); CPU: polled row blocks.
        self.block_rows = sys.maxsize if graph.full.device.type == "cuda" else block_rows
        self._blocks: dict[tuple[bool, bool], list[tuple[int, int, CSR]]] = {}  # built on first use

    def aggregate(
        self,
        h: Tensor,
        *,
        key: Hashable,
        src: Tensor | None,
        dst: Tensor | None,
        loops: bool,
    ) -> Tensor:
        """``dst * (A_inner [+ I] + A_boundary) (src * [h | halo])`` for ``h`` [owned, F].

        ``src`` covers ``[owned | halo]`` sources, ``dst`` the owned rows (either may be None); ``loops``
        adds one self-loop per owned row. Differentiable in ``h`` with the overlapped backward described
        in the module docstring.
        """
        if h.requires_grad and torch.is_grad_enabled():
            return _OverlappedAggregate.apply(h, self, key, src, dst, loops)
        direction = "fwd" if torch.is_grad_enabled() else "eval"
        with torch.no_grad():
            return self.forward(h, key=key, direction=direction, src=src, dst=dst, loops=loops)

    def aggregate_linear(
        self,
        h: Tensor,
        weight: Tensor,
        *,
        key: Hashable,
        src: Tensor | None,
        dst: Tensor | None,
        loops: bool,
    ) -> Tensor:
        """``aggregate(h) @ weight``; the backward computes the weight gradient during the exchange."""
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            return _OverlappedAggregateLinear.apply(h, weight, self, key, src, dst, loops)
        return self.aggregate(h, key=key, src=src, dst=dst, loops=loops) @ weight

    # -- the two directions --------------------------------------------------------------------------
    def forward(
        self,
        h: Tensor,
        *,
        key: Hashable,
        direction: str,
        src: Tensor | None,
        dst: Tensor | None,
        loops: bool,
    ) -> Tensor:
        g = self.graph
        pending = self.ex.launch_forward(h, key=key, direction=direction)
        src_in = None if src is None else src[: g.n_owned]
        out = self._blocked(self._inner(loops, transposed=False), h, src_in, dst, pending)
        halo = pending.wait().reshape(g.n_halo, *h.shape[1:])
        src_halo = None if src is None else src[g.n_owned :]
        out.add_(self._spmm(g.boundary, halo, src_halo, dst))
        return out

    def backward(
        self,
        grad: Tensor,
        *,
        key: Hashable,
        src: Tensor | None,
        dst: Tensor | None,
        loops: bool,
        dtype: torch.dtype,
        meanwhile: Callable[[], None] | None = None,
    ) -> Tensor:
        """The gradient of ``h``; ``meanwhile`` (other backward work) runs while the halo gradients travel."""
        g = self.graph
        grad = grad.contiguous()
        src_halo = None if src is None else src[g.n_owned :]
        # dL/dhalo = src_halo * B^T (dst * grad): computed first so it is on the wire during the rest.
        grad_halo = self._spmm(g.boundary.transposed(), grad, dst, src_halo)
        pending = self.ex.launch_backward(grad_halo, key=key)
        if meanwhile is not None:
            meanwhile()
            pending.poll()
        src_in = None if src is None else src[: g.n_owned]
        out = self._blocked(self._inner(loops, transposed=True), grad, dst, src_in, pending)
        received = pending.wait()
        out.index_add_(0, self.ex.plan.send_idx, received.to(out.dtype).reshape(-1, *out.shape[1:]))
        return out.to(dtype)

    def prepare(self, loops: bool) -> None:
        """Build now what :meth:`forward` and :meth:`backward` with ``loops`` read: the inner CSR's row
        blocks, its transpose's, the boundary CSR's transpose (otherwise built on first use)."""
        self._inner(loops, transposed=False)
        self._inner(loops, transposed=True)
        self.graph.boundary.transposed()

    # -- internals -----------------------------------------------------------------------------------
    def _inner(self, loops: bool, *, transposed: bool) -> list[tuple[int, int, CSR]]:
        """Row blocks of the inner CSR (with self-loops if ``loops``), or of its transpose."""
        key = (loops, transposed)
        if key not in self._blocks:
            csr = self.graph.inner_loops if loops else self.graph.inner
            self._blocks[key] = row_blocks(csr.transposed() if transposed else csr, self.block_rows)
        return self._blocks[key]

    def _blocked(
        self,
        blocks: list[tuple[int, int, CSR]],
        x: Tensor,
        src_scale: Tensor | None,
        dst_scale: Tensor | None,
        pending: PendingExchange,
    ) -> Tensor:
        """Aggregate block by block into one output, polling the transfer in between."""
        if len(blocks) == 1:
            out = self._spmm(blocks[0][2], x, src_scale, dst_scale)
            pending.poll()
            return out
        out = empty_output(x, blocks[-1][1])
        for a, b, csr in blocks:
            ds = None if dst_scale is None else dst_scale[a:b]
            out[a:b] = self._spmm(csr, x, src_scale, ds)
            pending.poll()
        return out

    def _spmm(self, csr: CSR, x: Tensor, src_scale: Tensor | None, dst_scale: Tensor | None) -> Tensor:
        with self.counters.timer("compute"):
            return gspmm(
                csr,
                x,
                src_scale=scale_for(src_scale, x),
                dst_scale=scale_for(dst_scale, x),
                impl=self.impl,  # type: ignore[arg-type]
            )


class _OverlappedAggregate(torch.autograd.Function):
    """Autograd wrapper: both directions are run by the :class:`OverlapSchedule`."""

    @staticmethod
    def forward(ctx, h, sched, key, src, dst, loops):  # type: ignore[override]
        ctx.sched, ctx.key, ctx.dtype, ctx.loops = sched, key, h.dtype, loops
        ctx.scales = (src, dst)  # constants (global degrees), never differentiated
        return sched.forward(h, key=key, direction="fwd", src=src, dst=dst, loops=loops)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        src, dst = ctx.scales
        sched: OverlapSchedule = ctx.sched
        g_h = sched.backward(grad, key=ctx.key, src=src, dst=dst, loops=ctx.loops, dtype=ctx.dtype)
        return g_h, None, None, None, None, None


class _OverlappedAggregateLinear(torch.autograd.Function):
    """``aggregate(h) @ weight`` in one node, so the backward sends the halo gradients of ``h`` first and
    computes the weight gradient ``agg^T g`` while they travel (separate autograd nodes would compute it
    before the exchange starts)."""

    @staticmethod
    def forward(ctx, h, weight, sched, key, src, dst, loops):  # type: ignore[override]
        ctx.sched, ctx.key, ctx.dtype, ctx.loops = sched, key, h.dtype, loops
        ctx.scales = (src, dst)
        agg = sched.forward(h, key=key, direction="fwd", src=src, dst=dst, loops=loops)
        ctx.save_for_backward(agg, weight)
        return pool.mm(agg, weight.to(agg.dtype))  # bf16 rows (--precision bf16-mixed): in bf16 too

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        agg, weight = ctx.saved_tensors
        w = weight.to(grad.dtype)  # the (float32) weight as the forward multiplied by it
        need_h, need_w = ctx.needs_input_grad[:2]
        g_w: list[Tensor] = []
        weight_grad = (lambda: g_w.append((agg.t() @ grad).to(weight.dtype))) if need_w else None
        g_h = None
        if need_h:
            src, dst = ctx.scales
            sched: OverlapSchedule = ctx.sched
            g_h = sched.backward(
                pool.mm(grad, w.t()), key=ctx.key, src=src, dst=dst, loops=ctx.loops, dtype=ctx.dtype,
                meanwhile=weight_grad,
            )  # fmt: skip
        elif weight_grad is not None:
            weight_grad()
        return g_h, (g_w[0] if g_w else None), None, None, None, None, None
