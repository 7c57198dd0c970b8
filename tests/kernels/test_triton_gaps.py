"""Triton ops the other interpreter tests reach only indirectly: edge dot on its own (fp32, bf16, heads),
per-head gspmm in bf16, 32-bit CSR arrays (the kernels widen every loaded index to int64), and when the
gSpMM autotuner is on."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import assert_close, graph, needs_triton_interp
from test_gspmm import OPTIONS, check

pytestmark = needs_triton_interp


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize(
    ("gname", "heads", "width"), [("random", 1, 5), ("hubs", 3, 2), ("single_empty", 2, 3)]
)
def test_edge_dot_matches_a_gather_and_sum(gname, heads, width, dtype):
    from distgnn.kernels import ops

    csr = graph(gname)
    g = torch.Generator().manual_seed(heads * 10 + width)
    a = torch.randn(csr.num_dst, heads, width, generator=g).to(dtype)
    b = torch.randn(csr.num_src, heads, width, generator=g).to(dtype)
    got = ops.edge_dot_op(csr.indptr, csr.indices, a, b, "triton")
    rows = csr.row_ids()
    want = (a.float()[rows] * b.float()[csr.indices]).sum(-1)
    mag = (a.float()[rows] * b.float()[csr.indices]).abs().sum(-1)
    assert got.dtype == torch.float32
    assert_close(got, want, torch.float32, f"edge_dot {gname}", mag)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_gspmm_per_head_weights_bf16(reduce):
    check("triton", "random", (2, 3), reduce, OPTIONS["all"], torch.bfloat16, per_head=True)


def test_int32_csr_arrays_give_the_int64_results():
    from distgnn.kernels import triton_impl as T

    csr = graph("duplicates")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(csr.num_src, 1, 6, generator=g)
    w = torch.randn(csr.num_edges, 1, generator=g)
    ip32, ix32 = csr.indptr.int(), csr.indices.int()
    for args in ((x, w, None, None, None, True, False), (x, None, None, None, None, False, True)):
        assert torch.equal(T.spmm(ip32, ix32, *args), T.spmm(csr.indptr, csr.indices, *args))
    out32, arg32 = T.spmm_max(ip32, ix32, x, w, None, None, None, False)
    out64, arg64 = T.spmm_max(csr.indptr, csr.indices, x, w, None, None, None, False)
    assert torch.equal(out32, out64) and torch.equal(arg32, arg64)
    a, b = torch.randn(csr.num_dst, 3, generator=g), torch.randn(csr.num_src, 3, generator=g)
    assert torch.equal(T.sddmm(ip32, ix32, a, b), T.sddmm(csr.indptr, csr.indices, a, b))
    s = torch.randn(csr.num_edges, 3, generator=g)
    assert torch.equal(T.edge_softmax(ip32, s), T.edge_softmax(csr.indptr, s))
    a3, b3 = a[:, :, None], b[:, :, None]
    assert torch.equal(T.edge_dot(ip32, ix32, a3, b3), T.edge_dot(csr.indptr, csr.indices, a3, b3))


def test_autotune_only_on_cuda_and_never_when_deterministic(monkeypatch):
    from distgnn.kernels.triton_impl import AUTOTUNE_ENV, autotune_enabled

    cuda = torch.device("cuda", 0)
    assert autotune_enabled(cuda) and not autotune_enabled(torch.device("cpu"))
    monkeypatch.setenv(AUTOTUNE_ENV, "0")
    assert not autotune_enabled(cuda)
    monkeypatch.delenv(AUTOTUNE_ENV)
    torch.use_deterministic_algorithms(True)
    try:
        assert not autotune_enabled(cuda)
    finally:
        torch.use_deterministic_algorithms(False)
