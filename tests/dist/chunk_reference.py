"""A plain single-process implementation of the pipeline's chunk/history contract (the test oracle).

Dense matrices and ordinary autograd, no hooks, no schedule, no communication: in epoch t, for chunk c in
order, every layer aggregates over message rows where rows of chunks before c (and c itself) are this
epoch's tensors (with autograd) and rows of later chunks are last epoch's values (constants). The loss
of all chunks is summed and backpropagated once, then one Adam step. Epoch 0 and ``exact_epochs``
epochs are one chunk. Options: ``chunk_order="shuffle"`` takes the chunks in the order
``numpy.random.default_rng([seed, epoch]).permutation(C)``; ``history_grad="defer"`` keeps the gradient
of every historical value read and, in the next epoch, adds it to the gradient of that row's message
(one extra term ``sum(m * deferred)`` in the backward, not in the reported loss); ``lr_warmup_epochs=K``
sets the learning rate to ``lr * min(1, (epoch + 1) / K)``. The model code is the library's
(``forward_range``); everything about chunks and history is written here independently of
``distgnn.parallel``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from distgnn.kernels import dropout as kernel_dropout
from distgnn.models.masks import MaskKey, MaskSeeds, attention_site
from distgnn.models.registry import build_model
from distgnn.parallel.chunks import assign_chunks
from distgnn.partitioning import load_part
from distgnn.train import param_groups


class ChunkRuleProp:
    def __init__(self, part, seed: int) -> None:
        n = part.n_owned
        dst = np.repeat(np.arange(n), np.diff(part.indptr))
        adj = torch.zeros(n, n, dtype=torch.float64)
        keep = part.indices != dst
        adj[dst[keep], part.indices[keep]] = 1.0
        self.adj = adj
        self.in_deg = torch.tensor(part.in_degree[:n], dtype=torch.float64)
        self.out_deg = torch.tensor(part.out_degree[:n], dtype=torch.float64)
        self.keys = torch.tensor(part.orig_ids, dtype=torch.int64)
        self.n = n
        self.seeds = MaskSeeds(seed)
        self.history: dict[int, Tensor] = {}  # last epoch's message rows per layer key
        self.fresh: dict[int, list[tuple[Tensor, Tensor]]] = {}  # this epoch's (rows, tensor) per key
        self.rows = torch.arange(n)
        self.defer = False
        self.stale: dict[int, list[Tensor]] = {}  # this epoch's historical leaves per key (defer)
        self.deferred: dict[int, Tensor] = {}  # last epoch's historical gradients per key (defer)
        self.extra: Tensor | float = 0.0  # sum(m * deferred) over this epoch's messages (defer)

    def mask_key(self, site: int) -> MaskKey | None:
        return self.seeds.key(site, self.keys[self.rows])

    @property
    def num_nodes(self) -> int:
        return int(self.rows.numel())

    def _messages(self, m: Tensor, key: int) -> Tensor:
        """All N message rows as chunk c sees them (fresh this epoch where computed, else history)."""
        self.fresh.setdefault(key, []).append((self.rows, m))
        rows = torch.cat([r for r, _ in self.fresh[key]])
        vals = torch.cat([v for _, v in self.fresh[key]])
        base = self.history.get(key, torch.zeros(self.n, m.shape[1], dtype=m.dtype)).detach()
        if self.defer:
            base = base.clone().requires_grad_(True)
            self.stale.setdefault(key, []).append(base)
            if key in self.deferred:
                self.extra = self.extra + (m * self.deferred[key][self.rows]).sum()
        return base.index_put((rows,), vals.to(base.dtype))

    def aggregate(self, h: Tensor, *, key: int, norm: str) -> Tensor:
        m = self._messages(h, key).to(torch.float64)
        a = self.adj[self.rows]
        if norm == "gcn":
            a = a.clone()
            a[torch.arange(len(self.rows)), self.rows] += 1.0
            a = (self.in_deg[self.rows] + 1).rsqrt()[:, None] * a * (self.out_deg + 1).rsqrt()[None, :]
        out = a @ m
        if norm == "mean":
            out = out / self.in_deg[self.rows].clamp(min=1)[:, None]
        return out.to(h.dtype)

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
        n, heads, d = h.shape
        m = self._messages(torch.cat([h.reshape(n, heads * d), a_src], dim=1), key).to(torch.float64)
        hs, asrc = m[:, : heads * d].reshape(-1, heads, d), m[:, heads * d :]
        a_dst = a_dst.to(torch.float64)
        mask = self.adj[self.rows] > 0
        mask[torch.arange(n), self.rows] = True
        # attention dropout: edge j -> i, head k draws counter (id_i * N + id_j) * heads + k
        edge = (self.keys[self.rows][:, None] * self.n + self.keys[None, :]).flatten()
        seed = self.seeds.key(attention_site(key), edge).seed if dropout else None
        keep = kernel_dropout(
            torch.ones(edge.numel(), heads), dropout, seed=seed, keys=edge, impl="reference"
        )
        keep = keep.view(n, self.n, heads).to(torch.float64)
        out = []
        for k in range(heads):
            e = F.leaky_relu(a_dst[:, k, None] + asrc[None, :, k], negative_slope).masked_fill(
                ~mask, -torch.inf
            )
            out.append((torch.softmax(e, dim=1) * keep[:, :, k]) @ hs[:, k, :])
        return torch.stack(out, dim=1).to(h.dtype)

    def end_epoch(self) -> None:
        for key, pieces in self.fresh.items():
            rows = torch.cat([r for r, _ in pieces])
            vals = torch.cat([v for _, v in pieces]).detach()
            self.history[key] = torch.zeros(self.n, vals.shape[1], dtype=vals.dtype).index_put((rows,), vals)
        self.fresh = {}
        self.deferred = {
            key: sum(leaf.grad for leaf in leaves if leaf.grad is not None)
            for key, leaves in self.stale.items()
        }
        self.stale, self.extra = {}, 0.0


def hybrid_chunks(whole_dir: str, parts_dir: str, num_chunks: int, seed: int) -> np.ndarray:
    """The chunk of every row of ``whole_dir`` (a 1-part directory) under the hybrid strategy's per-part
    chunking of ``parts_dir`` (the same graph partitioned), matched through original node ids."""
    from distgnn.parallel.pipeline import owned_chunks
    from distgnn.partitioning import load_meta

    by_orig = {}
    for g in range(int(load_meta(parts_dir)["num_parts"])):
        part = load_part(parts_dir, g)
        by_orig.update(
            zip(part.orig_ids.tolist(), owned_chunks(part, num_chunks, seed).tolist(), strict=True)
        )
    return np.array([by_orig[v] for v in load_part(whole_dir, 0).orig_ids.tolist()], dtype=np.int64)


def train_reference(part_dir: str, cfg: dict, chunk_of: np.ndarray | None = None) -> dict:
    """Losses per epoch and final parameters of the chunk/history contract, trained plainly.

    ``chunk_of``: the chunk of every node (default: the pipeline's METIS chunks of the whole graph)."""
    part = load_part(part_dir, 0)
    torch.manual_seed(cfg["seed"])
    x = torch.as_tensor(np.array(part.x))
    y = torch.as_tensor(np.array(part.y))
    train = torch.as_tensor(np.array(part.train_mask))
    model = build_model(
        cfg["model"], x.shape[1], cfg["hidden"], part.num_classes, layers=cfg["layers"],
        dropout=cfg["dropout"], heads=cfg.get("heads", 8),
        attention_dropout=cfg.get("attention_dropout", 0.0),
    )  # fmt: skip
    opt = torch.optim.Adam(param_groups(model, cfg["weight_decay"], "all"), lr=cfg["lr"])
    prop = ChunkRuleProp(part, cfg["seed"])
    prop.defer = cfg.get("history_grad", "drop") == "defer"
    if chunk_of is None:
        chunk_of = assign_chunks(part.indptr, part.indices, cfg["chunks"], seed=cfg["seed"])
    chunk_of = torch.as_tensor(chunk_of)
    n_train = int(train.sum())
    losses = []
    for epoch in range(cfg["epochs"]):
        model.train()
        opt.zero_grad()
        prop.seeds.step = epoch
        exact = epoch < max(1, cfg.get("exact_epochs", 0))
        order = range(cfg["chunks"])
        if cfg.get("chunk_order", "fixed") == "shuffle":
            order = np.random.default_rng([cfg["seed"], epoch]).permutation(cfg["chunks"])
        groups = [torch.arange(part.n_owned)] if exact else [
            torch.nonzero(chunk_of == c).flatten() for c in order
        ]  # fmt: skip
        total = 0.0
        for rows in groups:
            prop.rows = rows
            out = model(x[rows], prop)
            m = train[rows]
            total = total + F.cross_entropy(out[m], y[rows][m], reduction="sum") / n_train
        (total + prop.extra).backward()
        warmup = cfg.get("lr_warmup_epochs", 0)
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * min(1.0, (epoch + 1) / warmup) if warmup else cfg["lr"]
        opt.step()
        prop.end_epoch()
        losses.append(float(total.detach()))
    return {"losses": losses, "params": {k: v.detach().numpy().copy() for k, v in model.named_parameters()}}
