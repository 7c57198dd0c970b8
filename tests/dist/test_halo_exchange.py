"""Halo exchange on real gloo ranks: rows arrive in halo order, gradients go back to their owners."""

from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest
import torch
from helpers import RankFailed, random_graph, run_ranks, split_graph, store_server

from distgnn.comm.halo import HaloExchange, HaloPlan
from distgnn.comm.layout import ProcessLayout
from distgnn.errors import DistGNNError

WIDTH = 3


def _weight(gids: torch.Tensor) -> torch.Tensor:
    """A per-node gradient weight every rank can compute from global IDs."""
    g = gids.to(torch.float64).unsqueeze(1)
    return torch.cat([g * 0.5 + 1, -g, torch.ones_like(g)], dim=1)[:, :WIDTH]


def _exchange_rank(layout: ProcessLayout, parts: list) -> dict:
    part = parts[layout.rank]
    lo, hi = part.node_range
    own = torch.arange(lo, hi, dtype=torch.float64)
    out = {}
    for name, wire in (("f32", None), ("bf16", torch.bfloat16)):
        ex = HaloExchange(HaloPlan.from_part(part), layout, wire_dtype=wire)
        h = (own.unsqueeze(1) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).requires_grad_(True)
        handle = ex.start(h, key=0)
        with torch.no_grad():  # the caller may overwrite its rows while the exchange is in flight:
            h.mul_(-1)  # the peers still receive the values at start()
        halo = handle.wait()
        gids = torch.as_tensor(part.halo_gids)
        (halo * _weight(gids)).sum().backward()
        out[name] = {
            "halo": halo.detach().numpy(),
            "grad": h.grad.numpy(),
            "sent": ex.counters.bytes_sent(),
            "recv": ex.counters.bytes_recv(),
            "fwd_sent": ex.counters.bytes_sent(direction="fwd"),
            "bwd_sent": ex.counters.bytes_sent(direction="bwd"),
            "dtype": str(halo.dtype),
            "times": (ex.counters.times["comm"], ex.counters.times["exposed_comm"]),
        }
    return out


def _expected_grad(parts: list, p: int) -> np.ndarray:
    lo, hi = parts[p].node_range
    count = np.zeros(hi - lo)
    for q in parts:
        mine = q.halo_gids[(q.halo_gids >= lo) & (q.halo_gids < hi)]
        np.add.at(count, mine - lo, 1)
    w = _weight(torch.arange(lo, hi)).numpy()
    return count[:, None] * w


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world_size", [3])
def test_halo_rows_gradients_and_bytes(world_size: int) -> None:
    parts = split_graph(random_graph(40, 160, 4, seed=world_size), world_size)
    results = run_ranks(_exchange_rank, world_size, parts, timeout=45)
    total_halo = sum(p.n_halo for p in parts)
    assert total_halo > 0
    for name, esize in (("f32", 8), ("bf16", 2)):  # f32 entry sends the float64 input unchanged
        sent = sum(r[name]["sent"] for r in results)
        recv = sum(r[name]["recv"] for r in results)
        assert sent == recv == 2 * total_halo * WIDTH * esize
        assert sum(r[name]["fwd_sent"] for r in results) == total_halo * WIDTH * esize
        assert sum(r[name]["bwd_sent"] for r in results) == total_halo * WIDTH * esize
    for p, r in enumerate(results):
        gids = parts[p].halo_gids.astype(np.float64)
        want = gids[:, None] * np.array([1.0, 2.0, 3.0])
        np.testing.assert_array_equal(r["f32"]["halo"], want)
        comm_s, exposed_s = r["f32"]["times"]
        assert 0 <= exposed_s <= comm_s and comm_s > 0  # blocked-in-wait time is part of the exchange
        assert r["f32"]["dtype"] == r["bf16"]["dtype"] == "torch.float64"  # cast back on receipt
        np.testing.assert_allclose(r["bf16"]["halo"], want, rtol=2**-8)
        np.testing.assert_allclose(r["f32"]["grad"], _expected_grad(parts, p), rtol=0, atol=1e-12)
        np.testing.assert_allclose(r["bf16"]["grad"], _expected_grad(parts, p), rtol=2**-7, atol=1e-6)


def _failing_rank(layout: ProcessLayout) -> int:
    if layout.rank == 1:
        raise ValueError("boom on rank 1")
    layout.barrier()  # rank 0 would block here forever without fail-fast
    return 0


@pytest.mark.timeout(60)
def test_harness_fails_fast_when_a_rank_raises() -> None:
    # without fail-fast, rank 0 would wait in its barrier for the 300 s process-group timeout
    with pytest.raises(RankFailed, match="rank 1 raised:(.|\n)*boom on rank 1"):
        run_ranks(_failing_rank, 2, timeout=45, pg_timeout=300)


def _silent_peer(layout: ProcessLayout) -> int:
    if layout.rank == 1:
        time.sleep(30)  # alive but never joins the exchange
    HaloExchange(HaloPlan.from_part(split_graph(random_graph(8, 20, 1), 2)[0]), layout)
    layout.barrier()
    return 0


@pytest.mark.timeout(40)
def test_silent_peer_times_out_instead_of_hanging() -> None:
    # rank 0's collective raises after the 2 s process-group timeout (a hang would end in the harness's
    # TimeoutError after 35 s instead, rank 1 is still asleep then)
    with pytest.raises(RankFailed, match="rank 0 raised:(.|\n)*[Tt]imed? ?out"):
        run_ranks(_silent_peer, 2, timeout=35, pg_timeout=2)


def _env_layout(rank: int, world_size: int) -> tuple:
    layout = ProcessLayout.init_from_env(timeout=20)
    t = torch.tensor([rank + 1.0])
    torch.distributed.all_reduce(t, group=layout.group)
    info = (layout.rank, layout.world_size, layout.backend, str(layout.device), float(t))
    layout.destroy()
    return info


@pytest.mark.timeout(60)
def test_layout_from_torchrun_env() -> None:
    assert run_ranks(_env_layout, 2, init=False, timeout=45) == [
        (0, 2, "gloo", "cpu", 3.0),
        (1, 2, "gloo", "cpu", 3.0),
    ]


def test_single_process_layout_and_plan_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    layout = ProcessLayout.init_from_env()
    assert (layout.rank, layout.world_size, layout.group) == (0, 1, None)
    parts = split_graph(random_graph(10, 30, 2), 1)
    ex = HaloExchange(HaloPlan.from_part(parts[0]), layout)
    assert ex.exchange(torch.ones(10, 2), key=0).shape == (0, 2)
    with pytest.raises(DistGNNError, match="halo exchange expects 10 owned rows, got 9"):
        ex.exchange(torch.ones(9, 2), key=0)
    two = split_graph(random_graph(10, 30, 2), 2)
    with pytest.raises(DistGNNError, match="halo plan has 2 peers but the job has 1 processes"):
        HaloExchange(HaloPlan.from_part(two[0]), layout)


def test_halo_rows_are_freed_without_the_cycle_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """The received rows' autograd node must not reach the rows again: such a cycle waits for a full
    collection, which a training process (few, large objects) runs rarely, so every epoch's graph and
    buffers piled up (a 2-rank ``--no-overlap`` run grew by 35 MB an epoch)."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    layout = ProcessLayout.init_from_env()
    ex = HaloExchange(HaloPlan.from_part(split_graph(random_graph(10, 30, 2), 1)[0]), layout)
    gc.disable()
    try:
        h = torch.ones(10, 2, requires_grad=True)
        handle = ex.start(h, key=0)
        rows = handle.wait()
        assert rows.grad_fn is not None
        (torch.cat([h, rows]) * 2).sum().backward()
        alive = weakref.ref(rows), weakref.ref(handle)
        del rows, handle
        assert [r() for r in alive] == [None, None]  # freed by reference counting alone
    finally:
        gc.enable()


@pytest.mark.timeout(30)
def test_layout_env_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(
        DistGNNError, match="environment variable MASTER_ADDR is not set; launch with torchrun"
    ):
        ProcessLayout.init_from_env()
    server = store_server()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    with pytest.raises(DistGNNError, match="rank 0 could not join the gloo process group of 2: .+") as info:
        ProcessLayout.init_from_env(timeout=1, backend="gloo")  # rank 1 never arrives
    assert "\n" not in str(info.value)
