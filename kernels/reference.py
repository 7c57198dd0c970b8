"""The oracle: every op in plain torch (gather, index_add_, scatter_reduce), differentiable by autograd.

No custom kernels here, so gradients come from torch's own autograd and independently check the
hand-written backward formulas of the fast implementations. Shapes are the canonical ones the api
passes down: x [S, H, D], edge_weight [E, H] or None, scales [S] / [R], bias [H * D] or None.
Low-precision inputs are computed in float32 and cast back, as the kernels do; float64 stays float64
(so torch.autograd.gradcheck can check the oracle itself).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def acc_dtype(t: Tensor) -> torch.dtype:
    """The accumulation dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def row_ids(indptr: Tensor, num_edges: int) -> Tensor:
    """Destination row of each edge, in CSR order."""
    rows = torch.arange(indptr.numel() - 1, device=indptr.device)
    return torch.repeat_interleave(rows, indptr[1:] - indptr[:-1], output_size=num_edges)


def messages(indices: Tensor, x: Tensor, edge_weight: Tensor | None, src_scale: Tensor | None) -> Tensor:
    """edge_weight[e] * src_scale[j] * x[j] for every edge e = (j -> i), accumulation dtype: [E, H, D]."""
    dt = acc_dtype(x)
    xf = x.to(dt)
    if src_scale is not None:
        xf = xf * src_scale.to(dt)[:, None, None]
    msg = xf[indices]
    if edge_weight is not None:
        msg = msg * edge_weight.to(dt)[:, :, None]
    return msg


def gspmm(
    indptr: Tensor,
    indices: Tensor,
    x: Tensor,
    edge_weight: Tensor | None,
    src_scale: Tensor | None,
    dst_scale: Tensor | None,
    bias: Tensor | None,
    reduce: str,
    relu: bool,
) -> Tensor:
    """out[i] = epilogue(dst_scale[i] * REDUCE_e msg[e]); empty rows reduce to 0."""
    num_rows = indptr.numel() - 1
    _, h, d = x.shape
    msg = messages(indices, x, edge_weight, src_scale)
    dst = row_ids(indptr, indices.numel())
    dt = msg.dtype
    out = torch.zeros(num_rows, h, d, dtype=dt, device=x.device)
    if reduce == "max":
        idx = dst[:, None, None].expand_as(msg)
        out = out.scatter_reduce(0, idx, msg, reduce="amax", include_self=False)
    else:
        out = out.index_add(0, dst, msg)
        if reduce == "mean":
            deg = (indptr[1:] - indptr[:-1]).clamp(min=1).to(dt)
            out = out / deg[:, None, None]
    if dst_scale is not None:
        out = out * dst_scale.to(dt)[:, None, None]
    return epilogue(out, bias, relu).to(x.dtype)


def epilogue(out: Tensor, bias: Tensor | None, relu: bool) -> Tensor:
    """``out`` [R, H, D] plus ``bias`` [H * D] (per flattened column), then ReLU if asked."""
    r, h, d = out.shape
    if bias is not None:
        out = (out.reshape(r, h * d) + bias.to(out.dtype)).reshape(r, h, d)
    return torch.relu(out) if relu else out


def sddmm(indptr: Tensor, indices: Tensor, a_dst: Tensor, b_src: Tensor) -> Tensor:
    """Per-edge a_dst[i] + b_src[j]: [E, H]."""
    dst = row_ids(indptr, indices.numel())
    dt = acc_dtype(a_dst)
    return (a_dst.to(dt)[dst] + b_src.to(dt)[indices]).to(a_dst.dtype)


def edge_softmax(indptr: Tensor, scores: Tensor) -> Tensor:
    """Softmax of the scores [E, H] over the in-edges of each row (max-subtracted for stability)."""
    num_rows = indptr.numel() - 1
    e, h = scores.shape
    dst = row_ids(indptr, e)
    s = scores.to(acc_dtype(scores))
    idx = dst[:, None].expand(e, h)
    row_max = torch.full((num_rows, h), float("-inf"), dtype=s.dtype, device=s.device)
    row_max = row_max.scatter_reduce(0, idx, s.detach(), reduce="amax", include_self=True)
    ex = torch.exp(s - row_max[dst])
    denom = torch.zeros(num_rows, h, dtype=s.dtype, device=s.device).index_add(0, dst, ex)
    return (ex / denom[dst]).to(scores.dtype)


def edge_dot(indptr: Tensor, indices: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per-edge, per-head dot product sum_d a[i, h, d] * b[j, h, d]: [E, H] (edge-weight gradients)."""
    dst = row_ids(indptr, indices.numel())
    dt = acc_dtype(a)
    return (a.to(dt)[dst] * b.to(dt)[indices]).sum(-1).to(a.dtype)


def edge_softmax_backward(indptr: Tensor, out: Tensor, grad: Tensor) -> Tensor:
    """d softmax: out * (grad - sum_row(grad * out))."""
    num_rows = indptr.numel() - 1
    e, h = out.shape
    dst = row_ids(indptr, e)
    dt = acc_dtype(out)
    o, g = out.to(dt), grad.to(dt)
    row_dot = torch.zeros(num_rows, h, dtype=dt, device=o.device).index_add(0, dst, o * g)
    return (o * (g - row_dot[dst])).to(out.dtype)


# ------------------------------------------------------------------------------------------- dropout
_U32 = 0xFFFFFFFF
# Philox4x32-10 constants (Random123): round multipliers for counter words 0 and 2, key increments.
PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85


def dropout_counters(numel: int, device: torch.device, keys: Tensor | None = None, width: int = 1) -> Tensor:
    """Each element's RNG counter: its flat index, or ``keys[row] * width + col`` for rows of ``width``."""
    if keys is None:
        return torch.arange(numel, dtype=torch.int64, device=device)
    cols = torch.arange(width, dtype=torch.int64, device=device)
    return (keys.to(device=device, dtype=torch.int64)[:, None] * width + cols).reshape(-1)


def philox_draw(seed: int, counters: Tensor) -> Tensor:
    """Word 0 of Philox4x32-10 with key (seed lo, seed hi) and counter (c lo, c hi, 0, 0), as int64.

    The draw of csrc/philox.h and of Triton's ``tl.randint(seed, c)`` for int64 offsets ``c``. uint32
    arithmetic is emulated on int64: a product of two uint32 values wraps modulo 2^64 with the same bits
    as uint64, so ``(p >> 32) & 0xffffffff`` is its high word even when the int64 is negative.
    """
    k0, k1 = seed & _U32, (seed >> 32) & _U32
    c0, c1 = counters & _U32, (counters >> 32) & _U32
    c2 = c3 = torch.zeros_like(c0)
    for _ in range(10):
        p0, p1 = c0 * PHILOX_M0, c2 * PHILOX_M1
        c0, c1, c2, c3 = ((p1 >> 32) & _U32) ^ c1 ^ k0, p1 & _U32, ((p0 >> 32) & _U32) ^ c3 ^ k1, p0 & _U32
        k0, k1 = (k0 + PHILOX_W0) & _U32, (k1 + PHILOX_W1) & _U32
    return c0


def dropout_keep(
    seed: int, threshold: int, shape: tuple[int, ...], device: torch.device, keys: Tensor | None = None
) -> Tensor:
    """The dropout keep mask: ``philox_draw(seed, c) >= threshold`` for each element's counter ``c``.

    The counter is the flat index, or with ``keys`` (one per row of a 1-D or 2-D shape)
    ``keys[row] * width + col`` (csrc/dropout.cpp).
    """
    width = shape[1] if len(shape) == 2 else 1
    counters = dropout_counters(math.prod(shape), device, keys, width)
    return (philox_draw(seed, counters) >= threshold).reshape(shape)


def dropout(
    x: Tensor,
    seed: int,
    threshold: int,
    scale: float,
    relu: bool = False,
    bias: Tensor | None = None,
    keys: Tensor | None = None,
) -> Tensor:
    """``v * scale`` where the mask keeps (and, if ``relu``, v > 0), 0 elsewhere; differentiable.

    ``v = x + bias`` (bias along the last dimension, added in float32 and rounded once, as the kernel
    does) or ``x``. ``keys``: per-row counters (see :func:`dropout_keep`).
    """
    keep = dropout_keep(seed, threshold, tuple(x.shape), x.device, keys)
    v = x if bias is None else x.float() + bias.float()
    if relu:
        keep = keep & (v > 0)
    return torch.where(keep, v * scale, torch.zeros((), dtype=v.dtype, device=x.device)).to(x.dtype)


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    """``grad * scale`` where ``out > 0``, else 0: the gradient of relu + dropout given its output."""
    return torch.where(out > 0, grad * scale, torch.zeros((), dtype=grad.dtype, device=grad.device))
