"""Sparse first-layer input under ``torch.autocast`` (``--precision bf16-mixed``): the product gives
autocast's dtype, as a dense one does, although torch has no bfloat16 CSR product on CPU, and the weight
gradient arrives in float32."""

from __future__ import annotations

import torch
from torch import nn

from distgnn.models.inputs import SparseRows, linear


def test_sparse_linear_under_autocast_matches_dense(one_thread):
    torch.manual_seed(0)
    x = torch.rand(30, 12) * (torch.rand(30, 12) < 0.3)
    lin = nn.Linear(12, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dense = lin(x)
        sparse = linear(SparseRows.from_dense(x), lin)
    assert sparse.dtype == dense.dtype == torch.bfloat16
    torch.testing.assert_close(sparse.float(), dense.float(), rtol=2e-2, atol=2e-2)  # bfloat16 rounding
    sparse.float().sum().backward()
    assert lin.weight.grad.dtype == torch.float32 and lin.bias.grad.dtype == torch.float32
    torch.testing.assert_close(lin.weight.grad, x.sum(0).expand(5, 12), rtol=1e-2, atol=1e-2)
