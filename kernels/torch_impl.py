"""The ``torch`` implementation: torch's own sparse and segment ops, no custom kernels.

A fallback for devices without a custom kernel (e.g. CUDA without triton). Scaling and the epilogue are
separate passes here, not fused. Each op uses a torch built-in that the ``reference`` oracle does not,
so comparing the two checks something: sum/mean aggregation is ``torch.sparse.mm`` on a CSR tensor,
max aggregation and the edge-softmax row reductions are ``torch.segment_reduce`` over the CSR row
offsets, sddmm and the edge dot product are ``torch.sparse.sampled_addmm`` (an SDDMM on the CSR
pattern). Only dropout still runs the reference hash (in torch integer ops).
"""

from __future__ import annotations

import torch
from torch import Tensor

from distgnn.kernels import reference


def _compute_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _adjacency(indptr: Tensor, indices: Tensor, values: Tensor, num_src: int) -> Tensor:
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


def dropout(
    x: Tensor, seed: int, threshold: int, scale: float, relu: bool, bias: Tensor | None, keys: Tensor | None
) -> Tensor:
    """The reference hash in torch integer ops: same mask as ``cpu``, runs on any device."""
    return reference.dropout(x.contiguous(), seed, threshold, scale, relu, bias, keys)


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    return reference.positive_scale(out, grad, scale)
