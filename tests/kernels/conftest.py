"""Kernel tests: run Triton in its CPU interpreter when there is no GPU.

TRITON_INTERPRET must be set before a kernel module is imported (triton.jit reads it at decoration time),
so it is set here, at collection, before any test imports distgnn.kernels.triton_impl.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
