"""The ``distgnn::*`` custom ops: plain-tensor signatures, registered autograd and fake (meta) kernels.

Registering through ``torch.library.custom_op`` makes the kernels opaque to ``torch.compile`` (no graph
break, shapes from the fake kernel) and gives them hand-written backward formulas:

* gspmm sum/mean: grad_x = src_scale * A^T (w * dst_scale' * g') on the cached transposed CSR, one fused
  kernel call (dst_scale' folds the 1/deg of mean, g' is the ReLU-masked grad); grad_w = per-edge dot
  product of g' * dst_scale' and x * src_scale; grad_bias = column sums; grad_dst_scale recomputes the
  unscaled aggregation only when asked.
* gspmm max: the forward kernel returns the winning edge per output element; the backward routes the
  gradient to it with scatter-adds.
* sddmm: segment sums; edge_softmax: out * (g - sum_row(g * out)).
* dropout: on ``cpu`` the forward also returns the keep mask as bits (1/32 of a float32 input) and the
  backward applies them; elsewhere the same op on the gradient with the same seed (the mask is
  regenerated); with the fused ReLU, ``grad * scale`` where the output is positive (the output is saved,
  as ReLU would).

Eager calls skip the custom-op dispatch: :func:`gspmm`, :func:`gspmm_max`, :func:`sddmm`,
:func:`edge_softmax` and :func:`dropout` run the same setup and backward formulas through a plain
``torch.autograd.Function`` (and their eager backward calls the raw kernels where it calls kernels),
which on a small graph costs a fraction of the op's dispatch (benchmarks/kernels/bench_call_overhead.py).
Under ``torch.compile`` (``torch.compiler.is_compiling()``) they call the custom ops, which Dynamo traces.
"""

from __future__ import annotations

import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.kernels import reference
from distgnn.kernels.select import backend


def _no_transpose() -> DistGNNError:
    return DistGNNError(
        "gspmm backward needs the transposed CSR but none was passed (the forward saw no grad)"
    )


# --------------------------------------------------------------------------------------------- gspmm
@torch.library.custom_op("distgnn::gspmm", mutates_args=())
def gspmm_op(
    indptr: Tensor,
    indices: Tensor,
    x: Tensor,
    edge_weight: Tensor | None,
    src_scale: Tensor | None,
    dst_scale: Tensor | None,
    bias: Tensor | None,
    t_indptr: Tensor,
    t_indices: Tensor,
    t_perm: Tensor,
    mean: bool,
    relu: bool,
    impl: str,
) -> Tensor:
    """Fused sum/mean aggregation; x [S, H, D] -> [R, H, D]. t_* is the transposed CSR (backward only)."""
    return backend(impl).spmm(indptr, indices, x, edge_weight, src_scale, dst_scale, bias, mean, relu)


@gspmm_op.register_fake
def _(
    indptr, indices, x, edge_weight, src_scale, dst_scale, bias, t_indptr, t_indices, t_perm, mean, relu, impl
):
    return x.new_empty(indptr.shape[0] - 1, x.shape[1], x.shape[2])


def _gspmm_setup(ctx, inputs, output) -> None:
    indptr, indices, x, w, ss, ds, bias, t_indptr, t_indices, t_perm, mean, relu, impl = inputs
    ctx.mean, ctx.relu, ctx.impl = mean, relu, impl
    ctx.has_bias = bias is not None
    ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
    # The source rows are needed only for the gradients of edge weights and scales; without those the
    # backward is A^T g, and the (halo-extended or gathered) source buffer is freed after the forward.
    x_kept = x if any(ctx.needs_input_grad[3:6]) else None
    out_kept = output if relu else None
    ctx.save_for_backward(indptr, indices, x_kept, w, ss, ds, t_indptr, t_indices, t_perm, out_kept)


def _effective_dst_scale(indptr: Tensor, ds: Tensor | None, mean: bool) -> Tensor | None:
    """dst_scale with the 1/deg of a mean folded in (float32), or None if there is no scaling."""
    scale = None if ds is None else ds.float()
    if mean:
        inv = 1.0 / (indptr[1:] - indptr[:-1]).clamp(min=1).float()
        scale = inv if scale is None else scale * inv
    return scale


def _gspmm_backward(ctx, grad: Tensor):
    indptr, indices, x, w, ss, ds, t_indptr, t_indices, t_perm, out = ctx.saved_tensors
    need = ctx.needs_input_grad
    impl = ctx.impl
    none = indptr.new_empty(0)
    # A traced (or differentiable) backward calls the custom ops so that torch.compile can trace it; the
    # eager one of the direct path calls the raw kernels.
    raw = _raw_backward(ctx)
    spmm = lambda ip, ix, x_, w_, s_, d_, mean: (
        backend(impl).spmm(ip, ix, x_, w_, s_, d_, None, mean, False)
        if raw
        else gspmm_op(ip, ix, x_, w_, s_, d_, None, none, none, none, mean, False, impl)
    )
    g = grad.contiguous()
    if ctx.relu:
        g = g * (out > 0)
    num_rows, (s, h, d) = indptr.numel() - 1, ctx.x_shape
    g_bias = g.reshape(num_rows, h * d).float().sum(0) if ctx.has_bias and need[6] else None
    eff = _effective_dst_scale(indptr, ds, ctx.mean)
    g_ds = None
    if need[5]:
        agg = spmm(indptr, indices, x, w, ss, None, ctx.mean)
        g_ds = (g.float() * agg.float()).sum((1, 2)).to(ds.dtype)
    g_x = g_ss = None
    if need[2] or need[4]:
        if t_indptr.numel() == 0:
            raise _no_transpose()
        wt = None if w is None else w[t_perm]
        if need[4]:  # src_scale needs grad: gather unscaled, scale afterwards
            t = spmm(t_indptr, t_indices, g, wt, eff, None, False)
            g_ss = (t.float() * x.float()).sum((1, 2)).to(ss.dtype)
            g_x = (t.float() * ss.float()[:, None, None]).to(ctx.x_dtype) if need[2] else None
        else:
            g_x = spmm(t_indptr, t_indices, g, wt, eff, ss, False)
    g_w = None
    if need[3]:
        a = g if eff is None else (g.float() * eff[:, None, None]).to(ctx.x_dtype)
        b = x if ss is None else (x.float() * ss.float()[:, None, None]).to(x.dtype)
        if w.shape[1] == 1:  # one weight for all heads: dot over the whole row
            a, b = a.reshape(num_rows, 1, h * d), b.reshape(s, 1, h * d)
        dot = _edge_dot if raw else edge_dot_op
        g_w = dot(indptr, indices, a.contiguous(), b.contiguous(), impl).to(w.dtype)
    if g_bias is not None:
        g_bias = g_bias.to(ctx.x_dtype)
    return None, None, g_x, g_w, g_ss, g_ds, g_bias, None, None, None, None, None, None


gspmm_op.register_autograd(_gspmm_backward, setup_context=_gspmm_setup)


def _raw_backward(ctx) -> bool:
    """True in the eager backward of a direct-path forward that builds no graph of its own."""
    return getattr(ctx, "direct", False) and not torch.is_grad_enabled()


class _DirectGspmm(torch.autograd.Function):
    """gspmm_op's forward, setup and backward as a plain autograd.Function (the eager path)."""

    @staticmethod
    def forward(ctx, *inputs):
        indptr, indices, x, w, ss, ds, bias, _ti, _tx, _tp, mean, relu, impl = inputs
        out = backend(impl).spmm(indptr, indices, x, w, ss, ds, bias, mean, relu)
        ctx.direct = True
        _gspmm_setup(ctx, inputs, out)
        return out

    backward = staticmethod(_gspmm_backward)


def gspmm(*inputs) -> Tensor:
    """gspmm_op(*inputs): the custom op under torch.compile, else the direct path (same formulas)."""
    if torch.compiler.is_compiling():
        return gspmm_op(*inputs)
    if _tracks_grad(inputs[2:7]):
        return _DirectGspmm.apply(*inputs)
    indptr, indices, x, w, ss, ds, bias, _ti, _tx, _tp, mean, relu, impl = inputs
    return backend(impl).spmm(indptr, indices, x, w, ss, ds, bias, mean, relu)


def _edge_dot(indptr: Tensor, indices: Tensor, a: Tensor, b: Tensor, impl: str) -> Tensor:
    return backend(impl).edge_dot(indptr, indices, a, b).to(torch.float32)


@torch.library.custom_op("distgnn::edge_dot", mutates_args=())
def edge_dot_op(indptr: Tensor, indices: Tensor, a: Tensor, b: Tensor, impl: str) -> Tensor:
    """Per-edge, per-head dot product of a[dst] [R, H, D] and b[src] [S, H, D]: float32 [E, H]."""
    return _edge_dot(indptr, indices, a, b, impl)


@edge_dot_op.register_fake
def _(indptr, indices, a, b, impl):
    return a.new_empty(indices.shape[0], a.shape[1], dtype=torch.float32)


# ----------------------------------------------------------------------------------------- gspmm max
@torch.library.custom_op("distgnn::gspmm_max", mutates_args=())
def gspmm_max_op(
    indptr: Tensor,
    indices: Tensor,
    x: Tensor,
    edge_weight: Tensor | None,
    src_scale: Tensor | None,
    dst_scale: Tensor | None,
    bias: Tensor | None,
    relu: bool,
    impl: str,
) -> tuple[Tensor, Tensor]:
    """Fused max aggregation; returns (out [R, H, D], winning edge id [R, H, D] or -1 for empty rows)."""
    return backend(impl).spmm_max(indptr, indices, x, edge_weight, src_scale, dst_scale, bias, relu)


@gspmm_max_op.register_fake
def _(indptr, indices, x, edge_weight, src_scale, dst_scale, bias, relu, impl):
    shape = (indptr.shape[0] - 1, x.shape[1], x.shape[2])
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)


def _gspmm_max_setup(ctx, inputs, output) -> None:
    indptr, indices, x, w, ss, ds, bias, relu, impl = inputs
    out, arg = output
    ctx.relu, ctx.has_bias = relu, bias is not None
    ctx.mark_non_differentiable(arg)
    ctx.save_for_backward(indices, x, w, ss, ds, out, arg)


def _gspmm_max_backward(ctx, grad: Tensor, _grad_arg: Tensor | None):
    indices, x, w, ss, ds, out, arg = ctx.saved_tensors
    need = ctx.needs_input_grad
    s, h, d = x.shape
    num_rows = arg.shape[0]
    g = grad.float()
    if ctx.relu:
        g = g * (out > 0)
    g_bias = g.reshape(num_rows, h * d).sum(0).to(x.dtype) if ctx.has_bias and need[6] else None
    if indices.numel() == 0:  # no edges: every row is empty and only the epilogue has gradients
        zero = lambda t: None if t is None else torch.zeros_like(t)
        return None, None, zero(x), zero(w), zero(ss), zero(ds), g_bias, None, None
    valid = arg >= 0
    e = arg.clamp(min=0)
    j = indices[e]  # [R, H, D] source row of each winner
    head = torch.arange(h, device=x.device)[None, :, None].expand_as(arg)
    col = torch.arange(d, device=x.device)[None, None, :].expand_as(arg)
    xv = x.float()[j, head, col]  # x at the winner
    c_ss = ss.float()[j] if ss is not None else torch.ones_like(xv)
    if w is not None:
        c_w = w.float()[e, head if w.shape[1] > 1 else torch.zeros_like(head)]
    else:
        c_w = torch.ones_like(xv)
    g_ds = None
    if need[5]:
        g_ds = (g * (c_w * c_ss * xv) * valid).sum((1, 2)).to(ds.dtype)
    if ds is not None:
        g = g * ds.float()[:, None, None]
    g = g * valid
    flat = (j * h + head) * d + col
    g_x = g_ss = g_w = None
    if need[2]:
        g_x = torch.zeros(s * h * d, device=x.device).index_add_(
            0, flat.reshape(-1), (g * c_w * c_ss).reshape(-1)
        )
        g_x = g_x.reshape(s, h, d).to(x.dtype)
    if need[4]:
        g_ss = torch.zeros(s, device=x.device).index_add_(0, j.reshape(-1), (g * c_w * xv).reshape(-1))
        g_ss = g_ss.to(ss.dtype)
    if need[3]:
        wh = w.shape[1]
        slot = e * wh + (head if wh > 1 else 0)
        g_w = torch.zeros(w.numel(), device=x.device).index_add_(
            0, slot.reshape(-1), (g * c_ss * xv).reshape(-1)
        )
        g_w = g_w.reshape(w.shape).to(w.dtype)
    return None, None, g_x, g_w, g_ss, g_ds, g_bias, None, None


gspmm_max_op.register_autograd(_gspmm_max_backward, setup_context=_gspmm_max_setup)


class _DirectGspmmMax(torch.autograd.Function):
    """gspmm_max_op's forward, setup and backward as a plain autograd.Function (the eager path)."""

    @staticmethod
    def forward(ctx, *inputs):
        indptr, indices, x, w, ss, ds, bias, relu, impl = inputs
        output = backend(impl).spmm_max(indptr, indices, x, w, ss, ds, bias, relu)
        _gspmm_max_setup(ctx, inputs, output)
        return output

    backward = staticmethod(_gspmm_max_backward)


def gspmm_max(*inputs) -> tuple[Tensor, Tensor]:
    """gspmm_max_op(*inputs): the custom op under torch.compile, else the direct path (same formulas)."""
    if torch.compiler.is_compiling():
        return gspmm_max_op(*inputs)
    if _tracks_grad(inputs[2:7]):
        return _DirectGspmmMax.apply(*inputs)
    indptr, indices, x, w, ss, ds, bias, relu, impl = inputs
    return backend(impl).spmm_max(indptr, indices, x, w, ss, ds, bias, relu)


def _tracks_grad(tensors) -> bool:
    """Whether autograd records an op on these inputs (grad mode on and one of them requires grad)."""
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


# --------------------------------------------------------------------------------------------- sddmm
@torch.library.custom_op("distgnn::sddmm", mutates_args=())
def sddmm_op(indptr: Tensor, indices: Tensor, a_dst: Tensor, b_src: Tensor, impl: str) -> Tensor:
    """Per-edge a_dst[i] + b_src[j]: [E, H]."""
    return backend(impl).sddmm(indptr, indices, a_dst, b_src)


@sddmm_op.register_fake
def _(indptr, indices, a_dst, b_src, impl):
    return a_dst.new_empty(indices.shape[0], a_dst.shape[1])


def _sddmm_setup(ctx, inputs, output) -> None:
    indptr, indices, a_dst, b_src, impl = inputs
    ctx.num_src, ctx.a_dtype, ctx.b_dtype = b_src.shape[0], a_dst.dtype, b_src.dtype
    ctx.save_for_backward(indptr, indices)


def _sddmm_backward(ctx, grad: Tensor):
    indptr, indices = ctx.saved_tensors
    g = grad.float()
    num_rows = indptr.numel() - 1
    g_a = torch.zeros(num_rows, g.shape[1], device=g.device).index_add_(
        0, reference.row_ids(indptr, g.shape[0]), g
    )
    g_b = torch.zeros(ctx.num_src, g.shape[1], device=g.device).index_add_(0, indices, g)
    return None, None, g_a.to(ctx.a_dtype), g_b.to(ctx.b_dtype), None


sddmm_op.register_autograd(_sddmm_backward, setup_context=_sddmm_setup)


class _DirectSddmm(torch.autograd.Function):
    """sddmm_op as a plain autograd.Function (the eager path): same kernel, same backward."""

    @staticmethod
    def forward(ctx, *inputs):
        indptr, indices, a_dst, b_src, impl = inputs
        out = backend(impl).sddmm(indptr, indices, a_dst, b_src)
        _sddmm_setup(ctx, inputs, out)
        return out

    backward = staticmethod(_sddmm_backward)


def sddmm(indptr: Tensor, indices: Tensor, a_dst: Tensor, b_src: Tensor, impl: str) -> Tensor:
    """sddmm_op(...): the custom op under torch.compile, else the direct path (same formulas)."""
    if torch.compiler.is_compiling():
        return sddmm_op(indptr, indices, a_dst, b_src, impl)
    if _tracks_grad((a_dst, b_src)):
        return _DirectSddmm.apply(indptr, indices, a_dst, b_src, impl)
    return backend(impl).sddmm(indptr, indices, a_dst, b_src)


# -------------------------------------------------------------------------------------- edge softmax
@torch.library.custom_op("distgnn::edge_softmax", mutates_args=())
def edge_softmax_op(indptr: Tensor, scores: Tensor, impl: str) -> Tensor:
    """Softmax of scores [E, H] over the in-edges of each row."""
    return backend(impl).edge_softmax(indptr, scores)


@edge_softmax_op.register_fake
def _(indptr, scores, impl):
    return torch.empty_like(scores)


def _softmax_setup(ctx, inputs, output) -> None:
    indptr, scores, impl = inputs
    ctx.impl = impl
    ctx.save_for_backward(indptr, output)


@torch.library.custom_op("distgnn::edge_softmax_backward", mutates_args=())
def edge_softmax_backward_op(indptr: Tensor, out: Tensor, grad: Tensor, impl: str) -> Tensor:
    """Gradient of edge_softmax: out * (grad - sum_row(grad * out))."""
    return backend(impl).edge_softmax_backward(indptr, out, grad)


@edge_softmax_backward_op.register_fake
def _(indptr, out, grad, impl):
    return torch.empty_like(out)


def _softmax_backward(ctx, grad: Tensor):
    indptr, out = ctx.saved_tensors
    grad = grad.contiguous()
    if _raw_backward(ctx):
        return None, backend(ctx.impl).edge_softmax_backward(indptr, out, grad), None
    return None, edge_softmax_backward_op(indptr, out, grad, ctx.impl), None


edge_softmax_op.register_autograd(_softmax_backward, setup_context=_softmax_setup)


class _DirectEdgeSoftmax(torch.autograd.Function):
    """edge_softmax_op as a plain autograd.Function (the eager path); its eager backward calls the raw
    kernel, a backward that builds a graph the custom op."""

    @staticmethod
    def forward(ctx, indptr, scores, impl):
        out = backend(impl).edge_softmax(indptr, scores)
        ctx.direct = True
        _softmax_setup(ctx, (indptr, scores, impl), out)
        return out

    backward = staticmethod(_softmax_backward)


def edge_softmax(indptr: Tensor, scores: Tensor, impl: str) -> Tensor:
    """edge_softmax_op(...): the custom op under torch.compile, else the direct path (same formulas)."""
    if torch.compiler.is_compiling():
        return edge_softmax_op(indptr, scores, impl)
    if _tracks_grad((scores,)):
        return _DirectEdgeSoftmax.apply(indptr, scores, impl)
    return backend(impl).edge_softmax(indptr, scores)


# ------------------------------------------------------------------------------------------- dropout
@torch.library.custom_op("distgnn::dropout", mutates_args=())
def dropout_op(
    x: Tensor,
    seed: Tensor,
    threshold: int,
    scale: float,
    relu: bool,
    bias: Tensor | None,
    keys: Tensor | None,
    impl: str,
    with_bits: bool = False,
) -> tuple[Tensor, Tensor]:
    """v * scale where the mask of ``seed`` (and row ``keys``) keeps, else 0; v = [relu](x [+ bias]).

    Second output: with ``with_bits`` (impl ``cpu`` only) the keep mask as int64 [ceil(numel / 64)] bits,
    which the backward applies instead of drawing the mask again; else an empty tensor.
    """
    b = backend(impl)
    if with_bits:
        return b.dropout_bits(x, int(seed.item()), threshold, scale, relu, bias, keys)
    return b.dropout(x, int(seed.item()), threshold, scale, relu, bias, keys), _no_bits(x)


def _no_bits(x: Tensor) -> Tensor:
    return torch.empty(0, dtype=torch.int64, device=x.device)


@dropout_op.register_fake
def _(x, seed, threshold, scale, relu, bias, keys, impl, with_bits=False):
    bits = x.new_empty(((x.numel() + 63) // 64) if with_bits else 0, dtype=torch.int64)
    return x.new_empty(x.shape), bits


def _dropout_setup(ctx, inputs, output) -> None:
    x, seed, threshold, scale, relu, bias, keys, impl, with_bits = inputs
    ctx.threshold, ctx.scale, ctx.relu, ctx.impl, ctx.with_bits = threshold, scale, relu, impl, with_bits
    ctx.bias_dtype = None if bias is None else bias.dtype
    # With ReLU the output marks what passed; plain dropout keeps its mask bits when it made them (1/32
    # of a float32 input), else the seed and the row keys (the mask is regenerated).
    if relu:
        ctx.save_for_backward(output[0])
    elif with_bits:
        ctx.save_for_backward(output[1])
    else:
        ctx.save_for_backward(seed, *([keys] if keys is not None else []))


def _dropout_backward(ctx, grad: Tensor, _grad_bits: Tensor | None):
    saved = ctx.saved_tensors
    keys = saved[1] if len(saved) > 1 else None  # saved only when the mask is drawn again
    g = _dropout_input_grad(ctx, grad, saved[0], seed=saved[0], keys=keys, raw=False)
    return g, None, None, None, None, _dropout_bias_grad(ctx, g, 5), None, None, None


def _dropout_input_grad(ctx, grad: Tensor, saved: Tensor, *, seed, keys: Tensor | None, raw: bool) -> Tensor:
    """The gradient of dropout's input from what the forward saved: the output (ReLU), the mask bits, or
    the mask drawn again from ``seed`` (an int or a [1] tensor) and ``keys``. ``raw`` calls the kernels
    directly (an eager backward building no graph), else the custom ops (traceable, differentiable)."""
    g, impl = grad.contiguous(), ctx.impl
    b = backend(impl)
    if ctx.relu:
        return b.positive_scale(saved, g, ctx.scale) if raw else positive_scale_op(saved, g, ctx.scale, impl)
    if ctx.with_bits:
        return b.masked_scale(g, saved, ctx.scale) if raw else masked_scale_op(g, saved, ctx.scale, impl)
    if raw:
        return b.dropout(g, int(seed), ctx.threshold, ctx.scale, False, None, keys)
    seed_t = seed if isinstance(seed, Tensor) else torch.tensor([seed], dtype=torch.int64)
    return dropout_op(g, seed_t, ctx.threshold, ctx.scale, False, None, keys, impl)[0]


def _dropout_bias_grad(ctx, g: Tensor, bias_index: int) -> Tensor | None:
    if ctx.bias_dtype is None or not ctx.needs_input_grad[bias_index]:
        return None
    return g.reshape(-1, g.shape[-1]).float().sum(0).to(ctx.bias_dtype)


dropout_op.register_autograd(_dropout_backward, setup_context=_dropout_setup)


@torch.library.custom_op("distgnn::masked_scale", mutates_args=())
def masked_scale_op(grad: Tensor, bits: Tensor, scale: float, impl: str) -> Tensor:
    """``grad * scale`` where the dropout keep ``bits`` are set, else 0 (the backward of plain dropout)."""
    return backend(impl).masked_scale(grad, bits, scale)


@masked_scale_op.register_fake
def _(grad, bits, scale, impl):
    return grad.new_empty(grad.shape)


@torch.library.custom_op("distgnn::positive_scale", mutates_args=())
def positive_scale_op(out: Tensor, grad: Tensor, scale: float, impl: str) -> Tensor:
    """``grad * scale`` where ``out > 0``, else 0 (the backward of relu + dropout)."""
    return backend(impl).positive_scale(out, grad, scale)


@positive_scale_op.register_fake
def _(out, grad, scale, impl):
    return grad.new_empty(grad.shape)


class _DirectDropout(torch.autograd.Function):
    """dropout_op as a plain autograd.Function with an int seed (the eager path): same kernels, same
    saved state; its backward calls the raw kernels unless it builds a graph (double backward)."""

    @staticmethod
    def forward(
        ctx, x, bias, seed: int, threshold: int, scale: float, relu: bool, keys, impl: str, bits: bool
    ):
        b = backend(impl)
        if bits:
            out, mask = b.dropout_bits(x, seed, threshold, scale, relu, bias, keys)
        else:
            out, mask = b.dropout(x, seed, threshold, scale, relu, bias, keys), None
        ctx.seed, ctx.threshold, ctx.scale = seed, threshold, scale
        ctx.relu, ctx.impl, ctx.with_bits = relu, impl, bits
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(out if relu else mask if bits else keys)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (saved,) = ctx.saved_tensors
        keys = None if ctx.relu or ctx.with_bits else saved
        raw = not torch.is_grad_enabled()
        g = _dropout_input_grad(ctx, grad, saved, seed=ctx.seed, keys=keys, raw=raw)
        return g, _dropout_bias_grad(ctx, g, 1), None, None, None, None, None, None, None


def dropout_needs_grad(x: Tensor, bias: Tensor | None) -> bool:
    """Whether autograd will ask for dropout's input or bias gradient."""
    return _tracks_grad((x, bias))


def dropout(
    x: Tensor,
    seed: int,
    threshold: int,
    scale: float,
    relu: bool,
    bias: Tensor | None,
    keys: Tensor | None,
    impl: str,
    with_bits: bool,
) -> Tensor:
    """dropout_op's output: the custom op under torch.compile, else the direct path (same kernels)."""
    if torch.compiler.is_compiling():
        seed_t = torch.tensor([seed], dtype=torch.int64)
        return dropout_op(x, seed_t, threshold, scale, relu, bias, keys, impl, with_bits)[0]
    if dropout_needs_grad(x, bias):
        return _DirectDropout.apply(x, bias, seed, threshold, scale, relu, keys, impl, with_bits)
    return backend(impl).dropout(x, seed, threshold, scale, relu, bias, keys)
