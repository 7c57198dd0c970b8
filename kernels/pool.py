"""Large CPU buffers that are reused across epochs instead of being faulted in again.

glibc serves allocations above 32 MiB with their own mappings and unmaps them when freed, so every epoch
of a large graph faults in and zeroes its GB-sized activations again (about 30% of a 2M-node epoch was
system time). The C++ extension keeps a pool of such buffers (``csrc/output.h``): a pooled tensor is an
ordinary tensor whose memory goes back to the pool, not to the system, once nothing references it, so
using one is always safe. Its kernels allocate their outputs there; :func:`empty`, :func:`mm`,
:func:`add_bias` and :func:`select_rows` give the same to the rest of the training step (exchange
buffers, products, the last layer's bias, the loss's gradient). A request takes the smallest idle buffer that
wastes at most a quarter of it. :func:`trim`, once per epoch, frees what the epoch did not reuse and
raises the idle limit (1 GiB at first) to the epoch's live peak plus what it had to give back, so that
the next epoch keeps it: steady epochs then allocate nothing large. The limit never grows past what the
pool holds plus this process's share of the available memory: where memory is short, buffers are
faulted in again instead.

Where the extension is not loaded (another kernel implementation, or a GPU), these fall back to
``torch.empty`` and do nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType

import torch
from torch import Tensor


def _extension() -> ModuleType | None:
    """The C++ extension if this process loaded it (never imports kernels/cpu.py, which loads Dynamo)."""
    cpu = sys.modules.get("distgnn.kernels.cpu")
    return cpu.load_extension() if cpu is not None and cpu.loaded() else None


def empty(shape: Sequence[int], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device (large CPU ones pooled)."""
    shape = tuple(int(s) for s in shape)
    ext = _extension() if like.device.type == "cpu" else None
    if ext is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return ext.pooled_empty(list(shape), like)


def mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for a [rows, k] ``a`` (no autograd), written into a pooled buffer: a product of every row
    is as large as an activation. Plainly ``a @ b`` off the CPU, and under autocast unless both are
    already in autocast's dtype (then autocast would compute the same product in the same dtype)."""
    if a.dim() != 2 or b.dim() != 2 or a.device.type != "cpu" or a.dtype != b.dtype:
        return a @ b
    if torch.is_autocast_enabled("cpu") and a.dtype != torch.get_autocast_dtype("cpu"):
        return a @ b
    return torch.mm(a, b, out=empty((a.shape[0], b.shape[1]), a))


def add_bias(x: Tensor, bias: Tensor) -> Tensor:
    """``x + bias`` (bias along the last dimension) into a pooled buffer, with autograd: a model's last
    layer adds its bias to a row of every node."""
    if not _pooled(x, bias):
        return x + bias
    return _AddBias.apply(x, bias)


def select_rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x.index_select(0, idx)`` with autograd, whose backward scatters into a pooled zeroed buffer
    (autograd's own allocates a fresh one the size of ``x``: the loss's gradient over every row)."""
    if not _pooled(x, x):
        return x.index_select(0, idx)
    return _SelectRows.apply(x, idx)


def _pooled(x: Tensor, other: Tensor) -> bool:
    """Whether a pooled path computes what torch would: CPU, one dtype, no autocast to change it."""
    return (
        x.device.type == "cpu"
        and x.dtype == other.dtype
        and not torch.is_autocast_enabled("cpu")
        and _extension() is not None
    )


class _AddBias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor) -> Tensor:  # type: ignore[override]
        return torch.add(x, bias, out=empty(x.shape, x))

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        g_bias = grad.sum(dim=tuple(range(grad.dim() - 1))) if ctx.needs_input_grad[1] else None
        return grad, g_bias


class _SelectRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, idx: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return x.index_select(0, idx)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (idx,) = ctx.saved_tensors
        return empty(ctx.shape, grad).zero_().index_add_(0, idx, grad), None


def spare_memory() -> int:
    """This process's share of the memory the machine has to spare: half of MemAvailable, split between
    the job's processes on this machine (``LOCAL_WORLD_SIZE``, set by every launcher)."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            available = next(
                (int(line.split()[1]) << 10 for line in f if line.startswith("MemAvailable:")), None
            )
    except OSError:
        pass
    if available is None:  # not Linux: free physical pages
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return available // (2 * max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def trim() -> int:
    """Once per epoch: free idle buffers the epoch did not take again, and let the pool keep what the
    epoch gave back, within :func:`spare_memory`; the bytes freed (0 without the pool)."""
    ext = _extension()
    return 0 if ext is None else int(ext.pool_trim(spare_memory()))


STATS = ("idle", "live", "live_peak", "limit", "fresh", "released")


def stats() -> dict[str, int]:
    """Bytes: idle in the pool, live (handed out), the live peak since the last trim, the idle limit, and
    since the last trim newly allocated (not found idle) and given back to the system (over the limit)."""
    ext = _extension()
    return dict(zip(STATS, ext.pool_stats() if ext is not None else [0] * len(STATS), strict=True))
