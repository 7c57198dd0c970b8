"""The Propagation a pipeline stage runs: one chunk at a time, neighbours from the history cache.

For chunk c at layer ``key`` the rows handed to ``aggregate`` (the chunk's message rows, with autograd)
are written to the cache, then the chunk's in-edges are aggregated over ``[chunk rows | other sources]``
where the other sources come from the cache: rows of chunks processed earlier this epoch are *fresh*,
rows of later chunks are *historical* (last epoch's). In the hybrid strategy the stage's graph-parallel
ranks first exchange the rows of their chunk c that peers read (``chunk_exchange``), so halo rows follow
the same rule.

Gradients (:class:`ChunkSources`): fresh reads send their gradient back through the cache
(``HistoryCache.deposit``; halo rows then travel to their owners in chunk c's backward exchange), and a
chunk adds what later chunks deposited for its rows when its own backward reaches the layer, so
processing backward in reverse chunk order gives every row its complete gradient; historical rows are
constants, or (``defer_history_grads``) their gradients are deferred to the rows' backward in the next
epoch (``HistoryCache.defer``). With one chunk nothing is read from history and a stage computes
exactly the full-graph layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.history import HistoryCache
from distgnn.kernels import edge_softmax, gspmm, sddmm
from distgnn.models.masks import MaskKey, MaskSeeds
from distgnn.models.propagation import Norm
from distgnn.parallel.chunk_exchange import ChunkTransfer, all_to_all
from distgnn.parallel.chunks import Chunk
from distgnn.parallel.layout import ProcessLayout


class ChunkedPropagation:
    def __init__(
        self,
        history: HistoryCache,
        row_keys: Tensor,
        *,
        seed: int,
        kernel_impl: str = "auto",
        graph: ProcessLayout | None = None,
        defer_history_grads: bool = False,
    ) -> None:
        self.history = history
        self.defer_history_grads = defer_history_grads
        self.graph = graph  # the stage's graph-parallel ranks (hybrid), None for one part
        self.transfers: dict[int, ChunkTransfer] | None = None
        self.comm_bytes = 0
        self.row_keys = row_keys  # original node id of every local row
        self.seeds = MaskSeeds(run_seed=seed)
        self.kernel_impl = kernel_impl
        self.chunk: Chunk | None = None
        self.record = True  # write fresh rows to the cache (off for evaluation)
        self.stale_reads = 0
        self.reads = 0

    def use(
        self, chunk: Chunk, position: dict[int, int], transfers: dict[int, ChunkTransfer] | None = None
    ) -> None:
        """Aggregate for ``chunk`` next; ``position`` orders this epoch's chunks (earlier = fresh);
        ``transfers``: the chunking's halo exchange plan (hybrid). Which other sources are fresh, and how
        many in-edges read history, depend on the chunk and the order only: worked out here once, not
        per layer (and on the sources' device, with no copy of them to the host)."""
        self.chunk, self.transfers = chunk, transfers
        order = torch.tensor([position[k] for k in range(len(position))])
        me = position[chunk.index]
        self._stale_edges = int(chunk.edges_from_other_chunks[order > me].sum())
        self._edges = int(chunk.edges_from_other_chunks.sum())
        # own rows of other chunks are never in chunk c itself
        self._fresh = order.to(chunk.other_chunk.device)[chunk.other_chunk] <= me

    @property
    def num_nodes(self) -> int:
        return int(self.chunk.rows.numel())

    def mask_key(self, site: int) -> MaskKey | None:
        return self.seeds.key(site, self.row_keys[self.chunk.rows])

    # -- the Propagation protocol ----------------------------------------------------------------------
    def aggregate(self, h: Tensor, *, key: int, norm: Norm) -> Tensor:
        g = self.chunk.graph
        src, dst = {"gcn": (g.gcn_src, g.gcn_dst), "mean": (None, g.mean_dst), "sum": (None, None)}[norm]
        x = self._sources(h, key)
        csr = g.full_loops if norm == "gcn" else g.full
        return gspmm(csr, x, src_scale=src, dst_scale=dst, impl=self.kernel_impl)

    def aggregate_linear(self, h: Tensor, weight: Tensor, *, key: int, norm: Norm) -> Tensor:
        return self.aggregate(h, key=key, norm=norm) @ weight

    def attend(self, h: Tensor, a_src: Tensor, a_dst: Tensor, *, key: int, negative_slope: float) -> Tensor:
        n, heads, d = h.shape
        payload = self._sources(torch.cat([h.reshape(n, heads * d), a_src], dim=1), key)
        h_all = payload[:, : heads * d].reshape(-1, heads, d)
        csr = self.chunk.graph.full_loops
        scores = F.leaky_relu(
            sddmm(csr, a_dst, payload[:, heads * d :], impl=self.kernel_impl), negative_slope
        )
        alpha = edge_softmax(csr, scores, impl=self.kernel_impl)
        return gspmm(csr, h_all, edge_weight=alpha, impl=self.kernel_impl)

    # -- internals ---------------------------------------------------------------------------------------
    def _sources(self, m: Tensor, key: int) -> Tensor:
        """``[m | rows of the other sources]`` with the fresh/historical gradient rule wired in."""
        c = self.chunk
        if m.shape[0] != c.rows.numel():
            raise DistGNNError(f"chunk {c.index} has {c.rows.numel()} rows, got {m.shape[0]}")
        self.stale_reads += self._stale_edges
        self.reads += self._edges
        return ChunkSources.apply(m, self, key, self._fresh)

    def exchange(self, rows: Tensor, t: ChunkTransfer, *, backward: bool) -> Tensor:
        """Forward: send ``rows`` (this chunk's rows peers read), receive theirs; backward: the reverse."""
        counts = (t.recv_counts, t.send_counts) if backward else (t.send_counts, t.recv_counts)
        self.comm_bytes += rows.numel() * rows.element_size()
        return all_to_all(rows, counts[0], counts[1], self.graph)


class ChunkSources(torch.autograd.Function):
    """``[m | other sources]`` for the current chunk, as one autograd node so the backward runs in a fixed
    order: deposit the gradients of fresh reads, return halo gradients of this chunk to their owners
    (a collective, the same step on every rank), then give ``m`` its own share plus what later chunks
    and peers deposited for its rows."""

    @staticmethod
    def forward(ctx, m: Tensor, prop: ChunkedPropagation, key: int, fresh: Tensor) -> Tensor:
        c, history = prop.chunk, prop.history
        t = prop.transfers[c.index] if prop.transfers is not None else None
        if prop.record:
            history.write(key, c.rows, m)
        received = prop.exchange(m.detach()[t.send_pos], t, backward=False) if t is not None else None
        if received is not None and prop.record:
            history.write(key, t.recv_rows, received)
        ctx.prop, ctx.key, ctx.fresh, ctx.chunk, ctx.transfer = prop, key, fresh, c, t
        if c.others.numel() == 0:
            return m.clone()
        other = history.read(key, c.others).to(m.dtype)
        if received is not None:
            other[t.used_pos] = received[t.used].to(m.dtype)
        return torch.cat([m, other])

    @staticmethod
    def backward(ctx, grad: Tensor):
        prop, key, c, t = ctx.prop, ctx.key, ctx.chunk, ctx.transfer
        history = prop.history
        n = c.rows.numel()
        g_m = grad[:n].clone()
        if c.others.numel():
            g_other = grad[n:]
            history.deposit(key, c.others[ctx.fresh], g_other[ctx.fresh])
            if prop.defer_history_grads:
                stale = ~ctx.fresh
                history.defer(key, c.others[stale], g_other[stale])
        if t is not None:
            back = history.take_grad(key, t.recv_rows)
            if back is None:
                back = grad.new_zeros(t.recv_rows.numel(), grad.shape[1])
            g_m.index_add_(0, t.send_pos, prop.exchange(back.to(grad.dtype), t, backward=True))
        extra = history.take_grad(key, c.rows)
        if extra is not None:
            g_m += extra.to(g_m.dtype)
        return g_m, None, None, None
