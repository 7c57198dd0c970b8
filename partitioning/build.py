"""From a node-to-part assignment to the per-part arrays of ``Part``.

Nodes are relabelled so part p owns the contiguous global range ``[ranges[p], ranges[p+1])``. Within a
part, nodes keep their original relative order, or take a locality order (``reorder``: RCM, METIS
sub-parts, degree) computed on the part's induced subgraph, so that neighbour gathers hit nearby rows.
Each part is built on its own (peak memory is one part's edges, not the whole graph's), in two steps
because a part's send lists depend on the other parts' halos: ``build_local`` gives everything but the
send lists, ``send_lists`` runs once every halo is known. Everything is vectorised numpy; the only
Python loops are over parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distgnn.data.graph import Graph
from distgnn.data.mapped import take

from .reorder import locality_order

REORDERS: tuple[str, ...] = ("none", "rcm", "metis", "degree")


@dataclass
class Relabel:
    """The new global numbering. ``order[new] = old``; ``new_of_old[old] = new``."""

    order: np.ndarray  # int64 [N]
    new_of_old: np.ndarray  # int64 [N]
    ranges: np.ndarray  # int64 [P + 1], part p owns new IDs [ranges[p], ranges[p+1])

    @property
    def num_parts(self) -> int:
        return int(self.ranges.shape[0] - 1)

    def node_range(self, p: int) -> tuple[int, int]:
        return int(self.ranges[p]), int(self.ranges[p + 1])


def relabel(
    parts: np.ndarray, num_parts: int, *, graph: Graph | None = None, reorder: str = "none"
) -> Relabel:
    """Group nodes by part; inside a part keep the original order or apply ``reorder`` (needs ``graph``)."""
    parts = np.asarray(parts, dtype=np.int64)
    order = np.argsort(parts, kind="stable").astype(np.int64)
    ranges = np.zeros(num_parts + 1, dtype=np.int64)
    np.cumsum(np.bincount(parts, minlength=num_parts), out=ranges[1:])
    if reorder != "none":
        assert graph is not None, "reorder needs the graph"
        for p in range(num_parts):
            block = order[ranges[p] : ranges[p + 1]]
            order[ranges[p] : ranges[p + 1]] = block[locality_order(*induced_csr(graph, block), reorder)]
    new_of_old = np.empty_like(order)
    new_of_old[order] = np.arange(order.shape[0], dtype=np.int64)
    return Relabel(order=order, new_of_old=new_of_old, ranges=ranges)


def induced_csr(graph: Graph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-edge CSR of the subgraph induced by ``nodes`` (row/column i = nodes[i])."""
    local = np.full(graph.num_nodes, -1, dtype=np.int64)
    local[nodes] = np.arange(nodes.shape[0], dtype=np.int64)
    starts = take(graph.indptr, nodes)
    counts = take(graph.indptr, nodes + 1) - starts
    offsets = np.cumsum(counts) - counts
    edge_ids = np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    src = local[take(graph.indices, edge_ids)]
    keep = src >= 0
    rows = np.repeat(np.arange(nodes.shape[0], dtype=np.int64), counts)[keep]
    indptr = np.zeros(nodes.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=nodes.shape[0]), out=indptr[1:])
    return indptr, src[keep]


def build_local(
    graph: Graph, relab: Relabel, p: int, in_degree: np.ndarray, out_degree: np.ndarray
) -> dict[str, np.ndarray]:
    """All arrays of part ``p`` except ``send_idx``/``send_offsets``.

    ``in_degree``/``out_degree`` are global degrees indexed by *new* ID. The local CSR keeps each row's
    in-edges in their original order; sources become local indices over ``[owned | halo]``.
    """
    start, end = relab.node_range(p)
    n_owned = end - start
    owned_old = relab.order[start:end]

    row_start = take(graph.indptr, owned_old)  # a memory-mapped graph's pages are not kept (data.mapped)
    deg = take(graph.indptr, owned_old + 1) - row_start
    indptr = np.zeros(n_owned + 1, dtype=np.int64)
    np.cumsum(deg, out=indptr[1:])
    n_edges = int(indptr[-1])

    # Positions of this part's in-edges in the global CSR, row by row.
    pos = np.repeat(row_start - indptr[:-1], deg)
    pos += np.arange(n_edges, dtype=np.int64)
    del row_start, deg
    src = relab.new_of_old[take(graph.indices, pos)]  # new global IDs of sources
    del pos

    # Halo = distinct remote sources, ascending. A dense N-sized marker and lookup table (N bytes + 8N
    # bytes, reused memory per part) are much faster than sort/unique/searchsorted over the edges.
    remote = (src < start) | (src >= end)
    remote_src = src[remote]
    marker = np.zeros(relab.order.shape[0], dtype=bool)
    marker[remote_src] = True
    halo_gids = np.flatnonzero(marker).astype(np.int64)
    del marker
    lookup = np.empty(relab.order.shape[0], dtype=np.int64)
    lookup[halo_gids] = np.arange(n_owned, n_owned + halo_gids.shape[0], dtype=np.int64)
    np.subtract(src, start, out=src)
    src[remote] = lookup[remote_src]
    del remote, remote_src, lookup
    halo_offsets = np.searchsorted(halo_gids, relab.ranges).astype(np.int64)

    rows = np.concatenate([np.arange(start, end, dtype=np.int64), halo_gids])
    return {
        "indptr": indptr,
        "indices": src,
        "halo_gids": halo_gids,
        "halo_offsets": halo_offsets,
        "in_degree": in_degree[rows],
        "out_degree": out_degree[rows],
        "x": take(graph.x, owned_old),
        "y": take(graph.y, owned_old).astype(np.int64, copy=False),
        "train_mask": take(graph.train_mask, owned_old),
        "val_mask": take(graph.val_mask, owned_old),
        "test_mask": take(graph.test_mask, owned_old),
        "orig_ids": owned_old,
    }


def send_lists(p: int, relab: Relabel, halos: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``send_idx``/``send_offsets`` of part ``p`` from every part's ``(halo_gids, halo_offsets)``.

    The rows p sends to q are exactly q's halo rows owned by p, in q's (ascending global ID) order,
    expressed as p's local owned row indices.
    """
    start = int(relab.ranges[p])
    chunks = []
    for gids, offsets in halos:
        chunks.append(gids[offsets[p] : offsets[p + 1]] - start)
    sizes = np.array([c.shape[0] for c in chunks], dtype=np.int64)
    send_offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=send_offsets[1:])
    send_idx = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return {"send_idx": send_idx.astype(np.int64, copy=False), "send_offsets": send_offsets}
