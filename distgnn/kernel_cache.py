"""Where the C++ kernels' build lives and what it is called, answered without importing torch.

The extension's name hashes its sources, headers, compiler flags and torch's version, so any change
rebuilds. None of that needs torch itself (its version comes from the installed package's metadata), so
a launcher can ask whether this node already holds the build in a fraction of a second:
``python -m distgnn.kernel_cache`` exits 0 if it does, 1 if not, and only then does ``launch/torchrun.sh``
run ``python -m distgnn.kernels.build``, which imports torch (3-10 s on a busy machine, before every job).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

CACHE_ENV = "DISTGNN_KERNEL_CACHE"
CFLAGS = ("-O3", "-fopenmp")
LDFLAGS = ("-fopenmp",)


def csrc_dir() -> Path:
    """The kernels' C++ sources, found without importing ``distgnn.kernels`` (which imports torch)."""
    spec = importlib.util.find_spec("distgnn.kernels")
    return Path(next(iter(spec.submodule_search_locations))) / "csrc"


def sources() -> list[Path]:
    return [csrc_dir() / name for name in ("aggregate.cpp", "dropout.cpp")]


def headers() -> list[Path]:
    return sorted(csrc_dir().glob("*.h"))  # hashed with the sources: a header change must rebuild


def ext_name(torch_version: str) -> str:
    """The extension's module name: ``distgnn_cpu_<hash of sources, flags and torch version>``."""
    h = hashlib.sha256()
    for src in sources() + headers():
        h.update(src.read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    h.update(torch_version.encode())
    return f"distgnn_cpu_{h.hexdigest()[:12]}"


def cache_root() -> Path:
    """Where builds live (one sub-directory per extension name)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "distgnn" / "kernels"


def library_path(torch_version: str) -> Path:
    """The shared library of the current sources for that torch (it may not exist yet)."""
    name = ext_name(torch_version)
    return cache_root() / name / f"{name}.so"


def main() -> int:
    """Exit 0 if the installed torch's build of the current sources is in the cache, else 1."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return 1
    return 0 if library_path(version).is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
