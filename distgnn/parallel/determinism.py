"""``--deterministic``: bit-reproducible runs on CPU and CUDA, with what that needs set up front.

On CUDA, ``torch.use_deterministic_algorithms(True)`` alone raises at the first cuBLAS matmul unless
``CUBLAS_WORKSPACE_CONFIG`` is set; this sets it (``:4096:8``, unless the user chose a value) before any
matmul runs. In deterministic mode torch's ``index_add_`` on CUDA (the scatter-adds of the halo gradient
and of the sddmm / gspmm-max backward) takes its deterministic (sorted) path, the Triton kernels use no
atomics (one program per row or per edge block, each output written once), and the Triton autotuner is
off (a fixed launch configuration: a tile size changes float summation order). What it cannot
guarantee: NCCL reductions (the gradient all-reduce) are reproducible only for the same ranks, GPU
models and NCCL version and algorithm (``NCCL_ALGO``), and results differ between GPU models.
"""

from __future__ import annotations

import os

import torch

CUBLAS_WORKSPACE_CONFIG = ":4096:8"  # what torch's reproducibility notes ask for (":16:8" also works)


def set_deterministic(on: bool, device: torch.device | str) -> None:
    """Turn deterministic algorithms on or off for a run on ``device``."""
    if on and torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.use_deterministic_algorithms(on)
