"""Fused graph aggregation kernels: gSpMM (sum/mean/max with fused scaling and epilogue), SDDMM, edge softmax,
and a counter-based dropout whose backward regenerates its mask.

Each op has a plain-torch ``reference`` (the oracle) and fast implementations (``cpu``: C++/OpenMP,
``triton``: GPU, ``torch``: torch's sparse CSR matmul), chosen by ``impl=`` or ``DISTGNN_KERNEL_IMPL``.

The ops are imported on first use (PEP 562), so ``python -m distgnn.kernels.cache`` (a launcher's check
for a prebuilt extension) runs without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distgnn.kernels.api import edge_softmax, gspmm, sddmm
    from distgnn.kernels.csr import CSR
    from distgnn.kernels.dropout_api import dropout
    from distgnn.kernels.select import IMPLS, resolve

_EXPORTS = {
    "edge_softmax": "api", "gspmm": "api", "sddmm": "api", "CSR": "csr", "dropout": "dropout_api",
    "IMPLS": "select", "resolve": "select",
}  # fmt: skip
__all__ = ["CSR", "IMPLS", "dropout", "edge_softmax", "gspmm", "resolve", "sddmm"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'distgnn.kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(f"distgnn.kernels.{_EXPORTS[name]}"), name)
