"""The Propagation a pipeline stage runs: one chunk at a time, neighbours from the history cache.

For chunk c at layer ``key`` the rows handed to ``aggregate`` (the chunk's message rows, with autograd)
are written to the cache, then the chunk's in-edges are aggregated over ``[chunk rows | other sources]``
where the other sources come from the cache: rows of chunks processed earlier this epoch are *fresh*,
rows of later chunks are *historical* (last epoch's). Gradients: fresh reads send their gradient back
through the cache (``HistoryCache.deposit``) and a chunk adds what later chunks deposited for its rows
when its own backward reaches the layer (``take_grad``), so processing backward in reverse chunk order
gives every row its complete gradient; historical rows are constants. With one chunk nothing is read
from the cache and the stage computes exactly the full-graph layer.
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
from distgnn.parallel.chunks import Chunk


class ChunkedPropagation:
    def __init__(
        self, history: HistoryCache, row_keys: Tensor, *, seed: int, kernel_impl: str = "auto"
    ) -> None:
        self.history = history
        self.row_keys = row_keys  # original node id of every local row
        self.seeds = MaskSeeds(run_seed=seed)
        self.kernel_impl = kernel_impl
        self.chunk: Chunk | None = None
        self.position: dict[int, int] = {}  # chunk id -> its place in this epoch's order
        self.record = True  # write fresh rows to the cache (off for evaluation)
        self.stale_reads = 0
        self.reads = 0

    def use(self, chunk: Chunk, position: dict[int, int]) -> None:
        """Aggregate for ``chunk`` next; ``position`` orders this epoch's chunks (earlier = fresh)."""
        self.chunk, self.position = chunk, position

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
        if self.record:
            self.history.write(key, c.rows, m)
        me = self.position[c.index]
        later = torch.tensor([self.position[k] > me for k in range(len(self.position))])
        self.stale_reads += int(c.edges_from_other_chunks[later].sum())
        self.reads += int(c.edges_from_other_chunks.sum())
        grad = torch.is_grad_enabled() and m.requires_grad
        if grad:
            rows, history = c.rows, self.history

            def add_deposits(g: Tensor) -> Tensor:
                extra = history.take_grad(key, rows)
                return g if extra is None else g + extra.to(g.dtype)

            m.register_hook(add_deposits)
        if c.others.numel() == 0:
            return m
        other = self.history.read(key, c.others)
        if grad:
            order = torch.tensor([self.position[int(k)] for k in range(len(self.position))])
            fresh = order[c.other_chunk] < me
            fresh_rows = c.others[fresh]
            other.requires_grad_(True)
            other.register_hook(lambda g: self.history.deposit(key, fresh_rows, g[fresh]))
        return torch.cat([m, other.to(m.dtype)])
