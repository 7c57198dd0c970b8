"""Every gspmm implementation against the reference: forward values and gradients of every input."""

from __future__ import annotations

import zlib

import pytest
import torch
from kernel_cases import GRAPHS, assert_close, graph, needs_triton_interp

from distgnn.kernels import CSR, gspmm, reference

REDUCES = ["sum", "mean", "max"]
WIDTHS = [1, 3, 17, 128, 129]
OPTIONS = {
    "plain": (),
    "scales": ("src_scale", "dst_scale"),
    "weight": ("edge_weight",),
    "bias_relu": ("bias", "relu"),
    "all": ("src_scale", "dst_scale", "edge_weight", "bias", "relu"),
}


def make_inputs(
    csr: CSR, shape: tuple[int, ...], opts, dtype: torch.dtype, seed: int, per_head: bool = False
):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g).to(dtype).requires_grad_()
    pos = lambda *s: (torch.rand(*s, generator=g) + 0.5).to(dtype).requires_grad_()
    kw: dict = {"x": rnd(csr.num_src, *shape)}
    if "src_scale" in opts:
        kw["src_scale"] = pos(csr.num_src)
    if "dst_scale" in opts:
        kw["dst_scale"] = pos(csr.num_dst)
    if "edge_weight" in opts:
        kw["edge_weight"] = rnd(csr.num_edges, shape[0]) if per_head else rnd(csr.num_edges)
    if "bias" in opts:
        kw["bias"] = rnd(*shape)
    if "relu" in opts:
        kw["relu"] = True
    return kw


def run(csr: CSR, kw: dict, reduce: str, impl: str, grad_out: torch.Tensor | None, backward: bool = True):
    x = kw["x"]
    out = gspmm(csr, reduce=reduce, impl=impl, **kw)
    if not backward:
        return out, {}
    leaves = {k: v for k, v in kw.items() if isinstance(v, torch.Tensor)}
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out, allow_unused=True)
    assert out.shape == (csr.num_dst,) + tuple(x.shape[1:])
    return out, dict(zip(leaves, grads, strict=True))


def _as_f32(kw: dict, fn=lambda t: t) -> dict:
    """The same inputs in float32 (optionally transformed, e.g. abs), as fresh leaves."""
    return {
        k: fn(v.detach().float()).requires_grad_() if isinstance(v, torch.Tensor) else v
        for k, v in kw.items()
    }


def check(
    impl: str, gname: str, shape, reduce: str, opts, dtype: torch.dtype, per_head: bool = False
) -> None:
    """``impl`` in ``dtype`` against the reference in float32 on the same values, element by element.

    The per-element bound scales with the sum of |terms| behind each element: the reference on |inputs|.
    """
    csr = graph(gname)
    # A seed fixed by the case (str hash() differs per interpreter: a random seed could draw tied maxima)
    seed = zlib.crc32(repr((gname, shape, reduce, opts)).encode()) % 1000
    kw = make_inputs(csr, shape, opts, dtype, seed=seed, per_head=per_head)
    grad_out = torch.randn((csr.num_dst, *shape), generator=torch.Generator().manual_seed(7)).to(dtype)
    ref_out, ref_grads = run(csr, _as_f32(kw), reduce, "reference", grad_out.float())
    mag_out, mag_grads = run(csr, _as_f32(kw, torch.abs), reduce, "reference", grad_out.float().abs())
    if reduce == "max":  # the kernels send a max's gradient to one edge, the reference splits ties
        assert_no_ties(csr, _as_f32(kw), what=f"{gname} inputs")
    out, grads = run(csr, kw, reduce, impl, grad_out)
    assert_close(out, ref_out, dtype, f"{impl} forward", mag_out)
    for name, ref_g in ref_grads.items():
        assert_close(grads[name], ref_g, dtype, f"{impl} grad of {name}", mag_grads[name])


def assert_no_ties(csr: CSR, kw: dict, what: str) -> None:
    """No output element whose maximum two edges reach with different gradients (the test case must be
    unambiguous): duplicate edges from one source tie harmlessly unless edge weights take the gradient."""
    x = kw["x"].detach()
    w = kw.get("edge_weight")
    w = None if w is None else w.detach().reshape(csr.num_edges, 1 if w.dim() == 1 else w.shape[1])
    ss = kw.get("src_scale")
    x3 = x if x.dim() == 3 else x[:, None, :]
    msg = reference.messages(csr.indices, x3, w, None if ss is None else ss.detach())
    rows = csr.row_ids().long()[:, None, None].expand_as(msg)  # scatter/gather take int64 indices
    top = torch.full((csr.num_dst, *msg.shape[1:]), float("-inf")).scatter_reduce(0, rows, msg, "amax")
    wins = msg == top.gather(0, rows)
    # the winning "identity": the edge when edge weights take gradients, else its source
    ident = torch.arange(csr.num_edges) if w is not None else csr.indices.long()
    ident = ident[:, None, None].expand_as(msg)
    big = torch.iinfo(torch.int64).max
    lo = torch.full(top.shape, big).scatter_reduce(0, rows, torch.where(wins, ident, big), "amin")
    hi = torch.full(top.shape, -1).scatter_reduce(0, rows, torch.where(wins, ident, -1), "amax")
    tied = (hi >= 0) & (lo != hi)
    assert not tied.any(), f"{what}: {int(tied.sum())} tied maxima make the max gradient ambiguous"


# cpu and torch: every graph x reduce x option set, widths cycling through the odd sizes.
FULL = [
    pytest.param(g, WIDTHS[k % len(WIDTHS)], r, o, id=f"{g}-w{WIDTHS[k % len(WIDTHS)]}-{r}-{o}")
    for k, (g, r, o) in enumerate((g, r, o) for g in GRAPHS for r in REDUCES for o in OPTIONS)
]


@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize(("gname", "width", "reduce", "opt"), FULL)
def test_gspmm_matches_reference(impl, gname, width, reduce, opt):
    check(impl, gname, (width,), reduce, OPTIONS[opt], torch.float32)


@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("reduce", REDUCES)
def test_gspmm_widths_and_dtypes(impl, dtype, width, reduce):
    check(impl, "powerlaw", (width,), reduce, OPTIONS["all"], dtype)


@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("per_head", [True, False], ids=["per_head_w", "shared_w"])
def test_gspmm_multi_head(impl, dtype, reduce, per_head):
    check(impl, "duplicates", (3, 5), reduce, OPTIONS["all"], dtype, per_head=per_head)


TRITON = [
    pytest.param(g, w, r, o, id=f"{g}-w{w}-{r}-{o}")
    for g, w in [("random", 3), ("empty_rows", 17), ("single", 1), ("single_empty", 3), ("duplicates", 5)]
    for r in REDUCES
    for o in (("plain", "all") if g == "random" else ("all",))
] + [pytest.param("bipartite", w, "sum", "all", id=f"bipartite-w{w}-sum-all") for w in (1, 129)]


@needs_triton_interp
@pytest.mark.parametrize(("gname", "width", "reduce", "opt"), TRITON)
def test_gspmm_triton_interpreter(gname, width, reduce, opt):
    check("triton", gname, (width,), reduce, OPTIONS[opt], torch.float32)


@needs_triton_interp
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduce", REDUCES)
def test_gspmm_triton_interpreter_hub_rows(reduce, dtype):
    """Rows of in-degree 33, 40, 70 and 1100 make the EDGES-wide edge loop run 3 to 69 steps (the other
    graphs have in-degree <= 12: one step); rows without edges sit between them."""
    check("triton", "hubs", (2,), reduce, OPTIONS["all"], dtype)


@needs_triton_interp
@pytest.mark.parametrize("reduce", REDUCES)
def test_gspmm_triton_interpreter_bf16_and_heads(reduce):
    check("triton", "duplicates", (4,), reduce, OPTIONS["all"], torch.bfloat16)
    check("triton", "random", (2, 3), reduce, OPTIONS["all"], torch.float32, per_head=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("impl", ["triton", "torch"])
@pytest.mark.parametrize("reduce", REDUCES)
def test_gspmm_cuda_matches_reference(impl, reduce):
    csr = graph("powerlaw").to("cuda")
    kw = make_inputs(csr, (129,), OPTIONS["all"], torch.float32, seed=3)
    kw = {
        k: (v.detach().cuda().requires_grad_() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()
    }
    ref_out, _ = run(csr, kw, reduce, "reference", None, backward=False)
    grad_out = torch.randn_like(ref_out)
    ref_out, ref_grads = run(csr, kw, reduce, "reference", grad_out)
    out, grads = run(csr, kw, reduce, impl, grad_out)
    assert_close(out, ref_out, torch.float32, "cuda forward")
    for name, ref_g in ref_grads.items():
        assert_close(grads[name], ref_g, torch.float32, f"cuda grad of {name}")


def test_reference_passes_gradcheck():
    """The oracle itself is right: finite differences in float64 through every option."""
    csr = graph("duplicates")
    for reduce in REDUCES:
        kw = make_inputs(csr, (3,), OPTIONS["all"], torch.float64, seed=11)
        kw["relu"] = False  # ReLU kinks break finite differences
        names = [k for k, v in kw.items() if isinstance(v, torch.Tensor)]
        fn = lambda *ts, r=reduce, ns=tuple(names): gspmm(
            csr, reduce=r, impl="reference", relu=False, **dict(zip(ns, ts, strict=True))
        )
        assert torch.autograd.gradcheck(fn, [kw[k] for k in names], fast_mode=True)


def test_no_grad_forward_skips_the_transpose():
    csr = graph("random")
    x = torch.randn(csr.num_src, 8)
    with torch.no_grad():
        gspmm(csr, x, impl="cpu")
    assert csr._transposed is None
    gspmm(csr, x.requires_grad_(), impl="cpu").sum().backward()
    assert csr._transposed is not None


def test_mean_of_empty_row_and_epilogue_values():
    """Concrete values: empty rows give the epilogue of 0, mean divides by the in-degree."""
    csr = CSR(torch.tensor([0, 0, 2, 3]), torch.tensor([0, 1, 1]), 2)
    x = torch.tensor([[1.0, -4.0], [3.0, 2.0]])
    bias = torch.tensor([0.5, -10.0])
    for impl in ("reference", "cpu", "torch"):
        out = gspmm(csr, x, reduce="mean", bias=bias, relu=True, impl=impl)
        assert torch.equal(out, torch.tensor([[0.5, 0.0], [2.5, 0.0], [3.5, 0.0]])), impl
        out = gspmm(csr, x, reduce="max", dst_scale=torch.tensor([1.0, 2.0, -1.0]), impl=impl)
        assert torch.equal(out, torch.tensor([[0.0, 0.0], [6.0, 4.0], [-3.0, -2.0]])), impl
