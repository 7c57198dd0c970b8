"""The aggregation ops under ``torch.autocast`` (``--precision bf16-mixed`` runs the forward in it): they
keep their own precision (bfloat16 rows in, float32 accumulation, the input's dtype out), so autocast
changes nothing they compute, and the ``torch`` implementation, whose CSR product torch has no CPU
bfloat16 kernel for, still runs."""

from __future__ import annotations

import pytest
import torch

from distgnn.kernels import CSR, edge_softmax, gspmm, sddmm

IMPLS = ["reference", "torch", "cpu"]


def _graph() -> CSR:
    torch.manual_seed(0)
    n, e = 12, 40
    dst = torch.sort(torch.randint(0, n, (e,))).values
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
    return CSR(indptr, torch.randint(0, n, (e,)), n)


@pytest.mark.parametrize("impl", IMPLS)
def test_ops_compute_the_same_under_autocast(impl, one_thread):
    csr = _graph()
    x = torch.randn(12, 2, 4).to(torch.bfloat16)
    a_dst, b_src = torch.randn(12, 2), torch.randn(12, 2).to(torch.bfloat16)
    scale = torch.rand(12)

    def run() -> list[torch.Tensor]:
        scores = sddmm(csr, a_dst, b_src, impl=impl)
        alpha = edge_softmax(csr, scores, impl=impl)
        return [
            gspmm(csr, x.reshape(12, 8), dst_scale=scale, impl=impl),
            gspmm(csr, x, edge_weight=alpha, impl=impl),
            scores,
            alpha,
        ]

    plain = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = run()
    for p, c in zip(plain, cast, strict=True):
        assert c.dtype == p.dtype and torch.equal(c, p)
    assert [t.dtype for t in plain] == [torch.bfloat16, torch.bfloat16, torch.float32, torch.float32]
