"""int32 CSR indices: chosen when every size fits, int64 otherwise, and bit-identical results either way."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import GRAPHS, graph, needs_triton_interp

from distgnn.errors import DistGNNError
from distgnn.kernels import CSR, edge_softmax, gspmm, sddmm
from distgnn.kernels import csr as csr_module
from distgnn.kernels.cpu import is_available


def widths(csr: CSR) -> tuple[CSR, CSR]:
    """The same CSR with int32 and with int64 indices."""
    return tuple(CSR(csr.indptr, csr.indices, csr.num_src, dtype=dt) for dt in (torch.int32, torch.int64))


def test_int32_is_chosen_when_every_size_fits():
    csr = graph("bipartite")
    t = csr.transposed()
    assert csr.indptr.dtype == csr.indices.dtype == csr.dtype == torch.int32
    assert t.indptr.dtype == t.indices.dtype == t.perm.dtype == csr.row_ids().dtype == torch.int32
    assert csr.to("cpu") is csr and csr.degrees().dtype == torch.int64
    c32, c64 = widths(csr)
    assert c64.index_bytes() == 2 * c32.index_bytes() == 8 * (csr.num_dst + 1 + csr.num_edges)
    assert c64.transposed().dtype == torch.int64 and c64.row_ids().dtype == torch.int64


@pytest.mark.parametrize(
    "size, expect",
    [("rows", torch.int64), ("sources", torch.int64), ("edges", torch.int64), ("none", torch.int32)],
)
def test_int64_is_chosen_when_a_size_reaches_the_limit(monkeypatch, size, expect):
    monkeypatch.setattr(csr_module, "INT32_LIMIT", 100)
    rows, sources, edges = {"rows": (100, 10, 20), "sources": (10, 100, 20), "edges": (10, 10, 100)}.get(
        size, (99, 99, 99)
    )
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, sources, (edges,), generator=g), torch.randint(0, rows, (edges,), generator=g)
    csr = CSR.from_edges(src, dst, rows, sources)
    assert csr.dtype == expect and csr.transposed().dtype == expect and csr.transposed().perm.dtype == expect
    if expect == torch.int64:
        with pytest.raises(DistGNNError, match="does not fit int32 indices"):
            CSR(csr.indptr, csr.indices, csr.num_src, dtype=torch.int32)


def test_an_index_past_int32_is_rejected_not_wrapped():
    with pytest.raises(DistGNNError, match="CSR indices must lie in"):
        CSR(torch.tensor([0, 1]), torch.tensor([2**32 + 1]), 2)


def test_bad_index_dtype_is_one_clear_line():
    msg = "^CSR index dtype must be torch.int32 or torch.int64, got torch.int16$"
    with pytest.raises(DistGNNError, match=msg):
        CSR(torch.tensor([0, 1]), torch.tensor([0]), 1, dtype=torch.int16)


def _all_ops(csr: CSR, impl: str, seed: int) -> list[torch.Tensor]:
    """Outputs and input gradients of gspmm sum/mean/max (weights, scales, epilogue), sddmm, edge softmax."""
    g = torch.Generator().manual_seed(seed)
    leaf = lambda *s: torch.randn(*s, generator=g).requires_grad_()
    pos = lambda *s: (torch.rand(*s, generator=g) + 0.5).requires_grad_()
    results = []
    for reduce in ("sum", "mean", "max"):
        x, w, b = leaf(csr.num_src, 19), leaf(csr.num_edges), leaf(19)
        ss, ds = pos(csr.num_src), pos(csr.num_dst)
        kw = dict(edge_weight=w, src_scale=ss, dst_scale=ds, bias=b, relu=True, reduce=reduce, impl=impl)
        out = gspmm(csr, x, **kw)
        results += [out, *torch.autograd.grad(out, (x, w, ss, ds, b), torch.randn(out.shape, generator=g))]
        x = leaf(csr.num_src, 3, 4)  # per-head weights
        w = leaf(csr.num_edges, 3)
        out = gspmm(csr, x, edge_weight=w, reduce=reduce, impl=impl)
        results += [out, *torch.autograd.grad(out, (x, w), torch.randn(out.shape, generator=g))]
    a, bs = leaf(csr.num_dst, 2), leaf(csr.num_src, 2)
    scores = sddmm(csr, a, bs, impl=impl)
    att = edge_softmax(csr, scores, impl=impl)
    results += [scores, att, *torch.autograd.grad(att, (a, bs), torch.randn(att.shape, generator=g))]
    return results


def _assert_same(csr: CSR, impl: str) -> None:
    c32, c64 = widths(csr)
    got32, got64 = _all_ops(c32, impl, seed=3), _all_ops(c64, impl, seed=3)
    for k, (r32, r64) in enumerate(zip(got32, got64, strict=True)):
        assert torch.equal(r32, r64), f"{impl}: result {k} differs between int32 and int64 indices"


@pytest.mark.skipif(not is_available(), reason="the C++ extension does not build here")
@pytest.mark.parametrize("gname", GRAPHS)
def test_cpu_kernels_give_the_same_bits_with_int32_and_int64_indices(gname):
    _assert_same(graph(gname), "cpu")


@pytest.mark.parametrize("impl", ["reference", "torch"])
@pytest.mark.parametrize("gname", ["duplicates", "hubs", "single_empty"])
def test_torch_paths_give_the_same_bits_with_int32_and_int64_indices(impl, gname):
    _assert_same(graph(gname), impl)


@needs_triton_interp
def test_triton_kernels_give_the_same_bits_with_int32_and_int64_indices():
    _assert_same(graph("duplicates"), "triton")  # a small graph: the interpreter runs one program per row


@pytest.mark.skipif(not is_available(), reason="the C++ extension does not build here")
def test_cpu_kernel_rejects_mixed_index_dtypes():
    from distgnn.kernels import cpu

    csr = graph("random")
    x = torch.randn(csr.num_src, 1, 4)
    with pytest.raises(RuntimeError, match="CSR indptr and indices must share a dtype"):
        cpu.spmm(csr.indptr.long(), csr.indices.int(), x, None, None, None, None, False, False)
    with pytest.raises(RuntimeError, match="CSR indices must be int32 or int64"):
        cpu.spmm(csr.indptr, csr.indices.short(), x, None, None, None, None, False, False)
