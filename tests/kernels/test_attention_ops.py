"""sddmm and edge_softmax (the GAT score path) against the reference, forward and gradients."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import assert_close, graph, needs_triton_interp

from distgnn.kernels import edge_softmax, sddmm


def run(gname: str, heads: int, dtype: torch.dtype, impl: str):
    csr = graph(gname)
    g = torch.Generator().manual_seed(heads)
    a = (3 * torch.randn(csr.num_dst, heads, generator=g)).to(dtype).requires_grad_()
    b = (3 * torch.randn(csr.num_src, heads, generator=g)).to(dtype).requires_grad_()
    up = torch.randn(csr.num_edges, heads, generator=g).to(dtype)
    scores = sddmm(csr, a, b, impl=impl)
    probs = edge_softmax(csr, scores, impl=impl)
    grads = torch.autograd.grad((probs.float() * up.float()).sum() + scores.float().sum() * 0.1, (a, b))
    return csr, scores, probs, grads


def check(gname: str, heads: int, dtype: torch.dtype, impl: str) -> None:
    csr, s_ref, p_ref, g_ref = run(gname, heads, dtype, "reference")
    _, s, p, g = run(gname, heads, dtype, impl)
    assert_close(s, s_ref, dtype, f"{impl} sddmm")
    assert_close(p, p_ref, dtype, f"{impl} edge_softmax")
    assert_close(g[0], g_ref[0], dtype, f"{impl} grad a_dst")
    assert_close(g[1], g_ref[1], dtype, f"{impl} grad b_src")
    if csr.num_edges:  # probabilities of each non-empty row sum to one
        sums = torch.zeros(csr.num_dst, heads).index_add_(0, csr.row_ids(), p.detach().float())
        nonempty = csr.degrees() > 0
        torch.testing.assert_close(sums[nonempty], torch.ones_like(sums[nonempty]), atol=2e-2, rtol=0)


@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize(
    "gname", ["random", "empty_rows", "single", "single_empty", "duplicates", "powerlaw"]
)
def test_attention_ops_match_reference(impl, dtype, heads, gname):
    check(gname, heads, dtype, impl)


@needs_triton_interp
@pytest.mark.parametrize("gname", ["empty_rows", "single_empty", "duplicates"])
def test_attention_ops_triton_interpreter(gname):
    check(gname, 3, torch.float32, "triton")


def test_edge_softmax_is_stable_for_large_scores():
    csr = graph("random")
    scores = torch.full((csr.num_edges, 2), 1e4)
    scores[::2] += 1.0
    for impl in ("reference", "cpu", "torch"):
        p = edge_softmax(csr, scores, impl=impl)
        assert torch.isfinite(p).all(), impl


def test_sddmm_values():
    from distgnn.kernels import CSR

    csr = CSR(torch.tensor([0, 2, 3]), torch.tensor([1, 2, 0]), 3)
    a = torch.tensor([[1.0], [10.0]])
    b = torch.tensor([[100.0], [200.0], [300.0]])
    for impl in ("reference", "cpu", "torch"):
        assert torch.equal(sddmm(csr, a, b, impl=impl), torch.tensor([[201.0], [301.0], [110.0]])), impl
