"""The ``torch`` implementation is its own code, not the reference under another name.

Every kernel test compares an implementation with ``reference``; if ``torch`` called the reference ops,
those comparisons would check the reference against itself. Here the reference ops are made to raise
and the ``torch`` implementation must still run every op, forward and backward.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import graph

from distgnn.kernels import edge_softmax, gspmm, reference, sddmm

REFERENCE_OPS = ("gspmm", "sddmm", "edge_softmax", "edge_softmax_backward", "edge_dot")


@pytest.fixture
def reference_ops_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("the torch implementation called a reference op")

    for name in REFERENCE_OPS:
        monkeypatch.setattr(reference, name, forbidden)


@pytest.mark.usefixtures("reference_ops_raise")
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_torch_gspmm_runs_without_the_reference(reduce: str) -> None:
    csr = graph("empty_rows")
    x = torch.randn(csr.num_src, 2, 3, requires_grad=True)
    w = torch.randn(csr.num_edges, 2, requires_grad=True)
    ds = (torch.rand(csr.num_dst) + 0.5).requires_grad_()
    out = gspmm(csr, x, edge_weight=w, dst_scale=ds, reduce=reduce, relu=True, impl="torch")
    out.square().sum().backward()
    assert out.shape == (csr.num_dst, 2, 3)
    assert x.grad is not None and w.grad is not None and ds.grad is not None
    assert (out[:10] == 0).all()  # rows 0..9 have no in-edges


@pytest.mark.usefixtures("reference_ops_raise")
def test_torch_attention_ops_run_without_the_reference() -> None:
    csr = graph("empty_rows")
    a = torch.randn(csr.num_dst, 3, requires_grad=True)
    b = torch.randn(csr.num_src, 3, requires_grad=True)
    p = edge_softmax(csr, sddmm(csr, a, b, impl="torch"), impl="torch")
    (p * torch.randn_like(p)).sum().backward()
    sums = torch.zeros(csr.num_dst, 3).index_add_(0, csr.row_ids(), p.detach())
    torch.testing.assert_close(sums[10:30], torch.ones(20, 3))
    assert a.grad is not None and b.grad is not None
