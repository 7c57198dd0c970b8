"""Loading the C++ extension: compile-safe first use, cached builds imported directly, the build command.

The torch.compile cases run in a fresh interpreter each: in this process an earlier test has usually
loaded the extension already, which is exactly what hid the "first call under torch.compile" bug.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from distgnn.kernels import build, cpu
from distgnn.kernels import cache as kernel_cache

pytestmark = pytest.mark.skipif(not cpu.is_available(), reason="the C++ extension does not build here")


def run_fresh(code: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (nothing loaded yet); fail the test on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.timeout(300)
def test_first_gspmm_call_under_torch_compile():
    out = run_fresh("""
        import torch
        from distgnn.kernels import CSR, gspmm, cpu
        assert cpu._ext is None
        g = torch.Generator().manual_seed(0)
        dst = torch.randint(0, 40, (300,), generator=g)
        src = torch.randint(0, 50, (300,), generator=g)
        csr = CSR.from_edges(src, dst, num_dst=40, num_src=50)
        csr.transposed()
        x = torch.randn(50, 8, generator=g, requires_grad=True)
        f = lambda h: gspmm(csr, h, relu=True, impl="cpu").sum(1)
        out = torch.compile(f, backend="aot_eager", fullgraph=True)(x)
        (gx,) = torch.autograd.grad(out.sum(), x)
        ref = f(x)
        (gr,) = torch.autograd.grad(ref.sum(), x)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(gx, gr)
        print("ok", cpu._ext is not None)
    """)
    assert out.stdout.split() == ["ok", "True"]


@pytest.mark.timeout(300)
def test_first_dropout_call_under_torch_compile():
    out = run_fresh("""
        import torch
        from distgnn.kernels import dropout, cpu
        assert cpu._ext is None
        x = torch.randn(64, 16, requires_grad=True)
        f = lambda h: dropout(h * 2.0, 0.5, impl="auto").sum(1)
        torch.manual_seed(3)
        out = torch.compile(f, backend="aot_eager", fullgraph=True)(x)
        torch.manual_seed(3)
        ref = f(x)
        assert torch.equal(out, ref)
        print("ok", cpu._ext is not None)
    """)
    assert out.stdout.split() == ["ok", "True"]


@pytest.mark.timeout(120)
def test_a_cached_build_is_imported_without_cpp_extension_or_output():
    # No compile, no ninja check, and not even an import of torch.utils.cpp_extension (whose import
    # prints "No CUDA runtime is found" on CUDA builds of torch without a GPU).
    out = run_fresh("""
        import sys
        from distgnn.kernels import cpu
        ext = cpu.load_extension()
        print(ext.__file__ == str(cpu.library_path()), "torch.utils.cpp_extension" in sys.modules)
    """)
    assert out.stdout.split() == ["True", "False"]
    assert out.stderr == ""


def test_the_no_cuda_warning_is_dropped_and_others_kept(caplog):
    logger = logging.getLogger("torch.utils.cpp_extension")
    with caplog.at_level(logging.WARNING, logger="torch.utils.cpp_extension"):
        with cpu.quiet_cpp_extension():
            logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
            logger.warning("some other warning")
        logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/opt/cuda")
    assert [r.getMessage() for r in caplog.records] == [
        "some other warning",
        "No CUDA runtime is found, using CUDA_HOME='/opt/cuda'",
    ]


def test_the_name_changes_with_torch_build(monkeypatch):
    before = cpu.ext_name()
    monkeypatch.setattr(kernel_cache, "torch_build", lambda: "0.0.0-other abc")
    assert cpu.ext_name() != before
    assert cpu.ext_name().startswith("distgnn_cpu_")


def test_cache_root_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cpu.CACHE_ENV, str(tmp_path / "k"))
    assert cpu.library_path() == tmp_path / "k" / cpu.ext_name() / f"{cpu.ext_name()}.so"
    monkeypatch.delenv(cpu.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cpu.cache_root() == tmp_path / "xdg" / "distgnn" / "kernels"


@pytest.mark.timeout(120)
def test_build_command_says_where_the_library_is():
    out = run_fresh("from distgnn.kernels.build import main; raise SystemExit(main([]))")
    assert out.stdout.startswith("distgnn.kernels: CPU kernels already built: ")
    assert out.stdout.strip().endswith(str(cpu.library_path()))


def test_build_command_failure_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cpu, "_ext", None)
    monkeypatch.setattr(cpu, "_error", RuntimeError("aggregate.cpp:7: error: no compiler"))
    assert build.main(["--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "distgnn.kernels.build: error: impl='cpu': the C++ extension failed to build: "
        "aggregate.cpp:7: error: no compiler\n"
    )


@pytest.mark.parametrize(
    ("kernel", "env", "cuda", "expected"),
    [
        ("auto", "", False, True),
        ("cpu", "", True, True),
        ("auto", "", True, False),
        ("reference", "", False, False),
        ("torch", "", False, False),
        ("auto", "reference", False, False),
        ("auto", "cpu", True, True),
    ],
)
def test_which_runs_need_the_cpu_kernels(monkeypatch, kernel, env, cuda, expected):
    monkeypatch.setenv("DISTGNN_KERNEL_IMPL", env)
    monkeypatch.setattr("torch.cuda.is_available", lambda: cuda)
    assert build.needs_cpu_kernels(kernel) is expected
