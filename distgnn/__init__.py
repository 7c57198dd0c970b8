"""distgnn: distributed full-graph GNN training for PyTorch.

The Python API (``docs/training.md``, "Python API"): :func:`fit`, :class:`TrainConfig`,
:func:`register_model`, :class:`TrainResult`. They are imported on first use (PEP 562), so ``import
distgnn`` stays cheap and torch-free for the CLI's commands that do not train.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it. Imported by name on first use, not by an import statement:
# modules of every layer import this package (``import distgnn``, ``from distgnn import jsonio``), and none
# may import the layers above them (import-linter, pyproject.toml).
_LAZY = {
    "fit": "distgnn.runtime.api",
    "TrainConfig": "distgnn.config",
    "register_model": "distgnn.models.registry",
    "TrainResult": "distgnn.train",
}
__all__ = ["TrainConfig", "TrainResult", "__version__", "fit", "register_model"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'distgnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
