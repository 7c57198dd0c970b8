"""Choosing an implementation: ``auto`` picks the fastest available one; an explicit request never falls back.

Order for ``auto``: CPU tensors -> ``cpu`` (C++ extension), then ``torch``; CUDA tensors -> ``triton``,
then ``torch`` (CSR ``sparse.mm``). ``reference`` is the last resort. ``DISTGNN_KERNEL_IMPL`` overrides
``auto`` and is then as strict as an explicit argument.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from types import ModuleType

import torch

from distgnn.errors import DistGNNError
from distgnn.kernels import isa

log = logging.getLogger("distgnn.kernels")

IMPLS = ("reference", "cpu", "triton", "torch")
ENV_VAR = "DISTGNN_KERNEL_IMPL"
_auto_logged: set[str] = set()
# Successful resolutions by (impl, device, the environment variables they read): each is a pure function
# of these once the CPU extension has loaded, and a changed variable is a different key. Only used while
# the extension is loaded (before, or after a failed build, every call resolves and logs as before);
# errors are not cached, so they are raised again on every call.
_resolved: dict[tuple, str] = {}


def triton_interpret() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def unavailable_reason(impl: str, device: torch.device) -> str | None:
    """Why ``impl`` cannot run on ``device`` (None if it can). Builds the CPU extension if asked about it."""
    if impl in ("reference", "torch"):
        return None
    if impl == "cpu":
        if device.type != "cpu":
            return f"impl='cpu' needs CPU tensors, got tensors on {device}"
        from distgnn.kernels import cpu  # imported on use: its import loads torch._dynamo (and Triton)

        error = cpu.build_error()  # compile-safe: torch.compile evaluates it eagerly while tracing
        if error:
            raise DistGNNError(error)
        return None
    if impl == "triton":
        if not _triton_importable():
            return "impl='triton' needs the triton package (pip install 'distgnn[triton]')"
        if device.type == "cuda":
            return None
        if device.type == "cpu" and triton_interpret():
            return None
        return (
            f"impl='triton' needs CUDA tensors (got {device}); set TRITON_INTERPRET=1 before importing "
            "triton to run it in the CPU interpreter"
        )
    raise DistGNNError(f"unknown kernel impl {impl!r}; choose one of auto, {', '.join(IMPLS)}")


def resolve(impl: str, device: torch.device) -> str:
    """The implementation to run for ``impl`` on ``device``; raises DistGNNError if it cannot run
    (including a ``DISTGNN_CPU_ISA`` this CPU cannot run, for CPU tensors). Eager calls are cached."""
    return memoized(("ops", impl), device, lambda: _resolve(impl, device))


def memoized(what: tuple, device: torch.device, choose: Callable[[], str]) -> str:
    """``choose()`` after the ``DISTGNN_CPU_ISA`` check (CPU tensors, eager only), cached under ``what``,
    ``device`` and the environment variables selection reads while the CPU extension is loaded."""
    if torch.compiler.is_compiling():
        return choose()
    from distgnn.kernels import cpu

    env = os.environ.get
    key = (*what, device, env(ENV_VAR), env(isa.ENV_VAR), env("TRITON_INTERPRET"))
    if cpu.loaded() and key in _resolved:
        return _resolved[key]
    if device.type == "cpu":
        isa.chosen()
    choice = choose()
    if cpu.loaded():
        _resolved[key] = choice
    return choice


def _resolve(impl: str, device: torch.device) -> str:
    if impl == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            return _explicit(env, device, source=f" (from {ENV_VAR}={env})")
        return _auto(device)
    return _explicit(impl, device, source="")


def _explicit(impl: str, device: torch.device, source: str) -> str:
    if impl not in IMPLS:
        raise DistGNNError(f"unknown kernel impl {impl!r}{source}; choose one of auto, {', '.join(IMPLS)}")
    reason = unavailable_reason(impl, device)
    if reason is not None:
        raise DistGNNError(reason)
    return impl


def _auto(device: torch.device) -> str:
    order = ["cpu", "torch"] if device.type == "cpu" else ["triton", "torch"]
    choice = "reference"
    for impl in order:
        try:
            if unavailable_reason(impl, device) is None:
                choice = impl
                break
        except DistGNNError as exc:
            log.warning("distgnn.kernels: %s; trying the next implementation", exc)
    if device.type not in _auto_logged:
        _auto_logged.add(device.type)
        log.info("distgnn.kernels: impl='auto' uses %r for %s tensors", choice, device.type)
    return choice


def backend(impl: str) -> ModuleType:
    """The module with the raw (non-autograd) kernels of ``impl`` (``reference`` runs outside the ops)."""
    if impl == "cpu":
        from distgnn.kernels import cpu

        return cpu
    if impl == "triton":
        from distgnn.kernels import triton_impl

        return triton_impl
    if impl == "torch":
        from distgnn.kernels import torch_impl

        return torch_impl
    raise DistGNNError(f"unknown kernel impl {impl!r}; choose one of auto, {', '.join(IMPLS)}")
