"""Implementation selection, argument errors, the CSR type, torch.compile and locality orders."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from kernel_cases import graph

from distgnn.errors import DistGNNError
from distgnn.kernels import CSR, cpu, gspmm, resolve, select
from distgnn.partitioning.reorder import locality_order, permute_csr


# ----------------------------------------------------------------------------------------- selection
def test_explicit_triton_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    csr = graph("random")
    with pytest.raises(DistGNNError, match=r"impl='triton' needs CUDA tensors \(got cpu\)"):
        gspmm(csr, torch.randn(csr.num_src, 4), impl="triton")


def test_explicit_cpu_with_a_failed_build_raises_the_build_error(monkeypatch):
    monkeypatch.setattr(cpu, "_ext", None)
    monkeypatch.setattr(cpu, "_error", RuntimeError("ninja: build stopped\naggregate.cpp:1: error: boom"))
    csr = graph("random")
    msg = r"impl='cpu': the C\+\+ extension failed to build: aggregate.cpp:1: error: boom"
    with pytest.raises(DistGNNError, match=msg):
        gspmm(csr, torch.randn(csr.num_src, 4), impl="cpu")
    # auto does not fail: it logs and takes the next implementation
    assert resolve("auto", torch.device("cpu")) == "torch"


def test_unknown_impl_and_env_override(monkeypatch, caplog):
    csr = graph("random")
    x = torch.randn(csr.num_src, 4)
    with pytest.raises(DistGNNError, match=r"unknown kernel impl 'fast'; choose one of auto, reference, cpu"):
        gspmm(csr, x, impl="fast")
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", "reference")
    assert resolve("auto", torch.device("cpu")) == "reference"
    assert resolve("cpu", torch.device("cpu")) == "cpu"  # the env var only overrides auto
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", "nope")
    with pytest.raises(DistGNNError, match=r"unknown kernel impl 'nope' \(from DISTGNN_KERNEL_IMPL=nope\)"):
        gspmm(csr, x)
    monkeypatch.delenv("DISTGNN_KERNEL_IMPL")
    monkeypatch.setattr(select, "_auto_logged", set())
    monkeypatch.setattr(select, "_resolved", {})  # the cached selection would not log again
    with caplog.at_level(logging.INFO, logger="distgnn.kernels"):
        assert resolve("auto", torch.device("cpu")) == "cpu"
    assert "impl='auto' uses 'cpu' for cpu tensors" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_explicit_cpu_on_cuda_raises():
    csr = graph("random").to("cuda")
    with pytest.raises(DistGNNError, match="impl='cpu' needs CPU tensors, got tensors on cuda"):
        gspmm(csr, torch.randn(csr.num_src, 4, device="cuda"), impl="cpu")


# ----------------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": torch.randn(39, 4)}, "x has 39 rows but the CSR has num_src=40"),
        ({"x": torch.randn(40)}, r"x must be \[num_src, F\] or \[num_src, H, D\], got shape \(40,\)"),
        ({"reduce": "min"}, "gspmm reduce must be 'sum', 'mean' or 'max', got 'min'"),
        ({"edge_weight": torch.randn(5)}, r"edge_weight must have shape \[200\], got \(5,\)"),
        (
            {"src_scale": torch.randn(3)},
            r"src_scale must have shape \[40\] \(one per source node\), got \(3,\)",
        ),
        ({"bias": torch.randn(5)}, r"bias must have shape \[4\] \(one output row\), got \(5,\)"),
        (
            {"x": torch.randn(40, 4, dtype=torch.float64), "impl": "cpu"},
            "impl='cpu' supports float32 and bfloat16",
        ),
        ({"x": torch.ones(40, 4, dtype=torch.int64)}, "x must be a floating-point tensor, got torch.int64"),
    ],
)
def test_bad_arguments_raise_one_clear_line(kwargs, message):
    csr = graph("random")
    kw = {"x": torch.randn(40, 4), **kwargs}
    with pytest.raises(DistGNNError, match=message) as info:
        gspmm(csr, **kw)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- CSR
def test_csr_validation():
    with pytest.raises(DistGNNError, match="CSR indices must lie in"):
        CSR(torch.tensor([0, 1]), torch.tensor([5]), 2)
    with pytest.raises(DistGNNError, match="must start at 0 and end at the edge count 1"):
        CSR(torch.tensor([0, 2]), torch.tensor([0]), 2)
    with pytest.raises(DistGNNError, match="non-decreasing"):
        CSR(torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1]), 2)
    c = CSR.from_numpy(np.array([0, 1, 1]), np.array([1], dtype=np.int32))
    assert (c.num_dst, c.num_src, c.num_edges) == (2, 2, 1) and c.indices.dtype == torch.int32


def test_transposed_is_cached_and_maps_edge_weights():
    csr = graph("bipartite")
    t = csr.transposed()
    assert csr.transposed() is t
    assert (t.num_dst, t.num_src) == (csr.num_src, csr.num_dst)
    w = torch.randn(csr.num_edges)
    dense = torch.zeros(csr.num_dst, csr.num_src).index_put_((csr.row_ids(), csr.indices), w, accumulate=True)
    dense_t = torch.zeros(t.num_dst, t.num_src).index_put_(
        (t.row_ids(), t.indices), w[t.perm], accumulate=True
    )
    assert torch.equal(dense.T, dense_t)


# ---------------------------------------------------------------------------------------- compile
def test_torch_compile_with_the_cpu_kernel():
    """The custom op traces under torch.compile (fake kernel) and gives the eager result and grads."""
    csr = graph("powerlaw")
    csr.transposed()
    x = torch.randn(csr.num_src, 16, requires_grad=True)
    ds = torch.rand(csr.num_dst)

    def layer(h):
        return gspmm(csr, h, dst_scale=ds, relu=True, impl="cpu").sum(1) * 2.0

    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    ref = layer(x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, g_ref)


# ------------------------------------------------------------------------------------------ reorder
def test_rcm_order_shrinks_bandwidth_and_keeps_the_aggregation():
    n = 200
    rng = np.random.default_rng(0)
    shuffle = rng.permutation(n)
    # a ring lattice (each node hears its 3 nearest neighbours each side) under a random relabelling
    src, dst = [], []
    for k in (1, 2, 3):
        for v in range(n):
            for u in (v - k, v + k):
                src.append(shuffle[u % n])
                dst.append(shuffle[v])
    csr = CSR.from_edges(torch.tensor(src), torch.tensor(dst), n)
    ip, ix = csr.indptr.numpy(), csr.indices.numpy()
    perm = locality_order(ip, ix, method="rcm")
    assert np.array_equal(np.sort(perm), np.arange(n))
    new_ip, new_ix = permute_csr(ip, ix, perm)
    rows = np.repeat(np.arange(n), np.diff(new_ip))
    old_rows = np.repeat(np.arange(n), np.diff(ip))
    assert np.abs(rows - new_ix).max() < np.abs(old_rows - ix).max() // 4
    x = torch.randn(n, 5)
    new = CSR.from_numpy(new_ip, new_ix)
    out = gspmm(new, x[torch.from_numpy(perm)], impl="cpu")
    torch.testing.assert_close(out, gspmm(csr, x, impl="cpu")[torch.from_numpy(perm)])
    assert np.array_equal(locality_order(ip, ix, method="degree"), np.argsort(-np.diff(ip), kind="stable"))
    metis = locality_order(ip, ix, method="metis", num_parts=4)
    assert np.array_equal(np.sort(metis), np.arange(n))
    mp, mx = permute_csr(ip, ix, metis)
    mrows = np.repeat(np.arange(n), np.diff(mp))
    assert np.abs(mrows - mx).mean() < np.abs(old_rows - ix).mean() / 2
    with pytest.raises(DistGNNError, match="unknown locality order 'bogus'"):
        locality_order(ip, ix, method="bogus")
