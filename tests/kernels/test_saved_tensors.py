"""What gspmm keeps for its backward: the source rows only when a gradient needs them.

Without edge weights or scales that need gradients, the backward is ``A^T g`` and needs no source rows;
keeping them would hold every layer's halo-extended (graph) or gathered (pipeline chunk) source buffer
until the backward. With edge weights that need gradients (attention), they are kept.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import graph

from distgnn.kernels import gspmm


def _saved_while(fn):
    """(output of ``fn()``, data pointers of the tensors autograd saved meanwhile)."""
    ptrs: list[int] = []

    def pack(t):
        ptrs.append(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, ptrs


@pytest.mark.parametrize("impl", ["reference", "cpu"])
def test_sources_are_not_kept_without_weight_or_scale_gradients(impl):
    csr = graph("random")
    x = torch.randn(csr.num_src, 8, requires_grad=True)
    src_scale, dst_scale = torch.rand(csr.num_src) + 0.5, torch.rand(csr.num_dst) + 0.5
    h = x * 2.0  # a buffer only gspmm reads, as a chunk's gathered sources are
    out, ptrs = _saved_while(lambda: gspmm(csr, h, src_scale=src_scale, dst_scale=dst_scale, impl=impl))
    assert h.untyped_storage().data_ptr() not in ptrs
    g = torch.randn_like(out)
    (out * g).sum().backward()
    # against the dense formula: out = D_dst A D_src h, so dL/dx = 2 D_src A^T D_dst g
    a = torch.zeros(csr.num_dst, csr.num_src)
    rows = torch.repeat_interleave(torch.arange(csr.num_dst), csr.indptr.diff())
    a.index_put_((rows, csr.indices), torch.ones(csr.indices.numel()), accumulate=True)
    want = 2 * src_scale[:, None] * (a.T @ (dst_scale[:, None] * g))
    torch.testing.assert_close(x.grad, want, rtol=1e-5, atol=1e-5)


def test_sources_are_kept_when_edge_weights_need_gradients():
    csr = graph("random")
    h = torch.randn(csr.num_src, 8) * 1.0
    w = torch.rand(csr.indices.numel(), requires_grad=True)
    out, ptrs = _saved_while(lambda: gspmm(csr, h, edge_weight=w, impl="cpu"))
    assert h.untyped_storage().data_ptr() in ptrs
    out.sum().backward()
    # d(sum out)/dw_e = sum over features of h[src(e)]
    torch.testing.assert_close(w.grad, h[csr.indices].sum(1), rtol=1e-5, atol=1e-5)
