"""``python -m distgnn.kernels.cache``: launch/torchrun.sh's check for a prebuilt extension, without torch.

The check and the kernels key the build by one function (``kernel_cache.torch_build``), so they agree under
any torch, including builds whose version carries a local label (``2.14.1+cu130``, ``2.13.0+cpu``) that
the wheel's package metadata lacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from distgnn.kernels import cache as kernel_cache
from distgnn.kernels import cpu

# exit 3 if answering imported torch
CHECK = (
    "import sys; "
    "from distgnn.kernels import cache as k; r = k.main(); "
    "sys.exit(3 if 'torch' in sys.modules else r)"
)


def test_the_key_is_the_running_torchs_version_and_commit():
    assert kernel_cache.torch_build() == f"{torch.__version__} {torch.version.git_version}"
    assert kernel_cache.library_path() == cpu.library_path()


def test_the_check_finds_a_build_without_importing_torch(monkeypatch, tmp_path):
    monkeypatch.setenv(kernel_cache.CACHE_ENV, str(tmp_path))
    check = [sys.executable, "-c", CHECK]
    assert subprocess.run(check, timeout=60).returncode == 1  # empty cache: build needed
    lib = cpu.library_path()
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    assert subprocess.run(check, timeout=60).returncode == 0


def test_a_local_version_label_is_part_of_the_key(tmp_path):
    """A CUDA wheel as pip installs it: metadata ``2.14.1``, ``torch.__version__`` ``2.14.1+cu130``. The key
    carries the label, read without importing the package (its ``__init__`` here would fail)."""
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("raise ImportError('torch must not be imported')\n")
    (site / "torch" / "version.py").write_text(
        textwrap.dedent("""\
            from typing import Optional
            __all__ = ['__version__', 'git_version']
            __version__ = '2.14.1+cu130'
            cuda: Optional[str] = '13.0'
            git_version = '5a6e1c0f'
            """)
    )
    info = site / "torch-2.14.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.14.1\n")
    code = "from distgnn.kernels import cache as k; print(k.torch_build()); print(k.library_path().name)"
    env = {"PYTHONPATH": str(site), kernel_cache.CACHE_ENV: str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    build, name = out.stdout.split()[:2], out.stdout.split()[2]
    assert build == ["2.14.1+cu130", "5a6e1c0f"]
    assert name == f"{kernel_cache.ext_name('2.14.1+cu130 5a6e1c0f')}.so"
    lib = tmp_path / "cache" / name.removesuffix(".so") / name
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    assert subprocess.run([sys.executable, "-c", CHECK], env=env, timeout=60).returncode == 0
