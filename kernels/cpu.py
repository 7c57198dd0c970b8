"""The C++/OpenMP implementation: JIT-built once with torch.utils.cpp_extension and cached on disk.

The extension name carries a hash of the source, so a changed kernel never loads a stale build and two
checkouts with different sources do not fight over one cache entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from distgnn.errors import DistGNNError

log = logging.getLogger("distgnn.kernels")

_CSRC = Path(__file__).parent / "csrc"
_SOURCES = [_CSRC / name for name in ("aggregate.cpp", "dropout.cpp")]
_HEADERS = sorted(_CSRC.glob("*.h"))  # hashed with the sources: a header change must rebuild
_CFLAGS = ["-O3", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
_lock = threading.Lock()
_ext: ModuleType | None = None
_error: BaseException | None = None


def _ext_name() -> str:
    h = hashlib.sha256()
    for src in _SOURCES + _HEADERS:
        h.update(src.read_bytes())
    h.update(" ".join(_CFLAGS + _LDFLAGS).encode())
    return f"distgnn_cpu_{h.hexdigest()[:12]}"


def load_extension() -> ModuleType:
    """Build (first time on this machine) and load the extension; raise DistGNNError if the build fails."""
    global _ext, _error
    if _ext is not None:  # lock-free fast path (also what torch.compile traces through)
        return _ext
    with _lock:
        if _ext is not None:
            return _ext
        if _error is not None:
            raise DistGNNError(
                f"impl='cpu': the C++ extension failed to build: {_last_line(_error)}"
            ) from _error
        from torch.utils.cpp_extension import _get_build_directory, load

        name = _ext_name()
        build_dir = _get_build_directory(name, verbose=False)
        if not os.path.exists(os.path.join(build_dir, f"{name}.so")):
            print("distgnn.kernels: compiling the CPU kernels (once, ~1 min)...", file=sys.stderr, flush=True)
        try:
            _ext = load(
                name=name,
                sources=[str(s) for s in _SOURCES],
                extra_cflags=_CFLAGS,
                extra_ldflags=_LDFLAGS,
                verbose=False,
            )
        except Exception as exc:  # a compiler or loader failure: remember it, report it on every request
            _error = exc
            raise DistGNNError(f"impl='cpu': the C++ extension failed to build: {_last_line(exc)}") from exc
        return _ext


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def is_available() -> bool:
    """True if the extension builds and loads (builds it on first call)."""
    try:
        load_extension()
    except DistGNNError:
        return False
    return True


def _f32(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.to(torch.float32).contiguous()


def spmm(indptr, indices, x, w, ss, ds, bias, mean: bool, relu: bool) -> Tensor:
    return load_extension().spmm(
        indptr, indices, x.contiguous(), _f32(w), _f32(ss), _f32(ds), _f32(bias), mean, relu
    )


def spmm_max(indptr, indices, x, w, ss, ds, bias, relu: bool) -> tuple[Tensor, Tensor]:
    return load_extension().spmm_max(
        indptr, indices, x.contiguous(), _f32(w), _f32(ss), _f32(ds), _f32(bias), relu
    )


def edge_dot(indptr, indices, a, b) -> Tensor:
    return load_extension().edge_dot(indptr, indices, a.contiguous(), b.contiguous())


def sddmm(indptr, indices, a, b) -> Tensor:
    return load_extension().sddmm(indptr, indices, _f32(a), _f32(b)).to(a.dtype)


def edge_softmax(indptr, scores) -> Tensor:
    return load_extension().edge_softmax(indptr, _f32(scores)).to(scores.dtype)


def edge_softmax_backward(indptr, out, grad) -> Tensor:
    return load_extension().edge_softmax_backward(indptr, _f32(out), _f32(grad)).to(out.dtype)


def dropout(
    x: Tensor, seed: int, threshold: int, scale: float, relu: bool, bias: Tensor | None, keys: Tensor | None
) -> Tensor:
    k = None if keys is None else keys.to(torch.int64).contiguous()
    return load_extension().dropout(x.contiguous(), seed, threshold, scale, relu, _f32(bias), k)


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    return load_extension().positive_scale(out.contiguous(), grad.contiguous(), scale)
