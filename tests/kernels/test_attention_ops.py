"""sddmm and edge_softmax (the GAT score path) against the reference, forward and gradients."""

from __future__ import annotations

import math

import pytest
import torch
from kernel_cases import assert_close, graph, needs_triton_interp

from distgnn.kernels import edge_softmax, sddmm


def _leaf(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.detach().to(dtype).requires_grad_()


def check(gname: str, heads: int, dtype: torch.dtype, impl: str) -> None:
    """Each op in ``dtype`` against the reference in float32 on the same input values, element by element."""
    csr = graph(gname)
    g = torch.Generator().manual_seed(heads)
    a, b = (3 * torch.randn(n, heads, generator=g) for n in (csr.num_dst, csr.num_src))
    up = torch.randn(csr.num_edges, heads, generator=g).to(dtype)

    # sddmm: a_dst[i] + b_src[j]; magnitude |a| + |b| (its gradients: row / column sums of |up|)
    def scores_of(x, y, op_impl, grad):
        x, y = _leaf(x, x.dtype), _leaf(y, y.dtype)
        s = sddmm(csr, x, y, impl=op_impl)
        return (s, *torch.autograd.grad(s, (x, y), grad))

    s, ga, gb = scores_of(a.to(dtype), b.to(dtype), impl, up)
    s_ref, ga_ref, gb_ref = scores_of(a.to(dtype).float(), b.to(dtype).float(), "reference", up.float())
    s_mag, ga_mag, gb_mag = scores_of(
        a.to(dtype).float().abs(), b.to(dtype).float().abs(), "reference", up.float().abs()
    )
    assert_close(s, s_ref, dtype, f"{impl} sddmm", s_mag)
    assert_close(ga, ga_ref, dtype, f"{impl} sddmm grad a_dst", ga_mag)
    assert_close(gb, gb_ref, dtype, f"{impl} sddmm grad b_src", gb_mag)

    # edge_softmax on the same (dtype) scores; its gradient o * (g - sum_row(g * o)) has magnitude
    # o * (|g| + sum_row(|g| * o))
    def softmax_of(x, op_impl, grad):
        x = _leaf(x, x.dtype)
        p = edge_softmax(csr, x, impl=op_impl)
        return p, torch.autograd.grad(p, x, grad)[0]

    p, gs = softmax_of(s, impl, up)
    p_ref, gs_ref = softmax_of(s.float(), "reference", up.float())
    assert_close(p, p_ref, dtype, f"{impl} edge_softmax")
    rows = csr.row_ids()
    row_dot = torch.zeros(csr.num_dst, heads).index_add_(0, rows, up.float().abs() * p_ref.detach())
    gs_mag = p_ref.detach() * (up.float().abs() + row_dot[rows])
    assert_close(gs, gs_ref, dtype, f"{impl} edge_softmax grad", gs_mag)
    if csr.num_edges:  # probabilities of each non-empty row sum to one (up to the output rounding)
        sums = torch.zeros(csr.num_dst, heads).index_add_(0, rows, p.detach().float())
        nonempty = csr.degrees() > 0
        atol = 1e-5 if dtype == torch.float32 else 2.0**-7
        torch.testing.assert_close(sums[nonempty], torch.ones_like(sums[nonempty]), atol=atol, rtol=0)


@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize(
    "gname", ["random", "empty_rows", "single", "single_empty", "duplicates", "powerlaw", "hubs"]
)
def test_attention_ops_match_reference(impl, dtype, heads, gname):
    check(gname, heads, dtype, impl)


@needs_triton_interp
@pytest.mark.parametrize(
    ("gname", "dtype"),
    [
        ("empty_rows", torch.float32),
        ("single_empty", torch.float32),
        ("duplicates", torch.float32),
        ("hubs", torch.float32),  # rows of in-degree 33..1100: the softmax loops run 3..69 steps
        ("hubs", torch.bfloat16),
    ],
    ids=["empty_rows", "single_empty", "duplicates", "hubs-f32", "hubs-bf16"],
)
def test_attention_ops_triton_interpreter(gname, dtype):
    check(gname, 3, dtype, "triton")


def test_edge_softmax_is_stable_for_large_scores():
    """Scores of 1e4 overflow exp() unless the row maximum is subtracted: compare with the exact values."""
    csr = graph("random")
    scores = torch.full((csr.num_edges, 2), 1e4)
    scores[::2] += 1.0
    # each row: k edges at 1e4 + 1 and m at 1e4 -> e / (k e + m) and 1 / (k e + m)
    high = torch.zeros(csr.num_edges, dtype=torch.bool)
    high[::2] = True
    rows = csr.row_ids()
    k = torch.zeros(csr.num_dst, dtype=torch.float64).index_add_(0, rows, high.double())
    m = csr.degrees().double() - k
    denom = (k * math.e + m)[rows]
    want = torch.where(high, math.e / denom, 1.0 / denom).float()[:, None].expand(-1, 2)
    for impl in ("reference", "cpu", "torch"):
        p = edge_softmax(csr, scores, impl=impl)
        torch.testing.assert_close(p, want, rtol=1e-6, atol=1e-7, msg=lambda msg, i=impl: f"{i}: {msg}")


def test_sddmm_values():
    from distgnn.kernels import CSR

    csr = CSR(torch.tensor([0, 2, 3]), torch.tensor([1, 2, 0]), 3)
    a = torch.tensor([[1.0], [10.0]])
    b = torch.tensor([[100.0], [200.0], [300.0]])
    for impl in ("reference", "cpu", "torch"):
        assert torch.equal(sddmm(csr, a, b, impl=impl), torch.tensor([[201.0], [301.0], [110.0]])), impl
