"""The ``torch`` implementation: torch's own sparse and segment ops, no custom kernels.

A fallback for devices without a custom kernel (e.g. CUDA without triton). Scaling and the epilogue are
separate passes here, not fused. Each op uses a torch built-in that the ``reference`` oracle does not,
so comparing the two checks something: sum/mean aggregation is ``torch.sparse.mm`` on a CSR tensor,
max aggregation and the edge-softmax row reductions are ``torch.segment_reduce`` over the CSR row
offsets, sddmm and the edge dot product are ``torch.sparse.sampled_addmm`` (an SDDMM on the CSR
pattern). Dropout draws the same Philox4x32-10 mask as every implementation (kernels/csrc/philox.h) but
computes each 32 x 32 -> 64-bit product from 16-bit limbs of the counter word, so no intermediate reaches
2^49: exact on any backend, where the reference relies on int64 products wrapping around modulo 2^64. It
builds the counters per row from ``keys``, takes the round keys in closed form and applies the mask with
``masked_fill``, where the reference uses ``torch.where``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from distgnn.kernels import reference


def _compute_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _adjacency(indptr: Tensor, indices: Tensor, values: Tensor, num_src: int) -> Tensor:
    # torch warns once per process that CSR tensors are "in beta": it is the CSR path this implementation
    # exists to use (and test against the reference), so a --kernel torch run stays quiet.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Sparse CSR tensor support is in beta", category=UserWarning
        )
        return torch.sparse_csr_tensor(
            indptr, indices, values, size=(indptr.numel() - 1, num_src), check_invariants=False
        )


def spmm(indptr, indices, x, w, ss, ds, bias, mean: bool, relu: bool) -> Tensor:
    num_rows, (s, h, d) = indptr.numel() - 1, x.shape
    dt = _compute_dtype(x)
    xs = x.to(dt)
    if ss is not None:
        xs = xs * ss.to(dt)[:, None, None]
    ones = torch.ones(indices.numel(), dtype=dt, device=x.device)
    if w is None or w.shape[1] == 1:
        vals = ones if w is None else w.reshape(-1).to(dt)
        out = torch.sparse.mm(_adjacency(indptr, indices, vals, s), xs.reshape(s, h * d)).reshape(
            num_rows, h, d
        )
    else:  # per-head weights: one sparse matmul per head
        heads = [
            torch.sparse.mm(_adjacency(indptr, indices, w[:, k].to(dt).contiguous(), s), xs[:, k])
            for k in range(h)
        ]
        out = torch.stack(heads, 1)
    scale = None if ds is None else ds.to(dt)
    if mean:
        inv = 1.0 / (indptr[1:] - indptr[:-1]).clamp(min=1).to(dt)
        scale = inv if scale is None else scale * inv
    if scale is not None:
        out = out * scale[:, None, None]
    return reference.epilogue(out, bias, relu).to(x.dtype)


def _segments(indptr: Tensor, values: Tensor, reduce: str) -> Tensor:
    """``reduce`` ("max" or "sum") of ``values`` [E, ...] over each CSR row: [R, ...]; empty rows give 0."""
    out = torch.segment_reduce(values, reduce, offsets=indptr, axis=0, unsafe=True)
    if reduce == "max":  # an empty segment's max is -inf
        empty = (indptr[1:] == indptr[:-1]).reshape(-1, *([1] * (values.dim() - 1)))
        out = out.masked_fill(empty, 0.0)
    return out


def spmm_max(indptr, indices, x, w, ss, ds, bias, relu: bool) -> tuple[Tensor, Tensor]:
    """Max aggregation with segment_reduce; argmax = the first edge reaching the row maximum (-1: empty)."""
    num_rows, num_edges = indptr.numel() - 1, indices.numel()
    shape = (num_rows,) + tuple(x.shape[1:])
    dt = _compute_dtype(x)
    msg = reference.messages(indices, x, w, ss)
    if num_edges == 0:
        agg = torch.zeros(shape, dtype=dt, device=x.device)
        arg = torch.full(shape, -1, dtype=torch.int64, device=x.device)
    else:
        agg = _segments(indptr, msg, "max")
        dst = reference.row_ids(indptr, num_edges)
        eid = torch.arange(num_edges, device=x.device)[:, None, None].expand_as(msg)
        cand = torch.where(msg == agg[dst], eid, num_edges)
        arg = torch.full(shape, num_edges, dtype=torch.int64, device=x.device)
        arg = arg.scatter_reduce(0, dst[:, None, None].expand_as(msg), cand, reduce="amin", include_self=True)
        arg = torch.where(arg == num_edges, -1, arg)
    if ds is not None:
        agg = agg * ds.to(dt)[:, None, None]
    return reference.epilogue(agg, bias, relu).to(x.dtype), arg


def _sampled(indptr: Tensor, indices: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per-edge ``a[i] . b[j]`` for a [R, K], b [S, K] on the CSR pattern (``torch.sparse.sampled_addmm``).

    sampled_addmm rejects a row with more entries than columns (possible with duplicate edges), so ``b``
    is padded with zero rows up to the largest in-degree; no edge points at the padding.
    """
    if indices.numel() == 0:
        return a.new_zeros(0)
    cols = max(b.shape[0], int((indptr[1:] - indptr[:-1]).max()))
    if cols > b.shape[0]:
        b = torch.cat([b, b.new_zeros(cols - b.shape[0], b.shape[1])])
    pattern = _adjacency(indptr, indices, a.new_zeros(indices.numel()), cols)
    return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0).values()


def edge_dot(indptr, indices, a, b) -> Tensor:
    dt = _compute_dtype(a)
    heads = [_sampled(indptr, indices, a[:, k].to(dt), b[:, k].to(dt)) for k in range(a.shape[1])]
    return torch.stack(heads, 1).reshape(indices.numel(), a.shape[1]).to(a.dtype)


def sddmm(indptr, indices, a, b) -> Tensor:
    """a[i] + b[j] as the product [a_i, 1] . [1, b_j]."""
    dt = _compute_dtype(a)
    ones_a = torch.ones(a.shape[0], dtype=dt, device=a.device)
    ones_b = torch.ones(b.shape[0], dtype=dt, device=b.device)
    heads = [
        _sampled(
            indptr,
            indices,
            torch.stack([a[:, k].to(dt), ones_a], 1),
            torch.stack([ones_b, b[:, k].to(dt)], 1),
        )
        for k in range(a.shape[1])
    ]
    return torch.stack(heads, 1).reshape(indices.numel(), a.shape[1]).to(a.dtype)


def edge_softmax(indptr, scores) -> Tensor:
    if scores.shape[0] == 0:
        return scores.clone()
    s = scores.to(_compute_dtype(scores))
    dst = reference.row_ids(indptr, s.shape[0])
    ex = torch.exp(s - _segments(indptr, s, "max")[dst])
    return (ex / _segments(indptr, ex, "sum")[dst]).to(scores.dtype)


def edge_softmax_backward(indptr, out, grad) -> Tensor:
    if out.shape[0] == 0:
        return grad.clone()
    dt = _compute_dtype(out)
    o, g = out.to(dt), grad.to(dt)
    row_dot = _segments(indptr, o * g, "sum")[reference.row_ids(indptr, o.shape[0])]
    return (o * (g - row_dot)).to(out.dtype)


_U32 = 0xFFFFFFFF
# Philox4x32-10 (csrc/philox.h): multipliers of counter words 0 and 2, key schedule increments.
_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85


def _mulhilo(m: int, c: Tensor) -> tuple[Tensor, Tensor]:
    """High and low 32-bit words of ``m * c`` (uint32 constant ``m``, uint32 values ``c`` in int64).

    ``c = ch * 2^16 + cl``: both partial products are below 2^48, so nothing overflows int64 (nor relies
    on wrap-around, which not every backend guarantees for int64 products).
    """
    lo = m * (c & 0xFFFF)
    hi = m * (c >> 16)
    lo = lo + ((hi & 0xFFFF) << 16)  # m * c = (hi >> 16) * 2^32 + lo, lo < 2^49
    return (hi >> 16) + (lo >> 32), lo & _U32


def philox_draw(seed: int, counters: Tensor) -> Tensor:
    """Word 0 of Philox4x32-10, key (seed lo, seed hi), counter (c lo, c hi, 0, 0): int64 in [0, 2^32)."""
    c0, c1 = counters & _U32, (counters >> 32) & _U32
    c2 = c3 = torch.zeros_like(c0)
    for r in range(10):
        k0 = ((seed & _U32) + r * _W0) & _U32  # round r's key, in closed form
        k1 = ((seed >> 32) + r * _W1) & _U32
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0


def _counters(x: Tensor, keys: Tensor | None) -> Tensor:
    """Each element's counter, shaped like ``x``: its flat index, or ``keys[row] * width + col``."""
    if keys is None:
        return torch.arange(x.numel(), dtype=torch.int64, device=x.device).reshape(x.shape)
    keys = keys.to(device=x.device, dtype=torch.int64)
    if x.dim() == 1:  # one element per row: width 1
        return keys
    return keys[:, None] * x.shape[1] + torch.arange(x.shape[1], dtype=torch.int64, device=x.device)


def dropout(
    x: Tensor, seed: int, threshold: int, scale: float, relu: bool, bias: Tensor | None, keys: Tensor | None
) -> Tensor:
    """``v * scale`` where Philox keeps (and, with ``relu``, v > 0), else 0; v = x [+ bias in float32]."""
    x = x.contiguous()
    drop = philox_draw(seed, _counters(x, keys)) < threshold
    v = x if bias is None else x.to(torch.float32).add(bias.to(torch.float32))  # rounded once, below
    if relu:
        drop |= ~(v > 0)  # NaN is dropped too
    return v.mul(scale).masked_fill_(drop, 0.0).to(x.dtype)


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    """``grad * scale`` where ``out > 0``, else +0.0 (inf and NaN grads included: masked, not multiplied)."""
    return grad.mul(scale).masked_fill_(~(out > 0), 0.0)
