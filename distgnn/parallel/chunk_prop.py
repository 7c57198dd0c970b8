"""Chunk propagation: the Propagation a pipeline stage runs, one chunk at a time, neighbours from the
history cache.

For chunk c at layer ``key`` the rows handed to ``aggregate`` (the chunk's message rows, with autograd)
are written to the cache, then the chunk's in-edges are aggregated over ``[chunk rows | other sources]``
where the other sources come from the cache: rows of chunks processed earlier this epoch are *fresh*,
rows of later chunks are *historical* (last epoch's). In the hybrid strategy the stage's graph-parallel
ranks first exchange the rows of their chunk c that peers read (``chunk_exchange``), so halo rows follow
the same rule.

Gradients (:class:`ChunkSources`): a fresh read sends its gradient back through the cache
(``HistoryCache.deposit``; halo rows then travel to their owners in chunk c's backward exchange), and a
chunk adds what was deposited for its rows when its own backward reaches the layer: backward runs in
reverse chunk order, so every fresh read's gradient is there in time. Historical rows are constants, or
(``--history-grad defer``) their reads deposit too: those gradients arrive after the row's backward and
wait in the cache for its backward one epoch later. With one chunk nothing is read from history and a
stage computes exactly the full-graph layer.

In a 16-bit compute dtype (``--precision bf16-mixed``) the chunk's rows are aggregated, exchanged and
written to the cache in that dtype (the cache stores them as ``--history-dtype`` says).
"""

from __future__ import annotations

import torch
from torch import Tensor

from distgnn.comm.layout import ProcessLayout
from distgnn.errors import DistGNNError
from distgnn.kernels import gspmm
from distgnn.models.masks import MaskKey, MaskSeeds, attention_site, check_edge_key_range, edge_mask_keys
from distgnn.models.propagation import Norm
from distgnn.parallel.attention import attend_edges
from distgnn.parallel.chunk_exchange import ChunkTransfer, all_to_all
from distgnn.parallel.chunks import Chunk
from distgnn.parallel.history import HistoryCache
from distgnn.parallel.precision import rows


class ChunkPropagation:
    """The chunk propagation engine of a pipeline stage (and of a hybrid stage over one part): answers the
    Propagation protocol for the chunk set by :meth:`use`, reading other chunks' rows from the history
    cache and, in the hybrid, exchanging the chunk's halo rows over the stage's graph-parallel ranks."""

    def __init__(
        self,
        history: HistoryCache,
        row_keys: Tensor,
        *,
        slot_keys: Tensor,
        num_nodes: int,
        seed: int,
        kernel_impl: str = "auto",
        graph: ProcessLayout | None = None,
        defer_history_grads: bool = False,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        """``compute_dtype``: the dtype of the rows it aggregates and exchanges (``--precision``)."""
        self.history = history
        self.compute_dtype = compute_dtype
        self.defer_history_grads = defer_history_grads
        self.graph = graph  # the stage's graph-parallel ranks (hybrid), None for one part
        self.transfers: dict[int, ChunkTransfer] | None = None
        self.comm_bytes = 0
        self.row_keys = row_keys  # original node id of every local row
        self.slot_keys = slot_keys  # original node id of every cache slot (owned and halo rows)
        self.graph_nodes = num_nodes  # of the whole graph: attention dropout's edge keys need it
        self._edge_keys: dict[int, Tensor] = {}  # per chunk (by id): attention dropout's edge keys
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
        ``transfers``: the chunking's halo exchange plan (hybrid). How many in-edges read history, and
        which reads' gradients go to the cache, depend on the chunk and the order only: worked out here
        once, not per layer."""
        self.chunk, self.transfers = chunk, transfers
        me = position[chunk.index]
        order = torch.tensor([position[k] for k in range(len(position))])
        self._stale_edges = int(chunk.edges_from_other_chunks[order > me].sum())
        self._edges = int(chunk.edges_from_other_chunks.sum())
        # Spans of ``others`` whose gradients are deposited: every read with deferred gradients, else
        # the fresh ones only (a historical read's gradient would arrive after its row's backward).
        spans: list[tuple[int, int]] = []
        for k, a, b in chunk.other_runs:
            if self.defer_history_grads or position[k] <= me:
                if spans and spans[-1][1] == a:
                    a = spans.pop()[0]
                spans.append((a, b))
        self._deposit_spans = spans

    @property
    def num_nodes(self) -> int:
        return int(self.chunk.rows.numel())

    def mask_key(self, site: int) -> MaskKey | None:
        return self.seeds.key(site, self.row_keys[self.chunk.rows])

    # -- the Propagation protocol ----------------------------------------------------------------------
    def aggregate(self, h: Tensor, *, key: int, norm: Norm) -> Tensor:
        g = self.chunk.graph
        src, dst = {"gcn": (g.gcn_src, g.gcn_dst), "mean": (None, g.mean_dst), "sum": (None, None)}[norm]
        x = self._sources(rows(h, self.compute_dtype), key)
        csr = g.full_loops if norm == "gcn" else g.full
        return gspmm(csr, x, src_scale=src, dst_scale=dst, impl=self.kernel_impl)

    def aggregate_linear(self, h: Tensor, weight: Tensor, *, key: int, norm: Norm) -> Tensor:
        agg = self.aggregate(h, key=key, norm=norm)
        return agg @ weight.to(agg.dtype)

    def attend(
        self,
        h: Tensor,
        a_src: Tensor,
        a_dst: Tensor,
        *,
        key: int,
        negative_slope: float,
        dropout: float = 0.0,
    ) -> Tensor:
        n, heads, d = h.shape
        h, a_src = rows(h, self.compute_dtype), rows(a_src, self.compute_dtype)  # what travels
        payload = self._sources(torch.cat([h.reshape(n, heads * d), a_src], dim=1), key)
        h_all = payload[:, : heads * d].reshape(-1, heads, d)
        mask = self.seeds.key(attention_site(key), self._attention_keys(heads)) if dropout else None
        return attend_edges(
            self.chunk.graph.full_loops,
            h_all,
            payload[:, heads * d :],
            a_dst,
            negative_slope=negative_slope,
            dropout=dropout,
            mask=mask,
            impl=self.kernel_impl,
        )

    def _attention_keys(self, heads: int) -> Tensor:
        """Every in-edge's key of the current chunk (sources: its rows, then its ``others``)."""
        c = self.chunk
        check_edge_key_range(self.graph_nodes, heads)
        if id(c) not in self._edge_keys:
            dst = self.row_keys[c.rows]
            src = torch.cat([dst, self.slot_keys[c.others]])
            self._edge_keys[id(c)] = edge_mask_keys(c.graph.full_loops, dst, src, self.graph_nodes)
        return self._edge_keys[id(c)]

    # -- internals ---------------------------------------------------------------------------------------
    def _sources(self, m: Tensor, key: int) -> Tensor:
        """``[m | rows of the other sources]`` with the fresh/historical gradient rule wired in."""
        c = self.chunk
        if m.shape[0] != c.rows.numel():
            raise DistGNNError(f"chunk {c.index} has {c.rows.numel()} rows, got {m.shape[0]}")
        self.stale_reads += self._stale_edges
        self.reads += self._edges
        return ChunkSources.apply(m, self, key)

    def exchange(self, rows: Tensor, t: ChunkTransfer, *, backward: bool) -> Tensor:
        """Forward: send ``rows`` (this chunk's rows peers read), receive theirs; backward: the reverse."""
        counts = (t.recv_counts, t.send_counts) if backward else (t.send_counts, t.recv_counts)
        self.comm_bytes += rows.numel() * rows.element_size()
        return all_to_all(rows, counts[0], counts[1], self.graph)


class ChunkSources(torch.autograd.Function):
    """``[m | other sources]`` for the current chunk, as one autograd node so the backward runs in a fixed
    order: deposit the gradients of reads of other sources, return halo gradients of this chunk to
    their owners (a collective, the same step on every rank), then give ``m`` its own share plus what
    later chunks and peers deposited for its rows."""

    @staticmethod
    def forward(ctx, m: Tensor, prop: ChunkPropagation, key: int) -> Tensor:
        c, history = prop.chunk, prop.history
        t = prop.transfers[c.index] if prop.transfers is not None else None
        if prop.record:
            history.write(key, c.slots, m)
        received = prop.exchange(m.detach()[t.send_pos], t, backward=False) if t is not None else None
        if received is not None and prop.record:
            history.write(key, t.recv_slots, received)
        ctx.prop, ctx.key, ctx.chunk, ctx.transfer, ctx.spans = prop, key, c, t, prop._deposit_spans
        n = m.shape[0]
        out = m.new_empty(n + c.others.numel(), m.shape[1])
        out[:n] = m
        if c.others.numel():
            history.read_into(key, c.others, out[n:])
        if received is not None and t.used.numel():
            out[n:].index_copy_(0, t.used_pos, received.index_select(0, t.used).to(m.dtype))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        prop, key, c, t = ctx.prop, ctx.key, ctx.chunk, ctx.transfer
        history = prop.history
        n = c.rows.numel()
        for a, b in ctx.spans:
            history.deposit(key, c.others[a:b], grad[n + a : n + b])
        if t is not None:
            back = history.take_grad(key, t.recv_slots)
            if back is None:
                back = grad.new_zeros(sum(t.recv_counts), grad.shape[1])
            returned = prop.exchange(back.to(grad.dtype), t, backward=True)
        g_m = history.take_grad(key, c.slots, into=grad[:n])
        if t is not None:
            g_m = g_m.index_add(0, t.send_pos, returned)
        return g_m, None, None
