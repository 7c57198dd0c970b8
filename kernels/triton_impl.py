"""The Triton implementation (CUDA tensors; CPU tensors under TRITON_INTERPRET=1).

gSpMM is CSR row-parallel: program (row, column block) walks the row's in-edges EDGES at a time, gathering
an [EDGES, BLOCK] tile of source rows, and keeps a float32 accumulator for its BLOCK feature columns, so
scaling and the epilogue are fused and nothing is written per edge. The edge-wise ops run one program per
row (softmax) or per block of edges (sddmm, edge dot). The kernels use only features the interpreter has.

64-bit offsets: every offset that can pass 2^31 is int64 -- row ids (``program_id(0).to(int64)``), edge
ids (loaded int64 ``indptr`` values, or ``program_id(0).to(int64) * EB``), gathered source ids (cast after
the load, so int32 ``indices`` are safe too) and the products ``row * F``, ``edge * H``, ``src * F``
built from them (e.g. 270M edges x 8 heads is past 2^31). Column, head and block-local offsets stay
int32 (bounded by the feature width).

No atomics: each output element is written by exactly one program, so results are deterministic for
one launch configuration. gSpMM's configuration (feature tile, warps) is autotuned per feature width
on CUDA and the choice is cached on disk (``cache_results``), so later runs reuse it; under
``torch.use_deterministic_algorithms(True)`` and in the interpreter a fixed configuration is used.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from distgnn.kernels.triton_dropout import dropout, positive_scale  # noqa: F401  (the backend's dropout)

EDGES = 16  # in-edges gathered per step
# gSpMM launch configurations the autotuner tries (feature tile cap, warps), keyed on the feature width.
SPMM_CONFIGS = [(128, 4), (64, 2), (256, 8), (32, 1)]
AUTOTUNE_ENV = "DISTGNN_TRITON_AUTOTUNE"  # "0" turns the autotuner off (the first config is used)


@triton.jit
def _spmm_kernel(
    indptr, indices, x, w, ss, ds, bias, out, arg, F, D, WH,
    HAS_W: tl.constexpr, HAS_SS: tl.constexpr, HAS_DS: tl.constexpr, HAS_BIAS: tl.constexpr,
    MEAN: tl.constexpr, RELU: tl.constexpr, MAX: tl.constexpr, EB: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    cmask = cols < F
    start = tl.load(indptr + row).to(tl.int64)  # edge ids are int64 even for an int32 indptr
    end = tl.load(indptr + row + 1).to(tl.int64)
    if MAX:
        acc = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
        best = tl.full([BLOCK], -1, dtype=tl.int64)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
    for e0 in range(start, end, EB):
        eids = e0 + tl.arange(0, EB)
        emask = eids < end
        m2 = emask[:, None] & cmask[None, :]
        j = tl.load(indices + eids, mask=emask, other=0).to(tl.int64)
        v = tl.load(x + j[:, None] * F + cols[None, :], mask=m2, other=0.0).to(tl.float32)
        if HAS_SS:
            v = v * tl.load(ss + j, mask=emask, other=0.0)[:, None]
        if HAS_W:
            v = v * tl.load(w + eids[:, None] * WH + (cols // D)[None, :], mask=m2, other=0.0)
        if MAX:
            v = tl.where(m2, v, float("-inf"))
            bmax, bidx = tl.max(v, axis=0, return_indices=True, return_indices_tie_break_left=True)
            take = (bmax > acc) | ((best < 0) & (end > e0))
            acc = tl.where(take, bmax, acc)
            best = tl.where(take, e0 + bidx.to(tl.int64), best)
        else:
            acc += tl.sum(v, axis=0)
    deg = end - start
    if MAX:
        acc = tl.where(deg > 0, acc, 0.0)
        tl.store(arg + row * F + cols, best, mask=cmask)
    scale = tl.full([BLOCK], 1.0, dtype=tl.float32)
    if HAS_DS:
        scale = scale * tl.load(ds + row)
    if MEAN:
        scale = scale / tl.maximum(deg, 1).to(tl.float32)
    res = acc * scale
    if HAS_BIAS:
        res += tl.load(bias + cols, mask=cmask, other=0.0)
    if RELU:
        res = tl.maximum(res, 0.0)
    tl.store(out + row * F + cols, res.to(out.dtype.element_ty), mask=cmask)


@triton.jit
def _edge_dot_kernel(rows, indices, a, b, out, E, H, D, EB: tl.constexpr, DB: tl.constexpr):
    eids = tl.program_id(0).to(tl.int64) * EB + tl.arange(0, EB)  # int64: E * H can pass 2^31
    emask = eids < E
    h = tl.program_id(1)
    i = tl.load(rows + eids, mask=emask, other=0).to(tl.int64)
    j = tl.load(indices + eids, mask=emask, other=0).to(tl.int64)
    acc = tl.zeros([EB], dtype=tl.float32)
    for d0 in range(0, D, DB):
        cols = d0 + tl.arange(0, DB)
        m2 = emask[:, None] & (cols < D)[None, :]
        va = tl.load(a + (i[:, None] * H + h) * D + cols[None, :], mask=m2, other=0.0).to(tl.float32)
        vb = tl.load(b + (j[:, None] * H + h) * D + cols[None, :], mask=m2, other=0.0).to(tl.float32)
        acc += tl.sum(va * vb, axis=1)
    tl.store(out + eids * H + h, acc, mask=emask)


@triton.jit
def _sddmm_kernel(rows, indices, a, b, out, E, H, EB: tl.constexpr, HB: tl.constexpr):
    eids = tl.program_id(0).to(tl.int64) * EB + tl.arange(0, EB)  # int64: E * H can pass 2^31
    emask = eids < E
    hs = tl.arange(0, HB)
    m2 = emask[:, None] & (hs < H)[None, :]
    i = tl.load(rows + eids, mask=emask, other=0).to(tl.int64)
    j = tl.load(indices + eids, mask=emask, other=0).to(tl.int64)
    va = tl.load(a + i[:, None] * H + hs[None, :], mask=m2, other=0.0).to(tl.float32)
    vb = tl.load(b + j[:, None] * H + hs[None, :], mask=m2, other=0.0).to(tl.float32)
    tl.store(out + eids[:, None] * H + hs[None, :], (va + vb).to(out.dtype.element_ty), mask=m2)


@triton.jit
def _softmax_kernel(indptr, scores, out, H, EB: tl.constexpr, HB: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    start = tl.load(indptr + row).to(tl.int64)  # edge ids int64: edge * H can pass 2^31
    end = tl.load(indptr + row + 1).to(tl.int64)
    hs = tl.arange(0, HB)
    hmask = hs < H
    m = tl.full([HB], float("-inf"), dtype=tl.float32)
    for e0 in range(start, end, EB):
        eids = e0 + tl.arange(0, EB)
        m2 = (eids < end)[:, None] & hmask[None, :]
        s = tl.load(scores + eids[:, None] * H + hs[None, :], mask=m2, other=float("-inf")).to(tl.float32)
        m = tl.maximum(m, tl.max(s, axis=0))
    z = tl.zeros([HB], dtype=tl.float32)
    for e0 in range(start, end, EB):
        eids = e0 + tl.arange(0, EB)
        m2 = (eids < end)[:, None] & hmask[None, :]
        s = tl.load(scores + eids[:, None] * H + hs[None, :], mask=m2, other=float("-inf")).to(tl.float32)
        z += tl.sum(tl.where(m2, tl.exp(s - m[None, :]), 0.0), axis=0)
    for e0 in range(start, end, EB):
        eids = e0 + tl.arange(0, EB)
        m2 = (eids < end)[:, None] & hmask[None, :]
        s = tl.load(scores + eids[:, None] * H + hs[None, :], mask=m2, other=0.0).to(tl.float32)
        p = tl.exp(s - m[None, :]) / z[None, :]
        tl.store(out + eids[:, None] * H + hs[None, :], p.to(out.dtype.element_ty), mask=m2)


@triton.jit
def _softmax_bwd_kernel(indptr, o, g, out, H, EB: tl.constexpr, HB: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    start = tl.load(indptr + row).to(tl.int64)  # edge ids int64: edge * H can pass 2^31
    end = tl.load(indptr + row + 1).to(tl.int64)
    hs = tl.arange(0, HB)
    hmask = hs < H
    acc = tl.zeros([HB], dtype=tl.float32)
    for e0 in range(start, end, EB):
        eids = e0 + tl.arange(0, EB)
        m2 = (eids < end)[:, None] & hmask[None, :]
        off = eids[:, None] * H + hs[None, :]
        vo = tl.load(o + off, mask=m2, other=0.0).to(tl.float32)
        acc += tl.sum(vo * tl.load(g + off, mask=m2, other=0.0).to(tl.float32), axis=0)
    for e0 in range(start, end, EB):
        eids = e0 + tl.arange(0, EB)
        m2 = (eids < end)[:, None] & hmask[None, :]
        off = eids[:, None] * H + hs[None, :]
        vo = tl.load(o + off, mask=m2, other=0.0).to(tl.float32)
        vg = tl.load(g + off, mask=m2, other=0.0).to(tl.float32)
        tl.store(out + off, (vo * (vg - acc[None, :])).to(out.dtype.element_ty), mask=m2)


_spmm_tuned = triton.autotune(
    configs=[triton.Config({"BLOCK": cap}, num_warps=w) for cap, w in SPMM_CONFIGS],
    key=["F", "HAS_W", "MAX"],  # the feature width (and the variant): one cached choice per key
    cache_results=True,
)(_spmm_kernel)


def autotune_enabled(device: torch.device) -> bool:
    """Autotune gSpMM on CUDA unless deterministic algorithms are on or DISTGNN_TRITON_AUTOTUNE=0."""
    return (
        device.type == "cuda"
        and not torch.are_deterministic_algorithms_enabled()
        and os.environ.get(AUTOTUNE_ENV, "1") != "0"
    )


def _block(n: int, cap: int) -> int:
    return max(1, min(cap, triton.next_power_of_2(max(n, 1))))


def _f32(t: Tensor | None, like: Tensor) -> Tensor:
    return like if t is None else t.to(torch.float32).contiguous()


def _spmm(indptr, indices, x, w, ss, ds, bias, mean: bool, relu: bool, is_max: bool):
    x = x.contiguous()
    num_rows, (_, h, d) = indptr.numel() - 1, x.shape
    wh = 1 if w is None else w.shape[1]
    f, dd = h * d, (d if wh > 1 else h * d)
    out = torch.empty(num_rows, h, d, dtype=x.dtype, device=x.device)
    arg = torch.empty(num_rows, h, d, dtype=torch.int64, device=x.device) if is_max else out
    if num_rows > 0 and f > 0:
        args = (indptr, indices, x, _f32(w, x), _f32(ss, x), _f32(ds, x), _f32(bias, x), out, arg, f, dd, wh)
        flags = dict(
            HAS_W=w is not None, HAS_SS=ss is not None, HAS_DS=ds is not None, HAS_BIAS=bias is not None,
            MEAN=mean, RELU=relu, MAX=is_max, EB=EDGES,
        )  # fmt: skip
        if autotune_enabled(x.device):
            _spmm_tuned[lambda meta: (num_rows, triton.cdiv(f, meta["BLOCK"]))](*args, **flags)
        else:
            cap, warps = SPMM_CONFIGS[0]
            block = _block(f, cap)
            _spmm_kernel[(num_rows, triton.cdiv(f, block))](*args, **flags, BLOCK=block, num_warps=warps)
    elif is_max:
        arg.fill_(-1)
    return (out, arg) if is_max else out


def spmm(indptr, indices, x, w, ss, ds, bias, mean: bool, relu: bool) -> Tensor:
    return _spmm(indptr, indices, x, w, ss, ds, bias, mean, relu, False)


def spmm_max(indptr, indices, x, w, ss, ds, bias, relu: bool) -> tuple[Tensor, Tensor]:
    return _spmm(indptr, indices, x, w, ss, ds, bias, False, relu, True)


def _rows(indptr: Tensor, num_edges: int) -> Tensor:
    r = torch.arange(indptr.numel() - 1, device=indptr.device)
    return torch.repeat_interleave(r, indptr[1:] - indptr[:-1], output_size=num_edges)


def edge_dot(indptr, indices, a, b) -> Tensor:
    e, h, d = indices.numel(), a.shape[1], a.shape[2]
    out = torch.empty(e, h, dtype=torch.float32, device=a.device)
    if e and h:
        eb = 32
        _edge_dot_kernel[(triton.cdiv(e, eb), h)](
            _rows(indptr, e), indices, a.contiguous(), b.contiguous(), out, e, h, d, EB=eb, DB=_block(d, 64)
        )
    return out


def sddmm(indptr, indices, a, b) -> Tensor:
    e, h = indices.numel(), a.shape[1]
    out = torch.empty(e, h, dtype=a.dtype, device=a.device)
    if e and h:
        eb = 64
        _sddmm_kernel[(triton.cdiv(e, eb),)](
            _rows(indptr, e), indices, a.contiguous(), b.contiguous(), out, e, h, EB=eb, HB=_block(h, 1 << 20)
        )
    return out


def edge_softmax(indptr, scores) -> Tensor:
    scores = scores.contiguous()
    out = torch.empty_like(scores)
    rows, h = indptr.numel() - 1, scores.shape[1]
    if rows and scores.numel():
        _softmax_kernel[(rows,)](indptr, scores, out, h, EB=EDGES, HB=_block(h, 1 << 20))
    return out


def edge_softmax_backward(indptr, out, grad) -> Tensor:
    res = torch.empty_like(out)
    rows, h = indptr.numel() - 1, out.shape[1]
    if rows and out.numel():
        _softmax_bwd_kernel[(rows,)](
            indptr, out.contiguous(), grad.contiguous(), res, h, EB=EDGES, HB=_block(h, 1 << 20)
        )
    return res
