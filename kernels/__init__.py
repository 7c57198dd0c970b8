"""Fused graph aggregation kernels: gSpMM (sum/mean/max with fused scaling and epilogue), SDDMM, edge softmax,
and a counter-based dropout whose backward regenerates its mask.

Each op has a plain-torch ``reference`` (the oracle) and fast implementations (``cpu``: C++/OpenMP,
``triton``: GPU, ``torch``: torch's sparse CSR matmul), chosen by ``impl=`` or ``DISTGNN_KERNEL_IMPL``.
"""

from distgnn.kernels.api import edge_softmax, gspmm, sddmm
from distgnn.kernels.csr import CSR
from distgnn.kernels.dropout_api import dropout
from distgnn.kernels.select import IMPLS, resolve

__all__ = ["CSR", "IMPLS", "dropout", "edge_softmax", "gspmm", "resolve", "sddmm"]
