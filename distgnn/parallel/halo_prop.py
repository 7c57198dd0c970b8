"""Halo propagation: the :class:`~distgnn.models.propagation.Propagation` a graph-parallel rank runs.

:class:`HaloPropagation` answers a model's ``aggregate``/``aggregate_linear``/``attend`` for the partition
this process owns, fetching the neighbour rows other ranks own with a halo exchange
(``distgnn.comm.halo``). With one process it is the single-process engine (no exchange). With several,
``aggregate`` is exact by default:

- overlap (default): the local in-edges are split once into *inner* edges (source owned) and
  *boundary* edges (source in the halo). The exchange starts asynchronously, inner edges are aggregated
  meanwhile, then the halo rows are waited for and the boundary edges added; the backward pass mirrors
  it (halo-row gradients first, sent while the owned-row gradient is computed), see
  ``distgnn.parallel.overlap``;
- ``overlap=False``: exchange first, then one pass over ``[owned | halo]``;
- ``staleness=1``: PipeGCN-style one-epoch-stale halo rows and gradients (see ``distgnn.comm.stale``),
  an explicit approximation; evaluation under ``torch.no_grad()`` always uses an exact exchange;
- ``comm_dtype`` bf16/fp16: the payload is cast for the wire (forward and backward), an approximation;
- ``compute_dtype`` bf16 (``--precision bf16-mixed``): rows are aggregated, and so travel, in bfloat16
  (the kernels accumulate in float32; GAT's attention scores and softmax stay float32).

Every rank must call ``aggregate``/``attend`` (and run backward) in the same order: exchanges are
collectives. The strategy that trains with it is :class:`~distgnn.parallel.graph.GraphStrategy`
(``graph.py``); a pipeline stage's propagation is ``chunk_prop.ChunkPropagation``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from distgnn.comm.clock import clock_for
from distgnn.comm.collectives import all_reduce
from distgnn.comm.counters import CommCounters
from distgnn.comm.halo import HaloExchange, HaloPlan
from distgnn.comm.layout import ProcessLayout
from distgnn.comm.stale import StaleHalo
from distgnn.comm.volume import analytic_bytes
from distgnn.errors import DistGNNError
from distgnn.kernels import CSR, gspmm, resolve
from distgnn.models.inputs import matmul
from distgnn.models.masks import MaskKey, MaskSeeds, attention_site, check_edge_key_range, edge_mask_keys
from distgnn.models.propagation import Norm
from distgnn.parallel.attention import attend_edges
from distgnn.parallel.chunk_exchange import halo_values
from distgnn.parallel.local_graph import LocalGraph
from distgnn.parallel.overlap import OverlapSchedule, scale_for
from distgnn.parallel.precision import rows
from distgnn.partitioning.part import Part

NORMS = ("gcn", "mean", "sum")


class HaloPropagation:
    """The halo propagation engine of the partition ``part`` this process owns: answers the Propagation
    protocol over the owned rows, with halo exchanges with the other ranks' partitions."""

    def __init__(
        self,
        part: Part,
        layout: ProcessLayout,
        *,
        staleness: int = 0,
        comm_dtype: torch.dtype | None = torch.float32,
        overlap: bool = True,
        kernel_impl: str = "auto",
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        """``compute_dtype``: the dtype of the rows it aggregates and exchanges (float32 rows are cast
        down to it; ``--precision``)."""
        if staleness not in (0, 1):
            raise DistGNNError(f"staleness must be 0 (exact) or 1 (one epoch stale), got {staleness}")
        if part.num_parts != layout.world_size:
            raise DistGNNError(
                f"part {part.part_id} belongs to a {part.num_parts}-part partition but the job has "
                f"{layout.world_size} processes"
            )
        if part.part_id != layout.rank:
            raise DistGNNError(
                f"rank {layout.rank} was given part {part.part_id}; each rank loads its own part"
            )
        self.layout = layout
        self.part = part  # features, labels and masks of the owned rows stay with the caller's data
        self.num_nodes = part.n_owned
        self.n_halo = part.n_halo
        self.staleness = staleness
        self.overlap = overlap
        self.kernel_impl = kernel_impl
        self.comm_dtype = comm_dtype or torch.float32
        self.compute_dtype = compute_dtype
        self.graph = LocalGraph.from_part(part, layout.device)
        self.counters = CommCounters(layout.world_size, clock_for(layout.device))
        wire = None if self.comm_dtype == torch.float32 else self.comm_dtype
        plan = HaloPlan.from_part(part, layout.device)
        self.exchange = HaloExchange(plan, layout, counters=self.counters, wire_dtype=wire)
        self.stale = StaleHalo(self.exchange) if staleness else None
        self.schedule = OverlapSchedule(self.graph, self.exchange, self.counters, kernel_impl=kernel_impl)
        self._halo_sizes: list[int] | None = None
        self._edge_keys: tuple[Tensor, int] | None = None  # attention dropout's (edge keys, graph nodes)
        self.seeds = MaskSeeds(run_seed=0)  # the strategy sets the run seed and the step
        self.row_keys = torch.from_numpy(np.array(part.orig_ids, dtype=np.int64)).to(layout.device)

    def release_bulk(self) -> None:
        """Drop this rank's references to the part's features and edge list once the set-up copied them
        (NodeData, LocalGraph): they are memory-mapped, and the pages set-up read stay in the rank's
        resident set for as long as they are mapped."""
        p = self.part
        self.part = dataclasses.replace(
            p, x=np.empty((0, *p.x.shape[1:]), dtype=p.x.dtype), indices=np.empty(0, dtype=p.indices.dtype)
        )

    @classmethod
    def from_partition_dir(
        cls, part_dir: str | os.PathLike, layout: ProcessLayout, **kwargs: object
    ) -> HaloPropagation:
        """Load this rank's part of ``part_dir`` and build its propagation on ``layout.device``."""
        from distgnn.partitioning import load_meta, load_part

        num_parts = int(load_meta(part_dir)["num_parts"])
        if num_parts != layout.world_size:
            raise DistGNNError(
                f"partition directory {part_dir} has {num_parts} parts but the job has {layout.world_size} "
                f"processes; run with {num_parts} processes or re-partition with --parts {layout.world_size}"
            )
        return cls(load_part(part_dir, layout.rank), layout, **kwargs)  # type: ignore[arg-type]

    # -- the Propagation protocol -----------------------------------------------------------------
    def mask_key(self, site: int) -> MaskKey | None:
        """Dropout masks keyed by the owned rows' original node ids (the same on any partitioning)."""
        return self.seeds.key(site, self.row_keys)

    def aggregate(self, h: Tensor, *, key: int, norm: Norm) -> Tensor:
        """Aggregate ``h`` [owned, F] over each owned node's in-edges (see the Propagation protocol)."""
        h = rows(h, self.compute_dtype)
        src, dst = self._scales(h, norm)
        loops = norm == "gcn"  # GCN's A + I: the self term is one more edge, scaled like the others
        path = self._path(torch.is_grad_enabled())
        if path == "overlap":
            return self.schedule.aggregate(h, key=key, src=src, dst=dst, loops=loops)
        csrs = self._path_csrs(path, loops)
        n = self.graph.n_owned
        if path == "local":
            return self._spmm(csrs[0], h, None if src is None else src[:n], dst)
        if path == "stale":
            halo = self.stale.fetch(h, key=key)
            src_in, src_halo = (None, None) if src is None else (src[:n], src[n:])
            return self._spmm(csrs[0], h, src_in, dst) + self._spmm(csrs[1], halo, src_halo, dst)
        halo = self.exchange.exchange(h, key=key)
        return self._spmm(csrs[0], torch.cat([h, halo]), src, dst)

    def aggregate_linear(self, h: Tensor, weight: Tensor, *, key: int, norm: Norm) -> Tensor:
        """``aggregate(h) @ weight``; when overlapped, the weight gradient is computed during the exchange."""
        h = rows(h, self.compute_dtype)
        if self._path(torch.is_grad_enabled()) == "overlap":
            src, dst = self._scales(h, norm)
            return self.schedule.aggregate_linear(h, weight, key=key, src=src, dst=dst, loops=norm == "gcn")
        agg = self.aggregate(h, key=key, norm=norm)
        return matmul(agg, weight.to(agg.dtype))  # its row-sized results pooled (models/inputs.py)

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
        """GAT aggregation over in-edges plus a self-loop; ``h`` [owned, H, D], ``a_*`` [owned, H].

        ``h`` and ``a_src`` travel as one message (concatenated along the features); the softmax needs
        every in-edge of a row, so the exchange completes before the edge computation starts.
        ``dropout``: attention dropout, masks keyed by the edges' original node ids. In a 16-bit compute
        dtype ``h`` and ``a_src`` are cast to it (what travels); ``a_dst``, the scores and the softmax stay
        as given (float32).
        """
        h, a_src = rows(h, self.compute_dtype), rows(a_src, self.compute_dtype)
        self._check_rows(h, "h")
        self._check_rows(a_src, "a_src")
        self._check_rows(a_dst, "a_dst")
        if h.dim() != 3 or a_src.shape != h.shape[:2] or a_dst.shape != h.shape[:2]:
            raise DistGNNError(
                f"attend expects h [N, H, D] and a_src/a_dst [N, H], got {tuple(h.shape)}, "
                f"{tuple(a_src.shape)}, {tuple(a_dst.shape)}"
            )
        n, heads, d = h.shape
        if self.layout.is_distributed:
            payload = torch.cat([h.reshape(n, heads * d), a_src.to(h.dtype)], dim=1)
            if self._use_stale():
                halo = self.stale.fetch(payload, key=key)
            else:
                halo = self.exchange.exchange(payload, key=key)
            h_all = torch.cat([h, halo[:, : heads * d].reshape(-1, heads, d)])
            a_all = torch.cat([a_src, halo[:, heads * d :].to(a_src.dtype)])
        else:
            h_all, a_all = h, a_src
        mask = self.seeds.key(attention_site(key), self._attention_keys(heads)) if dropout else None
        with self.counters.timer("compute"):
            return attend_edges(
                self.graph.full_loops,
                h_all,
                a_all,
                a_dst,
                negative_slope=negative_slope,
                dropout=dropout,
                mask=mask,
                impl=self.kernel_impl,
            )

    def _attention_keys(self, heads: int) -> Tensor:
        """Every edge's key for attention dropout (the first call is a collective: the halo rows' original
        ids come from their owners)."""
        if self._edge_keys is None:
            src_keys, n = self.row_keys, self.num_nodes
            if self.layout.is_distributed:
                src_keys = torch.cat([src_keys, halo_values(self.part, self.row_keys, self.layout)])
                total = torch.tensor([n], dtype=torch.int64, device=self.layout.device)
                n = int(all_reduce(total, self.layout).item())
            self._edge_keys = (edge_mask_keys(self.graph.full_loops, self.row_keys, src_keys, n), n)
        check_edge_key_range(self._edge_keys[1], heads)  # every layer: each has its own head count
        return self._edge_keys[0]

    # -- epoch bookkeeping, volume, checkpointing ---------------------------------------------------
    def reset_counters(self) -> None:
        """Start a new epoch of byte/time accounting."""
        self.counters.reset()

    def halo_sizes(self) -> list[int]:
        """Halo rows of every part (a collective the first time; cached)."""
        if self._halo_sizes is None:
            if not self.layout.is_distributed:
                self._halo_sizes = [self.n_halo]
            else:
                t = torch.zeros(self.layout.world_size, dtype=torch.int64, device=self.layout.device)
                t[self.layout.rank] = self.n_halo
                dist.all_reduce(t, group=self.layout.group)
                self._halo_sizes = [int(v) for v in t.tolist()]
        return self._halo_sizes

    @property
    def wire_dtype(self) -> torch.dtype:
        """What halo rows travel as: ``comm_dtype`` when it casts (16-bit), else the rows' own dtype."""
        return self.comm_dtype if self.comm_dtype != torch.float32 else self.compute_dtype

    def analytic_bytes(self, widths: list[int], backward: bool | list[bool] = True) -> int:
        """Bytes all ranks must send per training epoch for exchanges of these widths (a collective)."""
        return analytic_bytes(self.halo_sizes(), widths, wire_dtype=self.wire_dtype, backward=backward)

    def flush(self) -> None:
        """Wait for stale-mode exchanges still in flight (call before tearing the group down)."""
        if self.stale is not None:
            self.stale.flush()

    def state_dict(self) -> dict[str, object]:
        """State for checkpoints (all of the graph strategy's): the stale buffers (None when exact)."""
        return {"staleness": self.staleness, "stale": self.stale.state_dict() if self.stale else None}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if int(state.get("staleness", -1)) != self.staleness:  # type: ignore[call-overload]
            raise DistGNNError(
                f"checkpoint was written with staleness {state.get('staleness')} but this run uses "
                f"staleness {self.staleness}"
            )
        if self.stale is not None:
            stale: dict = state["stale"]  # type: ignore[assignment]
            # Rows saved under the other --precision become this run's (a run resumes under either).
            precisions = (torch.float32, torch.bfloat16)
            same = {
                k: v.to(self.compute_dtype) if v.dtype in precisions else v for k, v in stale["rows"].items()
            }
            self.stale.load_state_dict({**stale, "rows": same})

    # -- internals ----------------------------------------------------------------------------------
    def prepare(self, norms: set[Norm]) -> None:
        """Build now, before the first epoch, what aggregations with ``norms`` will read: this rank's edge
        subsets and their transposes (the backward's), and the kernels' C++ extension, loaded.

        Left lazy they are all built inside the first epoch's forward and backward, which then takes 3-7x
        a steady epoch on the 2-rank demo: work the job needs anyway, so it belongs to start-up.
        """
        resolve(self.kernel_impl, self.layout.device)  # loads the extension (impl auto/cpu), or fails here
        for path in {self._path(grad=True), self._path(grad=False)}:  # training's, evaluation's
            for loops in {norm == "gcn" for norm in norms}:
                if path == "overlap":
                    self.schedule.prepare(loops)
                else:
                    for csr in self._path_csrs(path, loops):
                        csr.transposed()

    def _path(self, grad: bool) -> str:
        """How ``aggregate`` runs here: ``local`` (one process), ``stale`` (training with stale halos;
        evaluation is exact), ``overlap`` (exchange during the inner aggregation) or ``exchange_first``."""
        if not self.layout.is_distributed:
            return "local"
        if self.stale is not None and grad:
            return "stale"
        return "overlap" if self.overlap else "exchange_first"

    def _path_csrs(self, path: str, loops: bool) -> tuple[CSR, ...]:
        """The CSRs a non-overlapped ``path`` reads (its backward reads their transposes): ``local`` the
        owned sources', ``stale`` those and the halo sources', ``exchange_first`` all in-edges."""
        g = self.graph
        if path == "local":
            return (g.inner_loops if loops else g.inner,)
        if path == "stale":
            return (g.inner_loops if loops else g.inner, g.boundary)
        return (g.full_loops if loops else g.full,)

    def _use_stale(self) -> bool:
        return self._path(torch.is_grad_enabled()) == "stale"

    def _spmm(self, csr, x: Tensor, src_scale: Tensor | None, dst_scale: Tensor | None) -> Tensor:
        with self.counters.timer("compute"):
            return gspmm(
                csr,
                x,
                src_scale=scale_for(src_scale, x),
                dst_scale=scale_for(dst_scale, x),
                impl=self.kernel_impl,
            )

    def _scales(self, h: Tensor, norm: Norm) -> tuple[Tensor | None, Tensor | None]:
        """Check ``h`` [owned, F] and ``norm``; the norm's (source, destination) scaling vectors."""
        if norm not in NORMS:
            raise DistGNNError(f"unknown aggregation norm {norm!r}; choose one of {', '.join(NORMS)}")
        self._check_rows(h, "h")
        if h.dim() != 2:
            raise DistGNNError(f"aggregate expects h [N, F], got shape {tuple(h.shape)}")
        g = self.graph
        return {"gcn": (g.gcn_src, g.gcn_dst), "mean": (None, g.mean_dst), "sum": (None, None)}[norm]

    def _check_rows(self, t: Tensor, name: str) -> None:
        if t.shape[0] != self.num_nodes:
            raise DistGNNError(f"{name} has {t.shape[0]} rows but this process owns {self.num_nodes} nodes")
