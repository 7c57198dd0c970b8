"""Public aggregation ops: argument checks with one-line errors, shape canonicalisation, dispatch.

Every op accepts ``impl="auto" | "reference" | "cpu" | "triton" | "torch"``. ``reference`` runs the plain
torch oracle under torch autograd; the others run through the ``distgnn::*`` custom ops under
torch.compile, and eagerly through the same formulas without the op dispatch (see ops.py).

The ops fix their own precision: float32 or bfloat16 inputs, float32 accumulation, outputs in the input's
dtype. ``torch.autocast`` does not reach into them (it would recast the products of the ``torch``
implementation to bfloat16, for which torch has no CPU CSR kernel); callers cast their inputs.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal

import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.kernels import ops, reference
from distgnn.kernels.csr import CSR
from distgnn.kernels.select import resolve

Reduce = Literal["sum", "mean", "max"]
Impl = Literal["auto", "reference", "cpu", "triton", "torch"]
_KERNEL_DTYPES = (torch.float32, torch.bfloat16)
_EMPTY = torch.empty(0, dtype=torch.int64)


def _check_tensor(name: str, t: Tensor, device: torch.device) -> None:
    if not isinstance(t, Tensor):
        raise DistGNNError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device != device:
        raise DistGNNError(f"{name} is on {t.device} but the CSR is on {device}")
    if not t.is_floating_point():
        raise DistGNNError(f"{name} must be a floating-point tensor, got {t.dtype}")


def _check_dtype(impl: str, name: str, t: Tensor) -> None:
    if impl != "reference" and t.dtype not in _KERNEL_DTYPES:
        raise DistGNNError(f"impl={impl!r} supports float32 and bfloat16 {name}, got {t.dtype}")


def _check_vector(name: str, t: Tensor | None, length: int, what: str, device: torch.device) -> None:
    if t is None:
        return
    _check_tensor(name, t, device)
    if tuple(t.shape) != (length,):
        raise DistGNNError(f"{name} must have shape [{length}] (one per {what}), got {tuple(t.shape)}")


def _own_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off while an op runs (see the module docstring); nothing to do when it is off already."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def gspmm(
    csr: CSR,
    x: Tensor,
    *,
    edge_weight: Tensor | None = None,
    reduce: Reduce = "sum",
    src_scale: Tensor | None = None,
    dst_scale: Tensor | None = None,
    bias: Tensor | None = None,
    relu: bool = False,
    impl: Impl = "auto",
) -> Tensor:
    """out[i] = epilogue(dst_scale[i] * REDUCE_{e=(j->i)} edge_weight[e] * src_scale[j] * x[j]).

    x is [num_src, F] or [num_src, H, D]; edge_weight is [E] or, with 3-D x, [E, H] (per-head weights).
    ``reduce``: "sum", "mean" (over the row's in-degree) or "max"; empty rows reduce to 0. The epilogue
    adds ``bias`` (shaped like one output row) and applies ReLU if ``relu``. Returns [num_dst, *x.shape[1:]].
    """
    if not isinstance(csr, CSR):
        raise DistGNNError(f"gspmm expects a distgnn.kernels.CSR, got {type(csr).__name__}")
    if reduce not in ("sum", "mean", "max"):
        raise DistGNNError(f"gspmm reduce must be 'sum', 'mean' or 'max', got {reduce!r}")
    dev = csr.device
    _check_tensor("x", x, dev)
    if x.dim() not in (2, 3):
        raise DistGNNError(f"x must be [num_src, F] or [num_src, H, D], got shape {tuple(x.shape)}")
    if x.shape[0] != csr.num_src:
        raise DistGNNError(f"x has {x.shape[0]} rows but the CSR has num_src={csr.num_src}")
    row_shape = tuple(x.shape[1:])
    s, f = csr.num_src, math.prod(row_shape)
    e = csr.num_edges
    _check_vector("src_scale", src_scale, s, "source node", dev)
    _check_vector("dst_scale", dst_scale, csr.num_dst, "destination row", dev)
    per_head = False
    if edge_weight is not None:
        _check_tensor("edge_weight", edge_weight, dev)
        per_head = edge_weight.dim() == 2
        ok = tuple(edge_weight.shape) == (e,) or (
            x.dim() == 3 and tuple(edge_weight.shape) == (e, x.shape[1])
        )
        if not ok:
            want = f"[{e}]" + (f" or [{e}, {x.shape[1]}]" if x.dim() == 3 else "")
            raise DistGNNError(f"edge_weight must have shape {want}, got {tuple(edge_weight.shape)}")
    if bias is not None:
        _check_tensor("bias", bias, dev)
        if tuple(bias.shape) not in (row_shape, (f,)):
            raise DistGNNError(
                f"bias must have shape {list(row_shape)} (one output row), got {tuple(bias.shape)}"
            )

    impl = resolve(impl, dev)
    _check_dtype(impl, "x", x)
    # Canonical shapes: x [S, H, D] with H > 1 only for per-head weights; w [E, H]; bias [H * D].
    x3 = x.reshape(s, x.shape[1], x.shape[2]) if per_head else x.reshape(s, 1, f)
    w2 = None if edge_weight is None else edge_weight.reshape(e, edge_weight.shape[1] if per_head else 1)
    b1 = None if bias is None else bias.reshape(f)
    with _own_precision(dev):
        if impl == "reference":
            out = reference.gspmm(csr.indptr, csr.indices, x3, w2, src_scale, dst_scale, b1, reduce, relu)
        elif reduce == "max":
            out, _ = ops.gspmm_max(csr.indptr, csr.indices, x3, w2, src_scale, dst_scale, b1, relu, impl)
        else:
            if _needs_grad(x, edge_weight, src_scale):
                t = csr.transposed()
                t_indptr, t_indices, t_perm = t.indptr, t.indices, t.perm
            else:
                t_indptr = t_indices = t_perm = _EMPTY.to(dev)
            out = ops.gspmm(
                csr.indptr,
                csr.indices,
                x3.contiguous(),
                w2,
                src_scale,
                dst_scale,
                b1,
                t_indptr,
                t_indices,
                t_perm,
                reduce == "mean",
                relu,
                impl,
            )
    return out.reshape((csr.num_dst,) + row_shape)


def sddmm(csr: CSR, a_dst: Tensor, b_src: Tensor, *, impl: Impl = "auto") -> Tensor:
    """Per-edge scores e = a_dst[i] + b_src[j] for every edge j -> i: [E, H] (GAT attention logits)."""
    if not isinstance(csr, CSR):
        raise DistGNNError(f"sddmm expects a distgnn.kernels.CSR, got {type(csr).__name__}")
    dev = csr.device
    _check_tensor("a_dst", a_dst, dev)
    _check_tensor("b_src", b_src, dev)
    if a_dst.dim() != 2 or a_dst.shape[0] != csr.num_dst:
        raise DistGNNError(f"a_dst must have shape [{csr.num_dst}, H], got {tuple(a_dst.shape)}")
    if b_src.dim() != 2 or b_src.shape[0] != csr.num_src or b_src.shape[1] != a_dst.shape[1]:
        raise DistGNNError(
            f"b_src must have shape [{csr.num_src}, {a_dst.shape[1]}], got {tuple(b_src.shape)}"
        )
    impl = resolve(impl, dev)
    _check_dtype(impl, "a_dst", a_dst)
    with _own_precision(dev):
        if impl == "reference":
            return reference.sddmm(csr.indptr, csr.indices, a_dst, b_src)
        return ops.sddmm(csr.indptr, csr.indices, a_dst.contiguous(), b_src.contiguous(), impl)


def edge_softmax(csr: CSR, scores: Tensor, *, impl: Impl = "auto") -> Tensor:
    """Softmax of ``scores`` [E, H] over the in-edges of each destination row (numerically stable)."""
    if not isinstance(csr, CSR):
        raise DistGNNError(f"edge_softmax expects a distgnn.kernels.CSR, got {type(csr).__name__}")
    _check_tensor("scores", scores, csr.device)
    if scores.dim() != 2 or scores.shape[0] != csr.num_edges:
        raise DistGNNError(f"scores must have shape [{csr.num_edges}, H], got {tuple(scores.shape)}")
    impl = resolve(impl, csr.device)
    _check_dtype(impl, "scores", scores)
    with _own_precision(csr.device):
        if impl == "reference":
            return reference.edge_softmax(csr.indptr, scores)
        return ops.edge_softmax(csr.indptr, scores.contiguous(), impl)
