"""Importing distgnn's kernels or trainer loads neither torch._dynamo nor Triton.

Both cost seconds of CPU per process (every launched rank pays it), and Triton's language module must be
imported after TRITON_INTERPRET is set (tests/kernels/conftest.py): imported earlier, `tl.randint` is a
compiled-only function and every interpreted Triton dropout fails. A module-level `torch.compiler`
decorator in kernels/cpu.py, imported eagerly by kernels/select.py, did exactly that in a full run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_importing_kernels_and_trainer_loads_no_dynamo_or_triton():
    code = (
        "import sys, distgnn.kernels, distgnn.train\n"
        "print(','.join(m for m in ('torch._dynamo', 'triton') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=True
    )
    assert out.stdout.strip() == "", f"loaded at import: {out.stdout.strip()}"
