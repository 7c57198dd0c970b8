"""Triton dropout (CUDA tensors; CPU tensors under TRITON_INTERPRET=1), bit-identical to the CPU kernel.

The keep draw is ``tl.randint(seed, counter)`` with an int64 counter: Triton's Philox4x32-10 with key
(seed lo, seed hi) and counter (counter lo, counter hi, 0, 0), word 0 -- the definition csrc/philox.h and
kernels/reference.py implement. One pass: no mask, no int64 temporaries of the input's size. Offsets,
rows and counters are int64 throughout, so inputs past 2^31 elements and keys past 2^32 / width work.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from distgnn.errors import DistGNNError

BLOCK = 1024
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@triton.jit
def _store(ptr, offs, v, m):
    """Store float32 ``v`` in ptr's dtype; bfloat16 rounded to nearest even explicitly (NaN -> quiet NaN),
    as the C++ kernel and torch do: the interpreter's own float32 -> bfloat16 cast truncates."""
    if ptr.dtype.element_ty == tl.bfloat16:
        bits = v.to(tl.uint32, bitcast=True)
        r = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
        r = tl.where(v != v, 0x7FC0, r)
        tl.store(ptr + offs, r.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=m)
    else:
        tl.store(ptr + offs, v.to(ptr.dtype.element_ty), mask=m)


@triton.jit
def _dropout_kernel(
    x, out, bias, keys, n, width, seed, thr, scale,
    HAS_BIAS: tl.constexpr, HAS_KEYS: tl.constexpr, RELU: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = offs < n
    row = offs // width
    col = offs - row * width
    if HAS_KEYS:
        ctr = tl.load(keys + row, mask=m, other=0) * width + col
    else:
        ctr = offs
    draw = tl.randint(seed, ctr).to(tl.int64)  # uint32 -> int64 zero-extends: [0, 2^32)
    v = tl.load(x + offs, mask=m, other=0.0).to(tl.float32)
    if HAS_BIAS:
        v = v + tl.load(bias + col, mask=m, other=0.0)
    keep = draw >= thr
    if RELU:
        keep = keep & (v > 0.0)
    _store(out, offs, tl.where(keep, v * scale, 0.0), m)


@triton.jit
def _positive_scale_kernel(o, g, out, n, scale, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = offs < n
    vo = tl.load(o + offs, mask=m, other=0.0).to(tl.float32)
    vg = tl.load(g + offs, mask=m, other=0.0).to(tl.float32)
    _store(out, offs, tl.where(vo > 0.0, vg * scale, 0.0), m)


def dropout(
    x: Tensor, seed: int, threshold: int, scale: float, relu: bool, bias: Tensor | None, keys: Tensor | None
) -> Tensor:
    """out = keep ? v * scale : 0, v = [relu](x [+ bias]), keep = randint(seed, counter) >= threshold."""
    if x.dtype not in DTYPES:
        raise DistGNNError(f"impl='triton' dropout supports float32, bfloat16 and float16 x, got {x.dtype}")
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return out
    width = x.shape[-1] if bias is not None else (x.shape[1] if x.dim() == 2 else 1)
    b = None if bias is None else bias.to(torch.float32).contiguous()
    k = None if keys is None else keys.to(torch.int64).contiguous()
    _dropout_kernel[(triton.cdiv(n, BLOCK),)](
        x, out, x if b is None else b, x if k is None else k, n, max(width, 1), seed, threshold, scale,
        HAS_BIAS=b is not None, HAS_KEYS=k is not None, RELU=relu, BLOCK=BLOCK,
    )  # fmt: skip
    return out


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    """``grad * scale`` where ``out > 0``, else 0 (the backward of relu + dropout)."""
    res = torch.empty_like(grad.contiguous())
    n = res.numel()
    if n:
        _positive_scale_kernel[(triton.cdiv(n, BLOCK),)](
            out.contiguous(), grad.contiguous(), res, n, scale, BLOCK=BLOCK
        )
    return res
