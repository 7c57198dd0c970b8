"""The overlapped schedule (row blocks, backward exchange launched before the inner gradient) is exact.

On 2 gloo ranks, the overlapped aggregation cut into many small row blocks must give the same output
and input gradient as the plain exchange-then-aggregate path and as the single-process oracle, move
exactly the analytic bytes, and account its time consistently. Also: the row-block split itself, and
the communication-thread priority boost (on the real gloo threads of the test's process group).
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest
import torch
from helpers import random_graph, ref_aggregate, run_ranks, split_graph

from distgnn.comm.volume import analytic_bytes
from distgnn.kernels import CSR
from distgnn.parallel.comm_priority import COMM_NICE, boost_threads, thread_ids
from distgnn.parallel.graph import GraphParallel
from distgnn.parallel.layout import ProcessLayout
from distgnn.parallel.overlap import OverlapSchedule, row_blocks

N, E, F = 60, 300, 4
BLOCK = 7  # rows per block: every part is cut into several blocks


def _run_rank(layout: ProcessLayout, parts: list, h_all: np.ndarray, r_all: np.ndarray) -> dict:
    part = parts[layout.rank]
    rows = part.orig_ids
    res: dict = {"halo": part.n_halo, "comm_nice": layout.comm_nice}
    for norm in ("gcn", "mean", "sum"):
        for overlap in (True, False):
            gp = GraphParallel(part, layout, overlap=overlap, kernel_impl="reference")
            if overlap:
                gp.schedule = OverlapSchedule(
                    gp.graph, gp.exchange, gp.counters, kernel_impl="reference", block_rows=BLOCK
                )
                assert len(gp.schedule._inner(norm == "gcn", transposed=False)) > 1
            h = torch.tensor(h_all[rows], requires_grad=True)
            out = gp.aggregate(h, key=3, norm=norm)
            (out * torch.from_numpy(r_all[rows])).sum().backward()
            t = gp.counters.times
            res[(norm, overlap)] = (
                out.detach().numpy(),
                h.grad.numpy(),
                gp.counters.bytes_sent(direction="fwd"),
                gp.counters.bytes_sent(direction="bwd"),
                (t["comm"], t["exposed_comm"]),
            )
            if overlap:  # aggregate_linear: h and W trainable, then h constant (W's gradient only)
                w_all = torch.from_numpy(r_all[:F, :3].copy())
                for const in (False, True):
                    gp.reset_counters()
                    h = torch.tensor(h_all[rows], requires_grad=not const)
                    w = w_all.clone().requires_grad_(True)
                    out = gp.aggregate_linear(h, w, key=4, norm=norm)
                    (out * torch.from_numpy(r_all[rows, :3])).sum().backward()
                    res[(norm, "linear", const)] = (
                        out.detach().numpy(),
                        None if const else h.grad.numpy(),
                        w.grad.numpy(),
                        gp.counters.bytes_sent(direction="bwd"),
                    )
    return res


@pytest.mark.timeout(60)
def test_overlapped_schedule_is_exact_on_two_ranks() -> None:
    graph = random_graph(N, E, F, seed=11)
    parts = split_graph(graph, 2)
    rng = np.random.default_rng(0)
    h_all = rng.standard_normal((N, F)).astype(np.float32)
    r_all = rng.standard_normal((N, F)).astype(np.float32)
    results = run_ranks(_run_rank, 2, parts, h_all, r_all, timeout=50)
    halo_sizes = [r["halo"] for r in results]
    one_way = analytic_bytes(halo_sizes, [F], backward=False)
    for norm in ("gcn", "mean", "sum"):
        h = torch.tensor(h_all, requires_grad=True)
        want = ref_aggregate(graph, h, norm)
        (want * torch.from_numpy(r_all)).sum().backward()
        for p, r in enumerate(results):
            rows = parts[p].orig_ids
            out, grad, fwd, bwd, (comm_s, exposed_s) = r[(norm, True)]
            out_sync, grad_sync, *_ = r[(norm, False)]
            np.testing.assert_allclose(out, out_sync, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(grad, grad_sync, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(out, want.detach().numpy()[rows], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(grad, h.grad.numpy()[rows], rtol=1e-5, atol=1e-5)
            assert 0 <= exposed_s <= comm_s
        assert sum(r[(norm, True)][2] for r in results) == one_way
        assert sum(r[(norm, True)][3] for r in results) == one_way
        # aggregate_linear: the same values as aggregate(h) @ W, gradients included (W's summed over ranks)
        w = torch.from_numpy(r_all[:F, :3].copy()).requires_grad_(True)
        h = torch.tensor(h_all, requires_grad=True)
        want = ref_aggregate(graph, h, norm) @ w
        (want * torch.from_numpy(r_all[:, :3])).sum().backward()
        for const in (False, True):
            for p, r in enumerate(results):
                rows = parts[p].orig_ids
                out, grad_h, _, bwd = r[(norm, "linear", const)]
                np.testing.assert_allclose(out, want.detach().numpy()[rows], rtol=1e-5, atol=1e-5)
                if const:
                    assert grad_h is None and bwd == 0  # nothing to send back for a constant h
                else:
                    np.testing.assert_allclose(grad_h, h.grad.numpy()[rows], rtol=1e-5, atol=1e-5)
            grad_w = sum(r[(norm, "linear", const)][2] for r in results)
            np.testing.assert_allclose(grad_w, w.grad.numpy(), rtol=1e-5, atol=1e-5)
    privileged = hasattr(os, "geteuid") and os.geteuid() == 0
    if sys.platform == "linux" and privileged:
        assert all(r["comm_nice"] == COMM_NICE for r in results)


def test_row_blocks_cover_the_csr_in_order() -> None:
    src = torch.tensor([0, 2, 1, 1, 3, 0, 4, 2, 5])
    dst = torch.tensor([0, 0, 1, 2, 2, 3, 4, 5, 5])
    csr = CSR.from_edges(src, dst, num_dst=6, num_src=6)
    blocks = row_blocks(csr, 4)
    assert [(a, b) for a, b, _ in blocks] == [(0, 4), (4, 6)]
    assert all(c.num_src == 6 for _, _, c in blocks)
    indptr = torch.cat([blocks[0][2].indptr, blocks[1][2].indptr[1:] + blocks[0][2].num_edges])
    assert torch.equal(indptr, csr.indptr)
    assert torch.equal(torch.cat([c.indices for _, _, c in blocks]), csr.indices)
    assert row_blocks(csr, 6)[0][2] is csr


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are read from /proc (Linux)")
def test_boost_threads_sets_the_nice_value_of_the_given_threads() -> None:
    assert boost_threads(set()) is False
    ready, stop, tid = threading.Event(), threading.Event(), []

    def worker() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        stop.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    try:
        ready.wait(10)
        assert tid[0] in thread_ids()
        target = os.getpriority(os.PRIO_PROCESS, tid[0]) + 1  # raising nice is always permitted
        assert boost_threads({tid[0]}, target) is True
        assert os.getpriority(os.PRIO_PROCESS, tid[0]) == target
    finally:
        stop.set()
        t.join()
