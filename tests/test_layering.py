"""The package's layering holds: import-linter's contracts in pyproject.toml (layers, the foundation
modules, no cycles between a folder's modules) pass on the package as it installs.

``distgnn.kernels`` and ``distgnn.partitioning`` live in the top-level ``kernels/`` and ``partitioning/``
folders (pyproject's package-dir), which import-linter cannot follow, so the package is assembled in a
temporary directory first, the way setuptools installs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def assemble(root: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    shutil.copytree(REPO / "distgnn", root / "distgnn", ignore=ignore)
    shutil.copytree(REPO / "kernels", root / "distgnn" / "kernels", ignore=ignore)
    shutil.copytree(REPO / "partitioning", root / "distgnn" / "partitioning", ignore=ignore)
    return root


@pytest.mark.timeout(120)
def test_the_import_contracts_hold(tmp_path):
    pytest.importorskip("importlinter", reason="import-linter is a dev extra")
    root = assemble(tmp_path)
    # cwd = the assembled copy: it comes first on sys.path, before the editable install
    proc = subprocess.run(
        [sys.executable, "-c", LINT, str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
