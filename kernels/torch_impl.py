"""The ``torch`` implementation: torch's own sparse CSR matmul (``torch.sparse.mm``), plus plain torch ops.

A fallback for devices without a custom kernel (e.g. CUDA without triton). Scaling and the epilogue are
separate passes here, not fused. The edge-wise ops (sddmm, edge softmax, edge dot) have no torch
built-in, so this implementation computes them with the same gather/scatter code as ``reference``.
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


def spmm_max(indptr, indices, x, w, ss, ds, bias, relu: bool) -> tuple[Tensor, Tensor]:
    """Max aggregation with scatter_reduce; argmax = the first edge reaching the row maximum (-1: empty)."""
    num_rows, num_edges = indptr.numel() - 1, indices.numel()
    msg = reference.messages(indices, x, w, ss)
    dst = reference.row_ids(indptr, num_edges)
    idx = dst[:, None, None].expand_as(msg)
    shape = (num_rows,) + tuple(x.shape[1:])
    agg = torch.zeros(shape, device=x.device).scatter_reduce(0, idx, msg, reduce="amax", include_self=False)
    eid = torch.arange(num_edges, device=x.device)[:, None, None].expand_as(msg)
    cand = torch.where(msg == agg[dst], eid, num_edges)
    arg = torch.full(shape, num_edges, dtype=torch.int64, device=x.device)
    arg = arg.scatter_reduce(0, idx, cand, reduce="amin", include_self=True)
    arg = torch.where(arg == num_edges, -1, arg)
    out = reference.gspmm(indptr, indices, x, w, ss, ds, bias, "max", relu)
    return out, arg


def edge_dot(indptr, indices, a, b) -> Tensor:
    return reference.edge_dot(indptr, indices, a, b)


def sddmm(indptr, indices, a, b) -> Tensor:
    return reference.sddmm(indptr, indices, a, b)


def edge_softmax(indptr, scores) -> Tensor:
    return reference.edge_softmax(indptr, scores)


def edge_softmax_backward(indptr, out, grad) -> Tensor:
    return reference.edge_softmax_backward(indptr, out, grad)


def dropout(
    x: Tensor, seed: int, threshold: int, scale: float, relu: bool, bias: Tensor | None, keys: Tensor | None
) -> Tensor:
    """The reference hash in torch integer ops: same mask as ``cpu``, runs on any device."""
    return reference.dropout(x.contiguous(), seed, threshold, scale, relu, bias, keys)


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    return reference.positive_scale(out, grad, scale)
