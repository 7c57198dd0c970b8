"""A dense-matrix `Propagation` for tests: the textbook formulas, written independently of any kernel."""

from __future__ import annotations

import torch
from torch import Tensor

from distgnn.kernels import dropout
from distgnn.models.masks import MaskKey, MaskSeeds, attention_site


class DensePropagation:
    """Answers the Propagation protocol for one process owning the whole graph.

    ``adj[i, j] = 1`` when there is an edge j -> i (rows are destinations), with no self-loops.
    """

    def __init__(self, adj: Tensor) -> None:
        self.adj = adj.to(torch.float64)
        self.num_nodes = int(adj.shape[0])
        self.calls: list[tuple[str, int, int]] = []  # (op, key, row width)
        self.seeds: MaskSeeds | None = None  # set to key dropout masks by node id (else torch's RNG)

    def mask_key(self, site: int) -> MaskKey | None:
        if self.seeds is None:
            return None
        return self.seeds.key(site, torch.arange(self.num_nodes))

    def aggregate(self, h: Tensor, *, key: int, norm: str) -> Tensor:
        self.calls.append(("aggregate", key, h.shape[1]))
        a = self.adj.to(h.dtype)
        if norm == "sum":
            return a @ h
        if norm == "mean":
            deg = a.sum(1, keepdim=True)
            return (a @ h) / deg.clamp(min=1)
        if norm == "gcn":
            a_hat = a + torch.eye(self.num_nodes, dtype=h.dtype)
            d = a_hat.sum(1).rsqrt()
            return (d[:, None] * a_hat * d[None, :]) @ h
        raise ValueError(norm)

    def aggregate_linear(self, h: Tensor, weight: Tensor, *, key: int, norm: str) -> Tensor:
        return self.aggregate(h, key=key, norm=norm) @ weight

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
        self.calls.append(("attend", key, h.shape[1] * h.shape[2] + h.shape[1]))
        mask = (self.adj + torch.eye(self.num_nodes, dtype=self.adj.dtype)) > 0  # [dst, src]
        keep = self.attention_keep(key, h.shape[1], dropout)
        out = []
        for head in range(h.shape[1]):
            e = torch.nn.functional.leaky_relu(a_dst[:, head, None] + a_src[None, :, head], negative_slope)
            e = e.masked_fill(~mask, float("-inf"))
            out.append((torch.softmax(e, dim=1) * keep[:, :, head].to(h.dtype)) @ h[:, head, :])
        return torch.stack(out, dim=1)

    def attention_keep(self, key: int, heads: int, p: float) -> Tensor:
        """[dst, src, head] dropout scale of every (possible) edge: the element of edge j -> i, head k
        draws counter ``(i * N + j) * heads + k`` with the seed of site ``attention_site(key)``."""
        n = self.num_nodes
        if p == 0.0:
            return torch.ones(n, n, heads)
        ids = torch.arange(n)
        mk = self.mask_key(attention_site(key))
        seed = None if mk is None else mk.seed
        edge = (ids[:, None] * n + ids[None, :]).flatten()
        return dropout(torch.ones(n * n, heads), p, seed=seed, keys=edge, impl="reference").view(n, n, heads)


def random_adjacency(n: int, p: float, seed: int) -> Tensor:
    """A symmetric random graph without self-loops (some nodes may be isolated)."""
    g = torch.Generator().manual_seed(seed)
    upper = torch.triu((torch.rand(n, n, generator=g) < p).to(torch.float64), diagonal=1)
    return upper + upper.T
