"""The eager path (ops.gspmm / gspmm_max / sddmm / edge_softmax / dropout: a plain autograd.Function over
the raw kernels, no custom-op dispatch) gives bit-for-bit the custom ops' outputs and gradients, and the
cached selection still follows DISTGNN_KERNEL_IMPL and DISTGNN_CPU_ISA."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import graph

from distgnn.errors import DistGNNError
from distgnn.kernels import ops, resolve, select
from distgnn.kernels.dropout_api import resolve_dropout

IMPLS = ["cpu", "torch"]


def _gspmm_inputs(mean: bool, relu: bool, impl: str):
    csr = graph("powerlaw")
    t = csr.transposed()
    g = torch.Generator().manual_seed(1)
    s, e, r = csr.num_src, csr.num_edges, csr.num_dst
    leaves = [
        torch.randn(s, 1, 8, generator=g),
        torch.rand(e, 1, generator=g),
        torch.rand(s, generator=g),
        torch.rand(r, generator=g),
        torch.randn(8, generator=g),
    ]
    leaves = [v.requires_grad_(True) for v in leaves]
    args = (csr.indptr, csr.indices, *leaves, t.indptr, t.indices, t.perm, mean, relu, impl)
    return args, leaves


def _run(fn, args, leaves):
    out = fn(*args)
    grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), leaves)
    return out, grads


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mean, relu", [(False, False), (True, True)])
def test_eager_gspmm_equals_the_custom_op_bitwise(impl, mean, relu):
    args, leaves = _gspmm_inputs(mean, relu, impl)
    out, grads = _run(ops.gspmm, args, leaves)
    out_op, grads_op = _run(ops.gspmm_op, args, leaves)
    assert torch.equal(out, out_op)
    for got, want in zip(grads, grads_op, strict=True):
        assert torch.equal(got, want)
    with torch.no_grad():
        assert torch.equal(ops.gspmm(*args), out_op)


def _assert_same(direct, op, args, leaves) -> None:
    """``direct(*args)`` and ``op(*args)``: equal outputs and equal gradients w.r.t. ``leaves``, bitwise,
    with grad and without; the eager output must also differ from zero (a test that can fail)."""
    out, grads = _run(direct, args, leaves)
    assert type(out.grad_fn).__name__.startswith("_Direct")  # the eager path ran, not the custom op
    out_op, grads_op = _run(op, args, leaves)
    assert torch.equal(out, out_op) and bool(out.abs().sum() > 0)
    for got, want in zip(grads, grads_op, strict=True):
        assert torch.equal(got, want) and bool(got.abs().sum() > 0)
    with torch.no_grad():
        assert torch.equal(direct(*args), out_op)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("per_head, relu", [(False, False), (True, True)])
def test_eager_gspmm_max_equals_the_custom_op_bitwise(impl, per_head, relu):
    csr = graph("powerlaw")
    g = torch.Generator().manual_seed(2)
    s, e, r, h = csr.num_src, csr.num_edges, csr.num_dst, 2 if per_head else 1
    leaves = [
        torch.randn(s, h, 4, generator=g),
        torch.rand(e, h, generator=g) + 0.5,
        torch.rand(s, generator=g) + 0.5,
        torch.rand(r, generator=g) + 0.5,
        torch.randn(h * 4, generator=g),
    ]
    leaves = [v.requires_grad_(True) for v in leaves]
    args = (csr.indptr, csr.indices, *leaves, relu, impl)
    first = lambda fn: lambda *a: fn(*a)[0]  # the winners (second output) carry no gradient
    _assert_same(first(ops.gspmm_max), first(ops.gspmm_max_op), args, leaves)


@pytest.mark.parametrize("impl", IMPLS)
def test_eager_sddmm_and_edge_softmax_equal_the_custom_ops_bitwise(impl):
    csr = graph("powerlaw")
    g = torch.Generator().manual_seed(3)
    a_dst = torch.randn(csr.num_dst, 2, generator=g, requires_grad=True)
    b_src = torch.randn(csr.num_src, 2, generator=g, requires_grad=True)
    _assert_same(ops.sddmm, ops.sddmm_op, (csr.indptr, csr.indices, a_dst, b_src, impl), [a_dst, b_src])
    scores = torch.randn(csr.num_edges, 2, generator=g, requires_grad=True)
    _assert_same(ops.edge_softmax, ops.edge_softmax_op, (csr.indptr, scores, impl), [scores])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("relu, bits", [(False, False), (False, True), (True, False)])
def test_eager_dropout_equals_the_custom_op_bitwise(impl, relu, bits):
    if bits and impl != "cpu":
        pytest.skip("keep-mask bits are a cpu-kernel feature")
    x = torch.randn(37, 19, requires_grad=True)
    bias = torch.randn(19, requires_grad=True)
    keys = None if relu else torch.arange(100, 137)
    rest = (2**31, 2.0, relu, bias, keys, impl, bits)  # p = 0.5
    out = ops.dropout(x, 0x5EED, *rest)
    out_op = ops.dropout_op(x, torch.tensor([0x5EED]), *rest)[0]
    assert torch.equal(out, out_op)
    assert 0 < int((out == 0).sum()) < out.numel()
    w = torch.linspace(-1, 1, out.numel()).view_as(out)
    grads = torch.autograd.grad((out * w).sum(), (x, bias))
    grads_op = torch.autograd.grad((out_op * w).sum(), (x, bias))
    for got, want in zip(grads, grads_op, strict=True):
        assert torch.equal(got, want)


def test_cached_selection_follows_the_environment(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("DISTGNN_KERNEL_IMPL", raising=False)
    monkeypatch.delenv("DISTGNN_CPU_ISA", raising=False)
    assert resolve("auto", cpu) == "cpu"
    assert resolve("auto", cpu) == "cpu"  # served from the cache
    assert resolve_dropout("auto", cpu, torch.float16) == "torch"
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", "reference")
    assert resolve("auto", cpu) == "reference"
    assert resolve_dropout("auto", cpu) == "reference"
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", "nope")
    for _ in range(2):  # errors are not cached: raised every time
        with pytest.raises(DistGNNError, match="unknown kernel impl 'nope'"):
            resolve("auto", cpu)
    monkeypatch.delenv("DISTGNN_KERNEL_IMPL")
    monkeypatch.setenv("DISTGNN_CPU_ISA", "sse9")
    with pytest.raises(DistGNNError, match="DISTGNN_CPU_ISA='sse9' is not an ISA"):
        resolve("auto", cpu)
    monkeypatch.delenv("DISTGNN_CPU_ISA")
    assert resolve("auto", cpu) == "cpu"
    assert any(key[1] == "auto" for key in select._resolved)
