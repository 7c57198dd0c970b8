"""The C++/OpenMP implementation: built once per machine with torch.utils.cpp_extension, cached on disk.

The extension name carries a hash of the sources, the compiler flags and the torch version, so a changed
kernel or a new torch never loads a stale build and two checkouts do not fight over one cache entry.
A cached build is imported directly (no ninja check, no torch.utils.cpp_extension import, so none of its
CUDA warnings on CPU machines); only a missing one is compiled, under torch's file lock. Build ahead of
training with ``python -m distgnn.kernels.build`` (``make install`` and ``distgnn train --nproc`` do).
The cache is ``$DISTGNN_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/distgnn/kernels`` (``~/.cache/...``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.kernels import cache as kernel_cache

log = logging.getLogger("distgnn.kernels")

CACHE_ENV = kernel_cache.CACHE_ENV
_SOURCES = kernel_cache.sources()
_CFLAGS, _LDFLAGS = list(kernel_cache.CFLAGS), list(kernel_cache.LDFLAGS)
_lock = threading.Lock()
_ext: ModuleType | None = None
_error: BaseException | None = None


def ext_name() -> str:
    """The extension's module name: ``distgnn_cpu_<hash of sources, flags and torch's build>``."""
    return kernel_cache.ext_name()


def cache_root() -> Path:
    """Where builds live (one sub-directory per extension name)."""
    return kernel_cache.cache_root()


def library_path() -> Path:
    """The shared library of the current sources (it may not exist yet)."""
    return kernel_cache.library_path()


def is_built() -> bool:
    """True if the current sources are already compiled in the cache (nothing to build)."""
    return library_path().is_file()


def load_extension() -> ModuleType:
    """Load the extension, compiling it first if the cache lacks it; raise DistGNNError if that fails."""
    global _ext, _error
    if _ext is not None:  # lock-free fast path
        return _ext
    with _lock:
        if _ext is not None:
            return _ext
        if _error is not None:
            raise DistGNNError(
                f"impl='cpu': the C++ extension failed to build: {_last_line(_error)}"
            ) from _error
        try:
            _ext = _import_cached() or _compile()
        except Exception as exc:  # a compiler or loader failure: remember it, report it on every request
            _error = exc
            raise DistGNNError(f"impl='cpu': the C++ extension failed to build: {_last_line(exc)}") from exc
        return _ext


@torch.compiler.assume_constant_result
def build_error() -> str:
    """Load (building if needed) the extension; the one-line reason it cannot, or "" if it loads.

    torch.compile calls this eagerly while tracing and keeps the result as a constant, so a first kernel
    call under torch.compile never traces the lock or the compiler invocation (Dynamo cannot).
    """
    try:
        load_extension()
    except DistGNNError as exc:
        return str(exc)
    return ""


def _import_cached() -> ModuleType | None:
    """Import the cached build directly; None if there is none or it does not import (then rebuild)."""
    path = library_path()
    if not path.is_file():
        return None
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. a build another process is still linking: let torch's lock decide
        log.debug("distgnn.kernels: cached %s did not import (%s); rebuilding", path, exc)
        return None
    return module


def _compile() -> ModuleType:
    path = library_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"distgnn.kernels: compiling the CPU kernels into {path.parent} (once per machine, ~1 min)...",
        file=sys.stderr,
        flush=True,
    )
    with quiet_cpp_extension():
        from torch.utils.cpp_extension import load

        return load(
            name=path.stem,
            sources=[str(s) for s in _SOURCES],
            extra_cflags=list(_CFLAGS),  # copies: load() appends to the lists it is given
            extra_ldflags=list(_LDFLAGS),
            build_directory=str(path.parent),
            verbose=False,
        )


class _DropNoCuda(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")


@contextlib.contextmanager
def quiet_cpp_extension() -> Iterator[None]:
    """Drop torch.utils.cpp_extension's "No CUDA runtime is found" warning: the CPU kernels need no CUDA."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    flt = _DropNoCuda()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def is_available() -> bool:
    """True if the extension builds and loads (builds it on first call)."""
    return not build_error()


def loaded() -> bool:
    """True once the extension is loaded in this process (no build, no lock)."""
    return _ext is not None


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


def dropout_bits(
    x: Tensor, seed: int, threshold: int, scale: float, relu: bool, bias: Tensor | None, keys: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``dropout`` and its keep mask as int64 bits, one word per 64 elements (csrc/dropout.cpp)."""
    k = None if keys is None else keys.to(torch.int64).contiguous()
    return tuple(load_extension().dropout_bits(x.contiguous(), seed, threshold, scale, relu, _f32(bias), k))


def masked_scale(grad: Tensor, bits: Tensor, scale: float) -> Tensor:
    return load_extension().masked_scale(grad.contiguous(), bits.contiguous(), scale)


def positive_scale(out: Tensor, grad: Tensor, scale: float) -> Tensor:
    return load_extension().positive_scale(out.contiguous(), grad.contiguous(), scale)
