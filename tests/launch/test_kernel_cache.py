"""``python -m distgnn.kernel_cache``: launch/torchrun.sh's check for a prebuilt extension, without torch."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from distgnn import kernel_cache
from distgnn.kernels import cpu

# exit 3 if answering imported torch
CHECK = (
    "import sys; "
    "from distgnn import kernel_cache as k; r = k.main(); "
    "sys.exit(3 if 'torch' in sys.modules else r)"
)


def test_the_check_names_the_extensions_library():
    assert kernel_cache.library_path(importlib.metadata.version("torch")) == cpu.library_path()


def test_the_check_finds_a_build_without_importing_torch(monkeypatch, tmp_path):
    monkeypatch.setenv(kernel_cache.CACHE_ENV, str(tmp_path))
    check = [sys.executable, "-c", CHECK]
    assert subprocess.run(check, timeout=60).returncode == 1  # empty cache: build needed
    lib = cpu.library_path()
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    assert subprocess.run(check, timeout=60).returncode == 0
