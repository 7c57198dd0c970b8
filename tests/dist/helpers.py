"""Test harness for multi-process tests: start N real gloo ranks, collect their results, fail fast.

``run_ranks(fn, world_size, *args)`` spawns one process per rank. Each sets the torchrun environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT of a TCPStore this process hosts on an OS-chosen
port), joins a gloo process group through a FileStore in a temporary directory, calls
``fn(layout, *args)`` with its :class:`ProcessLayout` and sends the (picklable) return value back.
If a rank raises, the others are killed and the traceback re-raised here; if the timeout expires,
all are killed and ``TimeoutError`` names the ranks still running.
``fn`` must be a module-level function (spawn pickles it by name).

``split_graph(graph, P)`` is a small in-memory partitioner for tests only: it builds the same
:class:`Part` objects a partition directory would hold, without METIS and without disk.
``ref_aggregate`` / ``ref_attend`` are the single-process oracles on the whole graph.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import pickle
import queue
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from distgnn.data.graph import Graph
from distgnn.kernels import dropout as kernel_dropout
from distgnn.partitioning.part import Part


class RankFailed(RuntimeError):
    """A rank raised; the message holds its rank and traceback."""


def store_server() -> dist.TCPStore:
    """A TCPStore server on a port the OS picks when the store binds it (no free-port race).

    Ranks reach it as torchrun's workers reach the agent's store: MASTER_ADDR/MASTER_PORT name it and
    TORCHELASTIC_USE_AGENT_STORE=True makes every rank (rank 0 too) a client instead of a server.
    """
    return dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def _worker(
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    store_path: str,
    port: int,
    results: Any,
    args: tuple,
    pg_timeout: float,
    init: bool,
    environ: dict[str, str],
) -> None:
    os.environ.clear()  # the caller's environment now, as a spawned rank would have it
    os.environ.update(environ)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        TORCHELASTIC_USE_AGENT_STORE="True",
    )
    import torch
    import torch.distributed as dist

    from distgnn.comm.layout import ProcessLayout

    torch.set_num_threads(1)
    layout = None
    try:
        if init:
            store = dist.FileStore(store_path, world_size)
            layout = ProcessLayout.init(
                rank=rank,
                world_size=world_size,
                backend="gloo",
                store=store,
                timeout=pg_timeout,
                device="cpu",
            )
            value = fn(layout, *args)
        else:
            value = fn(rank, world_size, *args)
        results.put((rank, True, pickle.dumps(value)))
    except BaseException as err:  # noqa: B036 - report everything, including KeyboardInterrupt, to the parent
        from distgnn.runtime.failure import is_comm_failure
        from distgnn.runtime.worker import PEER_GRACE_S

        if is_comm_failure(err):  # a peer's failure seen from here: let that peer report its cause first
            time.sleep(PEER_GRACE_S)
        results.put((rank, False, traceback.format_exc()))
    finally:
        if layout is not None:
            layout.destroy()


PRELOAD = ["torch", "torch.distributed", "torch._dynamo", "torch._inductor.config", "numpy", "distgnn.train"]


def _context() -> Any:
    """Processes forked from a server that has already imported torch (forkserver, preloaded).

    A spawned rank is a fresh interpreter that imports torch again (about 2 s of CPU each, several
    hundred ranks over the suite); a forkserver child starts from a process that holds no threads or
    process group, so it is as clean as a spawned one, and :func:`_worker` gives it the caller's
    environment of the moment. DISTGNN_TEST_START=spawn restores spawning.

    ``torch._dynamo`` is preloaded too: torch.optim imports it at the first optimiser a rank builds (and
    ``torch.use_deterministic_algorithms`` imports inductor's config, which imports it), about 3 s of CPU
    per rank, as much as torch itself. Importing it starts no thread.
    """
    method = os.environ.get("DISTGNN_TEST_START", "forkserver")
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    return ctx


def run_ranks(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    timeout: float = 60.0,
    init: bool = True,
    pg_timeout: float | None = None,
) -> list[Any]:
    """Run ``fn(layout, *args)`` on ``world_size`` gloo ranks; return the per-rank results in rank order.

    ``timeout`` bounds the whole run; ``pg_timeout`` (default: ``timeout``) is the process-group
    timeout, after which a collective waiting for a silent peer raises.

    With ``init=False`` no process group is created and ``fn(rank, world_size, *args)`` is called with
    only the torchrun environment set (e.g. to test ``ProcessLayout.init_from_env``).
    """
    ctx = _context()
    results_q = ctx.Queue()
    server = store_server()  # for init=False ranks that join through torchrun's environment
    with tempfile.TemporaryDirectory(prefix="distgnn-test-") as tmp:
        port = server.port
        store_path = os.path.join(tmp, "store")
        procs = [
            ctx.Process(
                target=_worker,
                args=(
                    fn,
                    rank,
                    world_size,
                    store_path,
                    port,
                    results_q,
                    args,
                    pg_timeout or timeout,
                    init,
                    dict(os.environ),
                ),
                daemon=True,
            )
            for rank in range(world_size)
        ]
        for p in procs:
            p.start()
        try:
            return _collect(procs, results_q, world_size, timeout)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
            for p in procs:
                p.join(5)


def _collect(procs: list, results_q: Any, world_size: int, timeout: float) -> list[Any]:
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    dead_since: dict[int, float] = {}
    while len(results) < world_size:
        now = time.monotonic()
        if now > deadline:
            missing = sorted(set(range(world_size)) - set(results))
            raise TimeoutError(f"ranks {missing} did not finish within {timeout:.0f} s")
        try:
            rank, ok, payload = results_q.get(timeout=0.1)
        except queue.Empty:
            for rank, p in enumerate(procs):
                if rank in results or p.exitcode is None:
                    continue
                # Died without reporting (hard crash): allow a moment for a message still in the pipe.
                if now - dead_since.setdefault(rank, now) > 2.0:
                    raise RankFailed(f"rank {rank} exited with code {p.exitcode} without a result") from None
            continue
        if not ok:
            raise RankFailed(f"rank {rank} raised:\n{payload}")
        results[rank] = pickle.loads(payload)
    return [results[r] for r in range(world_size)]


def cli_rank(rank: int, world_size: int, args: list[str]) -> tuple[int, str]:
    """Run ``distgnn ARGS`` in this rank (use with ``run_ranks(..., init=False)``): (exit code, stderr)."""
    from distgnn.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


# -- in-memory partitioning (tests only) ------------------------------------------------------------


def split_graph(graph: Graph, num_parts: int, assignment: np.ndarray | None = None) -> list[Part]:
    """Split ``graph`` into ``num_parts`` Parts (relabelled so each owns a contiguous ID range).

    ``assignment[v]`` is the part of node v (default: a fixed pseudo-random one, so halos are large).
    Self-loops are dropped, as the partitioner does. ``Part.orig_ids`` maps owned rows back to ``graph``.
    """
    n = graph.num_nodes
    if assignment is None:
        assignment = np.random.default_rng(12345).integers(0, num_parts, size=n)
    assignment = np.asarray(assignment, dtype=np.int64)
    new2old = np.argsort(assignment, kind="stable")
    old2new = np.empty(n, dtype=np.int64)
    old2new[new2old] = np.arange(n)
    starts = np.searchsorted(assignment[new2old], np.arange(num_parts + 1))

    src_old, dst_old = graph.edges()
    keep = src_old != dst_old
    src, dst = old2new[src_old[keep]], old2new[dst_old[keep]]
    order = np.lexsort((src, dst))
    src, dst = src[order], dst[order]
    in_deg = np.bincount(dst, minlength=n)
    out_deg = np.bincount(src, minlength=n)

    halos, locals_ = [], []
    for p in range(num_parts):
        lo, hi = int(starts[p]), int(starts[p + 1])
        sel = (dst >= lo) & (dst < hi)
        s, d = src[sel], dst[sel]
        outside = (s < lo) | (s >= hi)
        halo = np.unique(s[outside])
        local_src = np.where(outside, (hi - lo) + np.searchsorted(halo, s), s - lo)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(d - lo, minlength=hi - lo))]).astype(np.int64)
        halos.append(halo)
        locals_.append((indptr, local_src.astype(np.int64)))

    parts = []
    for p in range(num_parts):
        lo, hi = int(starts[p]), int(starts[p + 1])
        halo = halos[p]
        halo_offsets = np.searchsorted(halo, starts).astype(np.int64)
        send = [halos[q][(halos[q] >= lo) & (halos[q] < hi)] - lo for q in range(num_parts)]
        send_offsets = np.concatenate([[0], np.cumsum([len(s) for s in send])]).astype(np.int64)
        gids = np.concatenate([np.arange(lo, hi), halo])
        old = new2old[lo:hi]
        parts.append(
            Part(
                part_id=p,
                num_parts=num_parts,
                node_range=(lo, hi),
                indptr=locals_[p][0],
                indices=locals_[p][1],
                halo_gids=halo.astype(np.int64),
                halo_offsets=halo_offsets,
                send_idx=np.concatenate(send).astype(np.int64),
                send_offsets=send_offsets,
                in_degree=in_deg[gids].astype(np.int64),
                out_degree=out_deg[gids].astype(np.int64),
                x=graph.x[old],
                y=graph.y[old],
                train_mask=graph.train_mask[old],
                val_mask=graph.val_mask[old],
                test_mask=graph.test_mask[old],
                orig_ids=old.astype(np.int64),
                num_classes=graph.num_classes,
            )
        )
    return parts


def random_graph(
    num_nodes: int, num_edges: int, feat_dim: int, *, seed: int = 0, num_classes: int = 3
) -> Graph:
    """A small directed random graph (duplicate edges and self-loops possible) for tests."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, num_nodes, size=num_edges)
    dst = rng.integers(0, num_nodes, size=num_edges)
    order = np.argsort(dst, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=num_nodes))]).astype(np.int64)
    y = rng.integers(0, num_classes, size=num_nodes).astype(np.int64)
    mask = rng.random(num_nodes)
    return Graph(
        indptr=indptr,
        indices=src[order].astype(np.int64),
        x=rng.standard_normal((num_nodes, feat_dim)).astype(np.float32),
        y=y,
        train_mask=mask < 0.5,
        val_mask=(mask >= 0.5) & (mask < 0.75),
        test_mask=mask >= 0.75,
        num_classes=num_classes,
        name="random",
    )


# -- single-process oracles on a whole Graph (plain torch index_add_) ------------------------------


def graph_edges(graph: Graph) -> tuple[Tensor, Tensor]:
    """(src, dst) without self-loops, as the partitioner keeps them."""
    src, dst = graph.edges()
    keep = src != dst
    return torch.from_numpy(src[keep]), torch.from_numpy(dst[keep])


def ref_aggregate(graph: Graph, h: Tensor, norm: str, edge_mask: np.ndarray | None = None) -> Tensor:
    """sum / mean / gcn aggregation of h [N, F] over in-edges (optionally only the masked edges)."""
    src, dst = graph_edges(graph)
    n = graph.num_nodes
    in_deg = torch.bincount(dst, minlength=n).to(h.dtype)
    out_deg = torch.bincount(src, minlength=n).to(h.dtype)
    self_term = norm == "gcn" and edge_mask is None
    if edge_mask is not None:
        m = torch.from_numpy(edge_mask)
        src, dst = src[m], dst[m]
    if norm == "gcn":
        s, d = (out_deg + 1) ** -0.5, (in_deg + 1) ** -0.5
        out = torch.zeros_like(h).index_add(0, dst, h[src] * s[src, None]) * d[:, None]
        return out + (d * s)[:, None] * h if self_term else out
    out = torch.zeros_like(h).index_add(0, dst, h[src])
    if norm == "mean":
        out = out / in_deg.clamp(min=1)[:, None]
    return out


def ref_attend(
    graph: Graph,
    h: Tensor,
    a_src: Tensor,
    a_dst: Tensor,
    negative_slope: float,
    dropout: float = 0.0,
    seed: int | None = None,
) -> Tensor:
    """GAT aggregation with one self-loop per node: h [N, H, D], a_* [N, H]; ``dropout`` > 0 drops
    attention coefficients with the mask of edge j -> i, head k drawn at counter ``(i * N + j) * H + k``
    from ``seed`` (the reference dropout kernel)."""
    src, dst = graph_edges(graph)
    loops = torch.arange(graph.num_nodes)
    src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    e = F.leaky_relu(a_src[src] + a_dst[dst], negative_slope)  # [E, H]
    idx = dst[:, None].expand_as(e)
    row_max = torch.full_like(a_dst, float("-inf")).scatter_reduce(0, idx, e.detach(), "amax")
    ex = torch.exp(e - row_max[dst])
    denom = torch.zeros_like(a_dst).index_add(0, dst, ex)
    alpha = ex / denom[dst]
    if dropout:
        keys = dst * graph.num_nodes + src
        alpha = alpha * kernel_dropout(
            torch.ones_like(alpha), dropout, seed=seed, keys=keys, impl="reference"
        )
    return torch.zeros_like(h).index_add(0, dst, alpha[:, :, None] * h[src])
