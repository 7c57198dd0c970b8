"""Compute precision (``--precision``): what a strategy runs its model's forward in.

``fp32``: everything in float32. ``bf16-mixed``: the forward runs under ``torch.autocast`` with bfloat16
(linear maps and matrix products in bfloat16, float32 accumulation inside them), and the propagations
hand the aggregation kernels, the halo exchange and the stage-to-stage messages bfloat16 rows
(:func:`rows`): half the bytes of every gather and every message. Parameters and the optimiser state stay
float32 (master weights; their gradients arrive in float32), and so do the kernels' accumulation, GAT's
attention scores and edge softmax, and the loss (:meth:`~distgnn.parallel.strategy.Strategy.loss` reads
the logits as float32).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from distgnn.config import PRECISIONS
from distgnn.errors import DistGNNError

COMPUTE_DTYPES = {"fp32": torch.float32, "bf16-mixed": torch.bfloat16}  # one per config.PRECISIONS


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype activations and aggregated rows have under ``precision``."""
    if precision not in COMPUTE_DTYPES:
        raise DistGNNError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return COMPUTE_DTYPES[precision]


@contextlib.contextmanager
def autocast(dtype: torch.dtype, device: torch.device) -> Iterator[None]:
    """The model forward's context: autocast to ``dtype`` on ``device``'s type (nothing for float32)."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def rows(h: Tensor, dtype: torch.dtype) -> Tensor:
    """``h`` as the rows a propagation aggregates and sends: cast down to ``dtype`` when that is a
    16-bit compute dtype (an fp32 input, e.g. the raw features a layer aggregates before its linear map),
    else unchanged."""
    if dtype == torch.float32 or h.dtype == dtype or not h.is_floating_point():
        return h
    return h.to(dtype)
