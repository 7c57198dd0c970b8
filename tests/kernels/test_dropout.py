"""Counter-based dropout: bit-identical across implementations, Bernoulli keep rate, regenerated backward."""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch

from distgnn.errors import DistGNNError
from distgnn.kernels import cpu, dropout, reference, torch_impl
from distgnn.kernels import dropout_api as api

SHAPES = [(1,), (37, 1), (53, 129), (0, 5), (3, 4, 5)]
_U32 = 0xFFFFFFFF
# Random123's published known-answer vectors for philox4x32_10 (kat_vectors): counter, key, output.
_PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((_U32,) * 4, (_U32, _U32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def _philox4x32_10(ctr: tuple[int, ...], key: tuple[int, int]) -> tuple[int, ...]:
    """Philox4x32-10 from its published definition, in Python ints (the spec of the draw)."""
    (c0, c1, c2, c3), (k0, k1) = ctr, key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & _U32, p1 & _U32, ((p0 >> 32) ^ c3 ^ k1) & _U32, p0 & _U32
        k0, k1 = (k0 + 0x9E3779B9) & _U32, (k1 + 0xBB67AE85) & _U32
    return c0, c1, c2, c3


def _draw(seed: int, counter: int) -> int:
    """distgnn's draw: word 0 with key (seed lo, seed hi), counter (counter lo, counter hi, 0, 0)."""
    return _philox4x32_10((counter & _U32, counter >> 32, 0, 0), (seed & _U32, seed >> 32))[0]


@pytest.fixture
def cpu_isas():
    """The ISAs this CPU runs (the C++ entry points to compare); restores the active one afterwards."""
    ext = cpu.load_extension()
    before = ext.isa()
    yield ext.supported_isas()
    ext.set_isa(before)


def _run(x: torch.Tensor, p: float, impl: str, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and the input gradient of sum(out * w) for a fixed w (so the gradient is w * keep * scale)."""
    x = x.detach().requires_grad_(True)
    torch.manual_seed(seed)
    out = dropout(x, p, impl=impl)
    w = torch.arange(x.numel(), dtype=torch.float32).reshape(x.shape).to(x.dtype) % 7 + 1
    (g,) = torch.autograd.grad((out * w).sum(), x) if x.numel() else (torch.zeros_like(x),)
    return out.detach(), g


# ------------------------------------------------------------------------------------------ the draw
@pytest.mark.parametrize("ctr, key, expected", _PHILOX_KAT)
def test_spec_matches_the_random123_known_answers(ctr, key, expected):
    assert _philox4x32_10(ctr, key) == expected


def test_reference_draw_is_philox_with_uint32_wraparound():
    """int64 emulation of uint32 products (masked high words) equals the Python-int definition, for
    seeds and counters using both 32-bit halves (counters past 2^32 and 2^40, seeds past 2^32)."""
    counters = [0, 1, 2, 2**32 - 1, 2**32, 2**32 + 1, 2**40 + 3, 7 * 2**40 - 1, 2**62 + 5]
    for seed in (0, 1, 2**32 + 7, 2**62 - 1, 0x1234_5678_9ABC_DEF0 & (2**62 - 1)):
        got = reference.philox_draw(seed, torch.tensor(counters))
        assert got.tolist() == [_draw(seed, c) for c in counters]
    # the KAT through the draw: counter words 2, 3 are zero, so only the zero vector applies directly
    assert int(reference.philox_draw(0, torch.tensor([0]))) == _PHILOX_KAT[0][2][0]


def test_torch_draw_is_philox_without_wraparound():
    """The ``torch`` draw (16-bit limb products, no int64 overflow) equals the Python-int definition and the
    reference, for counters around 2^32, 2^48 and 2^63 and seeds with both 32-bit halves non-zero."""
    counters = torch.tensor(
        [0, 1, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**32 + 1, 2**40 + 3, 2**48 - 1, 2**63 - 1]
    )
    bulk = torch.randint(0, 2**63 - 1, (4096,), generator=torch.Generator().manual_seed(0))
    for seed in (0, 2**32 + 7, 2**62 - 1, 0x1234_5678_9ABC_DEF0 & (2**62 - 1)):
        want = [_draw(seed, c) for c in counters.tolist()]
        assert torch_impl.philox_draw(seed, counters).tolist() == want
        assert torch.equal(torch_impl.philox_draw(seed, bulk), reference.philox_draw(seed, bulk))


def test_keep_mask_thresholds_the_draw():
    draws = torch.tensor([_draw(9, i) for i in range(500)])
    for thr in (0, 1, 2**31, int(0.9 * 2**32), 2**32):
        keep = reference.dropout_keep(9, thr, (500,), torch.device("cpu"))
        assert torch.equal(keep, draws >= thr)


def test_every_cpu_isa_matches_the_reference_bitwise(cpu_isas):
    """Each compiled entry point (isa.h) this CPU runs gives the reference's bits, with and without keys,
    bias and ReLU, including counters near 2^40 (keys[row] * width past 2^32) and ragged block tails."""
    ext = cpu.load_extension()
    big = torch.tensor([2**40 // 33 + i for i in (0, 1, 5, 1000)] + [3, 2**35], dtype=torch.int64)
    x = torch.randn(6, 33)
    bias = torch.randn(33)
    cases = [
        dict(x=torch.randn(1000), keys=None, bias=None, relu=False),
        dict(x=torch.randn(77, 65), keys=None, bias=bias[:1].expand(65).contiguous(), relu=True),
        dict(x=x, keys=big, bias=None, relu=False),
        dict(x=x, keys=big, bias=bias, relu=True),
    ]
    for isa in cpu_isas:
        ext.set_isa(isa)
        for c in cases:
            for dtype in (torch.float32, torch.bfloat16):
                xx = c["x"].to(dtype)
                out = ext.dropout(xx, 2**40 + 17, 2**31 + 5, 1.75, c["relu"], c["bias"], c["keys"])
                ref = reference.dropout(xx, 2**40 + 17, 2**31 + 5, 1.75, c["relu"], c["bias"], c["keys"])
                assert torch.equal(out, ref), (isa, dtype, c["x"].shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["cpu", "torch"])
def test_matches_reference_bitwise_forward_and_backward(impl, shape, dtype):
    x = torch.randn(shape).to(dtype)
    out, g = _run(x, 0.4, impl)
    out_ref, g_ref = _run(x, 0.4, "reference")
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, out_ref)
    assert torch.equal(g, g_ref)


_INT_VIEW = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float64: torch.int64}


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so NaN payloads and -0.0 compare too)."""
    return t.view(_INT_VIEW[t.dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_torch_matches_reference_bits_on_non_finite_and_signed_zero(dtype):
    """dropout and positive_scale (the relu backward) of ``torch`` keep the reference's bits for inf, NaN,
    -0.0 and negative values in the input, bias, output and gradient."""
    special = torch.tensor([float("inf"), float("-inf"), float("nan"), -0.0, 0.0, -1.5, 2.5, 1e-30])
    x = special[torch.randint(0, 8, (40, 16), generator=torch.Generator().manual_seed(1))].to(dtype)
    bias = special[torch.arange(16) % 8]
    for relu in (False, True):
        for b in (None, bias):
            args = (2**40 + 5, 2**31, 1.75, relu, b, torch.arange(40) + 2**33)
            assert torch.equal(_bits(torch_impl.dropout(x, *args)), _bits(reference.dropout(x, *args)))
    out = x.flip(0)  # the relu output (inf, NaN, +-0.0 ...) and x the incoming gradient
    got, want = torch_impl.positive_scale(out, x, 1.75), reference.positive_scale(out, x, 1.75)
    assert torch.equal(_bits(got), _bits(want))


@pytest.mark.parametrize("relu", [False, True])
def test_torch_dropout_runs_without_the_reference(monkeypatch, relu):
    """With the reference's dropout functions made to raise, ``torch`` still runs forward and backward and
    keeps exactly the elements whose Python-int Philox draw (keys past 2^32) reaches the threshold."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the torch implementation called the reference dropout")

    for name in ("dropout", "dropout_keep", "dropout_counters", "philox_draw", "positive_scale"):
        monkeypatch.setattr(reference, name, forbidden)
    keys = torch.tensor([5, 2**35, 0, 2**40 // 9 + 1])
    x = (torch.rand(4, 9) + 0.5).requires_grad_(True)  # positive: ReLU passes every kept element
    out = dropout(x, 0.5, seed=2**33 + 11, keys=keys, relu=relu, impl="torch")
    (g,) = torch.autograd.grad(out.sum(), x)
    keep = torch.tensor([[_draw(2**33 + 11, k * 9 + c) >= 2**31 for c in range(9)] for k in keys.tolist()])
    zero = torch.zeros(())
    assert torch.equal(out, torch.where(keep, x * 2.0, zero))
    assert torch.equal(g, torch.where(keep, torch.tensor(2.0), zero))
    assert 0 < int(keep.sum()) < keep.numel()


# ------------------------------------------------------------------------------- fused bias + ReLU
def _run_fused(x, bias, relu, impl, seed=5):
    """Output and gradients (x, bias) of sum(out * w) for dropout(relu?(x + bias?))."""
    x = x.detach().requires_grad_(True)
    b = None if bias is None else bias.detach().requires_grad_(True)
    torch.manual_seed(seed)
    out = dropout(x, 0.4, relu=relu, bias=b, impl=impl)
    w = (torch.arange(x.numel(), dtype=torch.float32).reshape(x.shape) % 7 - 3).to(x.dtype)
    grads = torch.autograd.grad((out * w).sum(), [x] if b is None else [x, b])
    return out.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("impl", ["cpu", "torch"])
def test_fused_bias_relu_matches_reference(impl, relu, with_bias, dtype):
    x = torch.randn(61, 129).to(dtype)  # rows that straddle the parallel chunks
    bias = torch.randn(129) if with_bias else None
    out, grads = _run_fused(x, bias, relu, impl)
    out_ref, grads_ref = _run_fused(x, bias, relu, "reference")
    assert torch.equal(out, out_ref)
    assert torch.equal(grads[0], grads_ref[0])
    if with_bias:  # a column sum of 61 terms up to ~5: the kernel sums the bf16-rounded gradient
        tol = 5e-2 if dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(grads[1], grads_ref[1], rtol=tol, atol=tol)


def test_fused_bias_relu_semantics():
    """out = keep * relu(x + b) / (1 - p); the gradient passes exactly where out > 0."""
    torch.manual_seed(0)
    x, b = torch.randn(200, 16), torch.randn(16)
    torch.manual_seed(3)
    plain = dropout(torch.ones(200, 16), 0.4, impl="cpu")  # the same seed and p: the keep mask
    (out, (gx, gb)) = _run_fused(x, b, True, "cpu", seed=3)
    v, scale = x + b, 1.0 / 0.6
    assert torch.equal(out, torch.where((plain != 0) & (v > 0), v * scale, torch.zeros(())))
    w = torch.arange(x.numel(), dtype=torch.float32).reshape(x.shape) % 7 - 3
    torch.testing.assert_close(gx, torch.where(out > 0, w * scale, torch.zeros(())))
    torch.testing.assert_close(gb, gx.sum(0))
    assert 0 < int((out > 0).sum()) < int((v > 0).sum())


def test_fused_relu_saves_only_the_output_and_eval_is_plain_relu():
    saved: list[torch.Tensor] = []
    x = torch.randn(32, 8, requires_grad=True)
    b = torch.randn(8)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = dropout(x, 0.5, relu=True, bias=b, impl="cpu")
    assert len(saved) == 1 and saved[0].shape == out.shape  # no mask, no input
    assert torch.equal(dropout(x, 0.5, training=False, relu=True, bias=b), torch.relu(x + b))
    assert torch.equal(dropout(x, 0.0, relu=True), torch.relu(x))


def test_bad_bias_raises():
    with pytest.raises(DistGNNError, match=r"^dropout bias must be a tensor of shape \(3,\) on cpu$"):
        dropout(torch.randn(4, 3), 0.5, bias=torch.zeros(4))


# ------------------------------------------------------------------------------------------ semantics
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_within_binomial_bound(p):
    """Overall and per column/row (rows keyed past 2^32): keep rates within 5 sigma of 1 - p."""
    n = 200_000
    torch.manual_seed(3)
    out = dropout(torch.ones(n), p, impl="cpu")
    kept = int((out != 0).sum())
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) < 5 * sigma, (kept, n * (1 - p), sigma)
    rows, cols = 2000, 100
    keys = torch.arange(rows, dtype=torch.int64) * 7919 + 2**33
    kept2 = dropout(torch.ones(rows, cols), p, seed=21, keys=keys, impl="cpu") != 0
    for counts, m in ((kept2.sum(0), rows), (kept2.sum(1), cols)):
        s = math.sqrt(m * p * (1 - p))
        assert float((counts.float() - m * (1 - p)).abs().max()) < 5.5 * s
    # neighbouring counters are not correlated: P(keep both) for adjacent columns ~ (1 - p)^2
    both = float((kept2[:, 1:] & kept2[:, :-1]).float().mean())
    assert abs(both - (1 - p) ** 2) < 0.01


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_output_and_gradient_use_one_mask(p):
    x = torch.rand(301, 17) + 0.5  # no zeros, so out != 0 marks exactly the kept elements
    out, g = _run(x, p, "cpu")
    kept = out != 0
    scale = 1.0 / (1.0 - p)
    zero = torch.zeros(())
    assert torch.equal(out, torch.where(kept, x * scale, zero))
    w = torch.arange(x.numel(), dtype=torch.float32).reshape(x.shape) % 7 + 1
    assert torch.equal(g, torch.where(kept, w * scale, zero))
    assert 0 < int(kept.sum()) < x.numel()


def test_same_seed_same_mask_and_new_mask_per_call():
    x = torch.randn(64, 33)
    torch.manual_seed(7)
    a, b = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(7)
    a2 = dropout(x, 0.5)
    assert torch.equal(a, a2)
    assert not torch.equal(a != 0, b != 0)


def test_result_does_not_depend_on_the_thread_count():
    x = torch.randn(300, 257)  # several parallel chunks
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = _run(x, 0.5, "cpu")
        torch.set_num_threads(2)
        two, _ = _run(x, 0.5, "cpu")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


def test_generator_is_used_instead_of_the_global_rng():
    x = torch.randn(40, 9)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = dropout(x, 0.5, generator=torch.Generator().manual_seed(9))
    assert torch.equal(torch.get_rng_state(), state)
    b = dropout(x, 0.5, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


@pytest.mark.parametrize("impl, expected", [("cpu", [(torch.int64, 128 * 64 // 64)]), ("torch", [])])
def test_backward_saves_the_mask_bits_or_the_seed(impl, expected):
    """No N x F mask is kept for the backward: the C++ kernel saves the keep mask as bits (one int64 word
    per 64 elements, 1/32 of float32 x), the other implementations only the seed (an int, eagerly)."""
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    x = torch.randn(128, 64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = dropout(x, 0.5, impl=impl)
    assert [(t.dtype, t.numel()) for t in saved] == expected
    out.sum().backward()
    assert torch.equal(x.grad, torch.where(out != 0, torch.tensor(2.0), torch.tensor(0.0)))


def _packed(keep: torch.Tensor) -> list[int]:
    """The keep mask as the kernel's 64-bit words (bit k of word j: element 64 j + k), as Python ints."""
    flat = keep.reshape(-1).tolist()
    return [sum(1 << k for k, v in enumerate(flat[j : j + 64]) if v) for j in range(0, len(flat), 64)]


def test_every_cpu_isa_keeps_the_reference_mask_as_bits(cpu_isas):
    """dropout_bits: the output of dropout and the reference's keep mask bit for bit (ragged last word
    cleared, with keys, with bias), and masked_scale applies it: the reference gradient, per ISA."""
    ext = cpu.load_extension()
    keys = torch.tensor([5, 2**35, 0, 7, 2**40 // 33], dtype=torch.int64)
    cases = [
        dict(x=torch.randn(1000), keys=None, bias=None),
        dict(x=torch.randn(77, 65), keys=None, bias=torch.randn(65)),
        dict(x=torch.randn(5, 33), keys=keys, bias=None),
        dict(x=torch.randn(3, 64), keys=None, bias=None),
    ]
    seed, thr, scale = 2**40 + 3, 2**31 + 9, 1.75
    for isa in cpu_isas:
        ext.set_isa(isa)
        for c in cases:
            for dtype in (torch.float32, torch.bfloat16):
                x, g = c["x"].to(dtype), torch.randn(c["x"].shape).to(dtype)
                out, bits = ext.dropout_bits(x, seed, thr, scale, False, c["bias"], c["keys"])
                assert torch.equal(out, ext.dropout(x, seed, thr, scale, False, c["bias"], c["keys"]))
                keep = reference.dropout_keep(seed, thr, tuple(x.shape), x.device, c["keys"])
                assert bits.dtype == torch.int64 and bits.numel() == (x.numel() + 63) // 64
                assert [w & (2**64 - 1) for w in bits.tolist()] == _packed(keep), (isa, x.shape)
                want = reference.dropout(g, seed, thr, scale, keys=c["keys"])  # the same mask on g
                assert torch.equal(ext.masked_scale(g, bits, scale), want), (isa, dtype, x.shape)


def test_masked_scale_rejects_bits_of_another_size():
    ext = cpu.load_extension()
    with pytest.raises(RuntimeError, match="masked_scale bits must be"):
        ext.masked_scale(torch.randn(130), torch.zeros(2, dtype=torch.int64), 2.0)


def test_identity_when_not_training_or_p_zero():
    x = torch.randn(10, 3)
    state = torch.get_rng_state()
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.7, training=False) is x
    assert torch.equal(torch.get_rng_state(), state)  # no seed drawn


def test_large_outputs_reuse_freed_buffers():
    """Kernel outputs >= 4 MiB come from a pool of touched, 2 MiB-aligned buffers (csrc/output.h)."""
    x = torch.randn(3584, 1024)  # 14 MiB: a size no other test asks for
    a = dropout(x, 0.5, impl="cpu")
    ptr = a.data_ptr()
    assert ptr % (2 << 20) == 0
    del a
    # The pool may already hold idle buffers that fit (this size, or up to a quarter larger): each
    # allocation takes one of them, so the freed buffer comes back before the idle ones run out.
    held = [dropout(x, 0.5, impl="cpu")]
    while held[-1].data_ptr() != ptr:
        assert len(held) <= (1 << 30) // (14 << 20), "the freed buffer never came back"
        held.append(dropout(x, 0.5, impl="cpu"))
    b = held[-1]
    assert all(t.data_ptr() % (2 << 20) == 0 for t in held)
    c = dropout(x, 0.5, impl="cpu")
    assert c.data_ptr() != b.data_ptr()  # b is alive: another buffer
    del held
    torch.manual_seed(1)
    d = dropout(x, 0.5, impl="cpu")
    torch.manual_seed(1)
    assert torch.equal(d, reference.dropout(x, int(torch.randint(0, 2**62, (1,)).item()), 2**31, 2.0))


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_p_out_of_range_raises(p):
    with pytest.raises(DistGNNError, match=rf"^dropout p must be in \[0, 1\), got {p}$"):
        dropout(torch.randn(3), p)


def test_bad_inputs_and_impls_raise():
    with pytest.raises(
        DistGNNError, match="^dropout input must be a floating-point tensor, got torch.int64$"
    ):
        dropout(torch.arange(3), 0.5)
    with pytest.raises(
        DistGNNError, match=r"^impl='cpu' supports float32 and bfloat16 x, got torch.float64$"
    ):
        dropout(torch.randn(3, dtype=torch.float64), 0.5, impl="cpu")
    with pytest.raises(
        DistGNNError, match=r"^impl='triton' supports float32, bfloat16 and float16 x, got torch.float64$"
    ):
        dropout(torch.randn(3, dtype=torch.float64), 0.5, impl="triton")
    with pytest.raises(DistGNNError, match=r"^unknown kernel impl 'fast'"):
        dropout(torch.randn(3), 0.5, impl="fast")
    # float64 works through the torch-ops implementations
    x64 = torch.randn(20, dtype=torch.float64)
    assert torch.equal(_run(x64, 0.5, "torch")[0], _run(x64, 0.5, "reference")[0])


def test_auto_selection(monkeypatch, caplog):
    dev = torch.device("cpu")
    assert api.resolve_dropout("auto", dev) == "cpu"
    assert api.resolve_dropout("auto", dev, torch.float64) == "torch"  # no float64 C++ kernel
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", "triton")  # the interpreter runs the Triton dropout on CPU
    assert api.resolve_dropout("auto", dev) == "triton"
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", "reference")
    assert api.resolve_dropout("auto", dev) == "reference"
    monkeypatch.delenv("DISTGNN_KERNEL_IMPL")
    monkeypatch.setattr(cpu, "_ext", None)
    monkeypatch.setattr(cpu, "_error", RuntimeError("dropout.cpp:1: error: boom"))
    monkeypatch.setattr(api, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="distgnn.kernels"):
        assert api.resolve_dropout("auto", dev) == "torch"
        assert api.resolve_dropout("auto", dev) == "torch"
    assert caplog.text.count("using impl='torch' (same masks)") == 1
    with pytest.raises(
        DistGNNError, match="the C\\+\\+ extension failed to build: dropout.cpp:1: error: boom"
    ):
        dropout(torch.randn(3), 0.5, impl="cpu")


# ---------------------------------------------------------------------------------------- compile
def test_torch_compile_matches_eager():
    x = torch.randn(50, 20, requires_grad=True)

    def f(h):
        return dropout(h * 2.0, 0.5, impl="cpu").sum(1)

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    torch.manual_seed(4)
    out = compiled(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.manual_seed(4)
    ref = f(x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert torch.equal(out, ref)
    assert torch.equal(g, g_ref)


# --------------------------------------------------------------------- row keys (global node ids)
@pytest.mark.parametrize("relu_bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("impl", ["cpu", "torch"])
def test_row_keys_match_reference_bitwise_forward_and_backward(impl, dtype, relu_bias):
    x = torch.randn(61, 33).to(dtype).requires_grad_(True)
    keys = torch.randperm(10_000)[:61]
    bias = torch.randn(33) if relu_bias else None
    outs = []
    for which in (impl, "reference"):
        out = dropout(x, 0.3, seed=77, keys=keys, relu=relu_bias, bias=bias, impl=which)
        (g,) = torch.autograd.grad((out.float() * torch.arange(33.0)).sum(), x)
        outs.append((out.detach(), g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_row_keys_make_the_mask_follow_the_row():
    """Element (r, c) draws counter keys[r] * F + c: permuting rows with their keys permutes the output,
    a row's mask equals its mask inside the whole matrix (keys = arange is the flat index), and a sparse
    copy of the values keyed per element (keys = row * F + col, width 1) draws the same mask."""
    x = torch.rand(40, 9) + 0.5
    whole = dropout(x, 0.5, seed=11, impl="cpu")
    assert torch.equal(dropout(x, 0.5, seed=11, keys=torch.arange(40), impl="cpu"), whole)
    rows = torch.tensor([31, 2, 17, 5])
    assert torch.equal(dropout(x[rows], 0.5, seed=11, keys=rows, impl="cpu"), whole[rows])
    r, c = torch.meshgrid(torch.arange(40), torch.arange(9), indexing="ij")
    flat = dropout(x.reshape(-1), 0.5, seed=11, keys=(r * 9 + c).reshape(-1), impl="cpu")
    assert torch.equal(flat.reshape(40, 9), whole)
    assert not torch.equal(dropout(x, 0.5, seed=12, impl="cpu"), whole)  # the seed matters


def test_explicit_seed_does_not_touch_the_rng():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = dropout(torch.ones(10, 4), 0.5, seed=3, impl="cpu")
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, reference.dropout(torch.ones(10, 4), 3, 2**31, 2.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(keys=torch.arange(5.0)), "dropout keys must be a 1-D int64 tensor (one counter per row)"),
        (dict(keys=torch.arange(4)), "dropout keys must have 5 entries on cpu, got 4"),
        (dict(seed=-1), "dropout seed must be in [0, 2^62), got -1"),
    ],
)
def test_bad_keys_or_seed(kwargs, message):
    with pytest.raises(DistGNNError, match=f"^{re.escape(message)}$"):
        dropout(torch.ones(5, 3), 0.5, **kwargs)
    with pytest.raises(DistGNNError, match=r"^dropout keys need a 2-D x"):
        dropout(torch.ones(5, 3, 2), 0.5, keys=torch.arange(5))
