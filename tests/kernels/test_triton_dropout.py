"""The Triton dropout under the CPU interpreter: bit-identical to the reference and the C++ kernel."""

from __future__ import annotations

import pytest
import torch

from distgnn.kernels import cpu, dropout, reference
from distgnn.kernels.select import triton_interpret

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() or triton_interpret()), reason="needs CUDA or TRITON_INTERPRET=1"
)
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _grads(impl: str, x: torch.Tensor, **kw) -> tuple[torch.Tensor, ...]:
    x = x.detach().requires_grad_(True)
    b = kw.pop("bias", None)
    b = None if b is None else b.detach().requires_grad_(True)
    out = dropout(x, 0.35, seed=2**40 + 9, bias=b, impl=impl, **kw)
    w = (torch.arange(out.numel(), device=x.device) % 5 - 2).reshape(out.shape).to(out.dtype)
    grads = torch.autograd.grad((out * w).sum(), [x] if b is None else [x, b])
    return (out.detach(), *grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("variant", ["plain", "keys", "bias_relu", "keys_bias_relu"])
def test_matches_reference_bitwise_forward_and_backward(variant, dtype):
    x = torch.randn(37, 33, device=DEV).to(dtype)
    kw = {}
    if "keys" in variant:  # counters keys[row] * 33 + col around 2^40
        kw["keys"] = torch.tensor([2**40 // 33 + 3 * i for i in range(37)], device=DEV)
    if "bias" in variant:
        kw.update(bias=torch.randn(33, device=DEV), relu=True)
    got = _grads("triton", x, **kw)
    ref = _grads("reference", x, **kw)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    if len(got) == 3:  # bias gradient: a column sum, summed in a different order
        torch.testing.assert_close(got[2], ref[2], rtol=1e-2, atol=1e-2)


def test_tl_randint_bits_equal_the_cpu_kernel_and_reference():
    """The same 1-D input keyed per element: Triton, every C++ entry point and the reference agree."""
    keys = torch.tensor([0, 1, 2**32 - 1, 2**32, 2**40 + 5, 2**41 - 1, 3 * 2**40 + 77, 2**62 - 2])
    x = torch.full((keys.numel(),), 3.0)
    ref = reference.dropout(x, 1234567, 2**31, 2.0, keys=keys)
    tri = dropout(x.to(DEV), 0.5, seed=1234567, keys=keys.to(DEV), impl="triton").cpu()
    assert torch.equal(tri, ref)
    ext = cpu.load_extension()
    before = ext.isa()
    try:
        for isa in ext.supported_isas():
            ext.set_isa(isa)
            assert torch.equal(ext.dropout(x, 1234567, 2**31, 2.0, False, None, keys), ref), isa
    finally:
        ext.set_isa(before)


def test_empty_and_keep_rate():
    assert dropout(torch.empty(0, 4, device=DEV), 0.5, impl="triton").shape == (0, 4)
    out = dropout(torch.ones(20_000, device=DEV), 0.3, seed=5, impl="triton")
    assert abs(float((out != 0).float().mean()) - 0.7) < 0.02
