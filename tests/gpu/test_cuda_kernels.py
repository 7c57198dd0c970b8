"""Every Triton op on a real GPU against the reference, forward and backward, fp32 and bf16; then the
sizes whose offsets need 64 bits (E x H or rows x F past 2^31), where the GPU's free memory allows.

Run by ``pytest -m gpu`` (benchmarks/gpu/check.sh); skipped without CUDA.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import assert_close, graph

from distgnn.kernels import CSR, dropout, edge_softmax, gspmm, reference, sddmm

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
OPTS = {
    "plain": {},
    "all": {"src_scale": 1, "dst_scale": 1, "edge_weight": 1, "bias": 1, "relu": True},
}


def _leaves(csr: CSR, width: int, opts: dict, dtype: torch.dtype, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    make = lambda *s, pos=False: (
        ((torch.rand(*s, generator=g) + 0.5) if pos else torch.randn(*s, generator=g))
        .to(dtype).cuda().requires_grad_()
    )  # fmt: skip
    kw: dict = {"x": make(csr.num_src, width)}
    if "src_scale" in opts:
        kw["src_scale"] = make(csr.num_src, pos=True)
    if "dst_scale" in opts:
        kw["dst_scale"] = make(csr.num_dst, pos=True)
    if "edge_weight" in opts:
        kw["edge_weight"] = make(csr.num_edges)
    if "bias" in opts:
        kw["bias"] = make(width)
    if opts.get("relu"):
        kw["relu"] = True
    return kw


def _run(csr, kw, reduce, impl, grad_out):
    out = gspmm(csr, reduce=reduce, impl=impl, **kw)
    leaves = {k: v for k, v in kw.items() if isinstance(v, torch.Tensor)}
    return out, dict(zip(leaves, torch.autograd.grad(out, list(leaves.values()), grad_out), strict=True))


def _f32(kw: dict, fn=lambda t: t) -> dict:
    return {
        k: fn(v.detach().float()).requires_grad_() if isinstance(v, torch.Tensor) else v
        for k, v in kw.items()
    }


@DTYPES
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize(("gname", "width"), [("powerlaw", 129), ("hubs", 3), ("empty_rows", 17)])
def test_gspmm_triton_matches_reference(gname, width, reduce, opt, dtype):
    csr = graph(gname).to("cuda")
    kw = _leaves(csr, width, OPTS[opt], dtype, seed=width)
    grad_out = torch.randn(csr.num_dst, width, device="cuda").to(dtype)
    ref, ref_g = _run(csr, _f32(kw), reduce, "reference", grad_out.float())
    mag, mag_g = _run(csr, _f32(kw, torch.abs), reduce, "reference", grad_out.float().abs())
    out, grads = _run(csr, kw, reduce, "triton", grad_out)
    assert_close(out, ref, dtype, "triton forward", mag)
    for name, want in ref_g.items():
        if reduce == "max" and name != "bias":  # ties may route a max's gradient differently: sums only
            torch.testing.assert_close(grads[name].float().sum(), want.float().sum(), rtol=2e-2, atol=1e-2)
        else:
            assert_close(grads[name], want, dtype, f"triton grad of {name}", mag_g[name])


@DTYPES
@pytest.mark.parametrize("gname", ["random", "hubs", "empty_rows"])
def test_sddmm_and_edge_softmax_triton(gname, dtype):
    csr = graph(gname).to("cuda")
    a = torch.randn(csr.num_dst, 3, device="cuda").to(dtype).requires_grad_()
    b = torch.randn(csr.num_src, 3, device="cuda").to(dtype).requires_grad_()
    up = torch.randn(csr.num_edges, 3, device="cuda").to(dtype)

    def path(impl, a_, b_, g):
        s = sddmm(csr, a_, b_, impl=impl)
        p = edge_softmax(csr, s, impl=impl)
        return (s, p, *torch.autograd.grad(p, (a_, b_), g))

    got = path("triton", a, b, up)
    want = path("reference", *(t.detach().float().requires_grad_() for t in (a, b)), up.float())
    for name, x, y in zip(("scores", "softmax", "grad a", "grad b"), got, want, strict=True):
        tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
        torch.testing.assert_close(x.float(), y.float(), **tol, msg=lambda m, n=name: f"{n}: {m}")


@DTYPES
@pytest.mark.parametrize("variant", ["plain", "keys", "bias_relu"])
def test_triton_dropout_is_bit_identical_to_the_reference(variant, dtype):
    x = torch.randn(301, 67).to(dtype)
    kw: dict = {}
    if variant == "keys":
        kw["keys"] = torch.arange(301) * 7 + 2**40
    if variant == "bias_relu":
        kw.update(bias=torch.randn(67).to(dtype), relu=True)
    cuda_kw = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    xg = x.cuda().requires_grad_()
    out = dropout(xg, 0.4, seed=99, impl="triton", **cuda_kw)
    (gx,) = torch.autograd.grad(out, xg, torch.ones_like(out))
    xr = x.clone().requires_grad_()
    ref = dropout(xr, 0.4, seed=99, impl="reference", **kw)
    (gr,) = torch.autograd.grad(ref, xr, torch.ones_like(ref))
    assert torch.equal(out.cpu(), ref) and torch.equal(gx.cpu(), gr)


# -- sizes that need 64-bit offsets ------------------------------------------------------------------
def _need(gib: float) -> None:
    free, _ = torch.cuda.mem_get_info()
    if free < gib * 2**30:
        pytest.skip(f"needs {gib:.0f} GiB of free GPU memory, {free / 2**30:.1f} GiB free")


def _fan_in_csr(num_dst: int, num_src: int, num_edges: int) -> CSR:
    """Edge e goes from source e % num_src to destination e * num_dst // num_edges (sorted rows)."""
    e = torch.arange(num_edges, device="cuda")
    dst = e * num_dst // num_edges
    indptr = torch.searchsorted(dst, torch.arange(num_dst + 1, device="cuda"))
    return CSR(indptr, e % num_src, num_src, validate=False)


def _sample(n: int) -> torch.Tensor:
    """Edge or row ids to check: the last 4096 (past 2^31 when flattened) and some spread out."""
    return torch.cat([torch.arange(0, n, max(n // 4096, 1)), torch.arange(max(n - 4096, 0), n)]).cuda()


def test_sddmm_and_softmax_past_2_31_elements():
    heads, e = 16, (1 << 27) + 4099  # E * H > 2^31
    _need(16)
    csr = _fan_in_csr(1024, 1024, e)
    a = torch.randn(1024, heads, device="cuda").bfloat16()
    b = torch.randn(1024, heads, device="cuda").bfloat16()
    s = sddmm(csr, a, b, impl="triton")
    ids = _sample(e)
    rows = torch.searchsorted(csr.indptr, ids, right=True) - 1
    want = (a.float()[rows] + b.float()[csr.indices[ids]]).bfloat16()
    assert torch.equal(s[ids], want)
    del a, b
    p = edge_softmax(csr, s, impl="triton")
    del s
    last = csr.num_dst - 1  # the last row's probabilities sum to 1
    lo, hi = int(csr.indptr[last]), int(csr.indptr[last + 1])
    torch.testing.assert_close(p[lo:hi].float().sum(0), torch.ones(heads, device="cuda"), atol=0.1, rtol=0)


def test_edge_dot_past_2_31_elements():
    from distgnn.kernels import ops

    heads, e = 16, (1 << 27) + 4099
    _need(16)
    csr = _fan_in_csr(1024, 1024, e)
    a = torch.randn(1024, heads, 2, device="cuda")
    b = torch.randn(1024, heads, 2, device="cuda")
    out = ops.edge_dot_op(csr.indptr, csr.indices, a, b, "triton")
    ids = _sample(e)
    rows = torch.searchsorted(csr.indptr, ids, right=True) - 1
    want = (a[rows] * b[csr.indices[ids]]).sum(-1)
    torch.testing.assert_close(out[ids], want, rtol=1e-5, atol=1e-5)


def test_gspmm_rows_times_width_past_2_31():
    rows, width, src = (1 << 21) + 77, 1024, 64  # rows * width > 2^31
    _need(12)
    csr = _fan_in_csr(rows, src, rows)  # one edge per row, from source row % 64
    x = torch.randn(src, width, device="cuda").bfloat16()
    out = gspmm(csr, x, impl="triton")
    ids = _sample(rows)
    assert torch.equal(out[ids], x[ids % src])


def test_dropout_past_2_31_elements():
    rows, width = (1 << 21) + 5, 1024
    _need(12)
    x = torch.ones(rows, width, device="cuda").bfloat16()
    out = dropout(x, 0.5, seed=4242, impl="triton")
    tail = out[-3:].cpu()
    keys = torch.arange(rows - 3, rows)  # counters keys[row] * width + col = flat indices of the tail
    want = reference.dropout(torch.ones(3, width).bfloat16(), 4242, 2**31, 2.0, keys=keys)
    assert torch.equal(tail, want)
