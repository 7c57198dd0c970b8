"""The analytic halo volume: what one epoch of halo exchanges must put on the wire.

Per exchanged tensor of width W (elements per row), the forward pass moves every halo row of every rank
once: ``sum_p n_halo(p) * W * sizeof(wire dtype)`` bytes in total. The backward pass moves the same
amount again when the tensor requires grad (halo gradients go back to their owners). The measured
counters of a training epoch must equal this number exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def wire_size(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype`` on the wire."""
    return torch.empty((), dtype=dtype).element_size()


def analytic_bytes(
    halo_sizes: Sequence[int],
    widths: Sequence[int],
    *,
    wire_dtype: torch.dtype = torch.float32,
    backward: bool | Sequence[bool] = True,
) -> int:
    """Total bytes sent by all ranks in one epoch (forward + backward where it applies).

    ``halo_sizes``: halo rows of each part; ``widths``: row width of each exchanged tensor (e.g. per
    layer); ``backward``: whether each tensor's gradient is exchanged too (one flag or one per width).
    """
    flags = [backward] * len(widths) if isinstance(backward, bool) else list(backward)
    if len(flags) != len(widths):
        raise ValueError(f"got {len(widths)} widths but {len(flags)} backward flags")
    rows = int(sum(int(s) for s in halo_sizes))
    size = wire_size(wire_dtype)
    return sum(rows * int(w) * size * (2 if b else 1) for w, b in zip(widths, flags, strict=True))
