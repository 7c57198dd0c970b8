"""Where the C++ kernels' build lives and what it is called, answered without importing torch.

The extension's name hashes its sources, headers, compiler flags and torch's build (:func:`torch_build`),
so any change rebuilds. None of that needs torch itself, so a launcher can ask whether this node already
holds the build in a fraction of a second:
``python -m distgnn.kernels.cache`` exits 0 if it does, 1 if not, and only then does ``launch/torchrun.sh``
run ``python -m distgnn.kernels.build``, which imports torch (3-10 s on a busy machine, before every job).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

CACHE_ENV = "DISTGNN_KERNEL_CACHE"
CFLAGS = ("-O3", "-fopenmp")
LDFLAGS = ("-fopenmp",)


def csrc_dir() -> Path:
    """The kernels' C++ sources, beside this file."""
    return Path(__file__).resolve().parent / "csrc"


def sources() -> list[Path]:
    return [csrc_dir() / name for name in ("aggregate.cpp", "dropout.cpp")]


def headers() -> list[Path]:
    return sorted(csrc_dir().glob("*.h"))  # hashed with the sources: a header change must rebuild


def torch_build() -> str:
    """The installed torch's full version and commit, e.g. ``2.14.1+cu130 5a6e1c0...``, read from
    ``torch/version.py`` without importing torch.

    The one key of a build, for the kernels and the launchers' check alike. It is ``torch.__version__``
    (local label included: a ``+cpu`` and a ``+cu130`` build of one release are different libraries)
    plus the commit. The package metadata's version is no key: a wheel's may lack the label that
    ``torch.__version__`` has (``2.14.1`` vs ``2.14.1+cu130``).
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "none"
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    fields = {"__version__": "unknown", "git_version": "unknown"}
    for node in ast.parse(path.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id in fields and isinstance(node.value, ast.Constant):
            fields[target.id] = str(node.value.value)
    return f"{fields['__version__']} {fields['git_version']}"


def ext_name(build: str | None = None) -> str:
    """The extension's module name: ``distgnn_cpu_<hash of sources, flags and torch's build>``.

    ``build`` defaults to :func:`torch_build`, the installed torch's."""
    h = hashlib.sha256()
    for src in sources() + headers():
        h.update(src.read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    h.update((torch_build() if build is None else build).encode())
    return f"distgnn_cpu_{h.hexdigest()[:12]}"


def cache_root() -> Path:
    """Where builds live (one sub-directory per extension name)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "distgnn" / "kernels"


def library_path(build: str | None = None) -> Path:
    """The shared library of the current sources for that torch build (it may not exist yet)."""
    name = ext_name(build)
    return cache_root() / name / f"{name}.so"


def main() -> int:
    """Exit 0 if the installed torch's build of the current sources is in the cache, else 1."""
    if importlib.util.find_spec("torch") is None:
        return 1
    return 0 if library_path().is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
