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
import time

import numpy as np
import pytest
import torch
from helpers import random_graph, ref_aggregate, run_ranks, split_graph

from distgnn.comm.layout import ProcessLayout
from distgnn.comm.priority import COMM_NICE, boost_threads, thread_ids
from distgnn.comm.volume import analytic_bytes
from distgnn.kernels import CSR
from distgnn.parallel.halo_prop import HaloPropagation
from distgnn.parallel.overlap import OverlapSchedule, row_blocks

N, E, F = 60, 300, 4
BLOCK = 7  # rows per block: every part is cut into several blocks


def _run_rank(layout: ProcessLayout, parts: list, h_all: np.ndarray, r_all: np.ndarray) -> dict:
    part = parts[layout.rank]
    rows = part.orig_ids
    res: dict = {"halo": part.n_halo, "comm_nice": layout.comm_nice}
    for norm in ("gcn", "mean", "sum"):
        for overlap in (True, False):
            gp = HaloPropagation(part, layout, overlap=overlap, kernel_impl="reference")
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
    # the gloo threads got the nice value exactly when this user may raise a thread's priority
    expected_nice = COMM_NICE if sys.platform == "linux" and _may_raise_priority() else None
    assert [r["comm_nice"] for r in results] == [expected_nice] * 2


def _may_raise_priority() -> bool:
    """Whether a thread of this process may be given nice COMM_NICE (root or CAP_SYS_NICE)."""
    done, tid = threading.Event(), []
    t = threading.Thread(target=lambda: (tid.append(threading.get_native_id()), done.wait(10)))
    t.start()
    try:
        while not tid:
            time.sleep(0.001)
        os.setpriority(os.PRIO_PROCESS, tid[0], COMM_NICE)
        return True
    except OSError:
        return False
    finally:
        done.set()
        t.join()


# -- overlap, shown with an injected transfer delay --------------------------------------------------
DELAY = 1.0  # s added to every halo transfer
INNER = 0.6  # s the inner aggregation is made to take
SLACK = 0.25  # s allowed for scheduling noise on a loaded machine (well below INNER)


class _DelayedWork:
    """A work handle that completes ``delay`` seconds after its launch (or later, if the transfer is)."""

    def __init__(self, work, delay: float, events: list) -> None:
        self.work, self.ready_at, self.events = work, time.perf_counter() + delay, events

    def is_completed(self) -> bool:
        return time.perf_counter() >= self.ready_at and self.work.is_completed()

    def wait(self, *args) -> bool:
        time.sleep(max(0.0, self.ready_at - time.perf_counter()))
        ok = self.work.wait(*args)
        self.events.append(("wait_returned", time.perf_counter()))
        return ok


class _SlowInnerSchedule(OverlapSchedule):
    """The real schedule, with an inner aggregation that takes INNER seconds more and is logged."""

    def __init__(self, *args, events: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events = events

    def _blocked(self, blocks, x, src_scale, dst_scale, pending):
        self.events.append(("inner_start", time.perf_counter()))
        out = super()._blocked(blocks, x, src_scale, dst_scale, pending)
        time.sleep(INNER)
        self.events.append(("inner_end", time.perf_counter()))
        return out


def _delayed_rank(layout: ProcessLayout, parts: list, h_all: np.ndarray) -> dict:
    events: list = []
    real = torch.distributed.all_to_all_single

    def delayed(*args, **kwargs):
        return _DelayedWork(real(*args, **kwargs), DELAY, events)

    torch.distributed.all_to_all_single = delayed  # what distgnn.comm.halo calls
    try:
        part = parts[layout.rank]
        res = {}
        for overlap in (True, False):
            gp = HaloPropagation(part, layout, overlap=overlap, kernel_impl="reference")
            gp.schedule = _SlowInnerSchedule(
                gp.graph, gp.exchange, gp.counters, kernel_impl="reference", block_rows=BLOCK, events=events
            )
            h = torch.tensor(h_all[part.orig_ids], requires_grad=True)
            for direction in ("fwd", "bwd"):
                layout.barrier()
                gp.reset_counters()
                events.clear()
                if direction == "fwd":
                    out = gp.aggregate(h, key=0, norm="gcn")
                else:
                    out.sum().backward()
                t = gp.counters.times
                res[(overlap, direction)] = (list(events), t["comm"], t["exposed_comm"])
        return res
    finally:
        torch.distributed.all_to_all_single = real


@pytest.mark.timeout(60)
def test_inner_aggregation_hides_the_transfer() -> None:
    """With every transfer delayed by DELAY and the inner aggregation taking INNER, the overlapped
    engine finishes the inner aggregation before its wait returns, in both directions, and is exposed
    for only about DELAY - INNER; the synchronous path is exposed for the whole DELAY."""
    graph = random_graph(N, E, F, seed=11)
    parts = split_graph(graph, 2)
    h_all = np.random.default_rng(0).standard_normal((N, F)).astype(np.float32)
    for rank, res in enumerate(run_ranks(_delayed_rank, 2, parts, h_all, timeout=50)):
        for direction in ("fwd", "bwd"):
            events, comm_s, exposed_s = res[(True, direction)]
            names = [name for name, _ in events]
            assert names == ["inner_start", "inner_end", "wait_returned"], (rank, direction, names)
            (_, start), (_, end), (_, returned) = events
            inner = end - start
            assert end <= returned
            assert comm_s >= DELAY
            assert DELAY - inner - SLACK <= exposed_s <= DELAY - inner + SLACK, (rank, direction, exposed_s)
            sync_events, _, sync_exposed = res[(False, direction)]
            assert "inner_start" not in [name for name, _ in sync_events]  # the plain path: no schedule
            assert sync_exposed >= DELAY - SLACK, (rank, direction, sync_exposed)


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
