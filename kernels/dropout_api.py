"""Dropout with a counter-based mask: fast, deterministic per seed, no float mask kept for the backward.

``keep[i] = draw(seed, c_i) >= floor(p * 2^32)`` for each element's 64-bit counter ``c_i``: its flat index,
or with ``keys`` (one per row) ``keys[row] * width + col``. ``draw`` is word 0 of Philox4x32-10 with key
(seed lo, seed hi) and counter (c lo, c hi, 0, 0): what Triton's ``tl.randint(seed, c)`` returns for an int64
``c`` (csrc/philox.h). A pure function of (seed, counter), so the kernels are parallel and vectorised with
no generator state, the result does not depend on the thread count, and no N x F mask is stored: the
``cpu`` forward keeps the mask as bits (1/32 of a float32 input) for the backward, the others recompute
it from the seed.

The seed is ``seed`` when given, else one draw from torch's RNG (the global one, or ``generator``), so
``torch.manual_seed`` and a checkpointed RNG state keep runs reproducible. A shared ``seed`` with row
``keys`` = global node ids makes a node's mask independent of which process holds the row and where:
distributed training then draws exactly the masks single-process training draws.

Implementations: ``cpu`` (C++/OpenMP, csrc/dropout.cpp, every ISA entry point), ``triton`` (GPU, or the
CPU interpreter; kernels/triton_dropout.py), ``torch`` (the same Philox in torch integer ops, any device,
through the custom op) and ``reference`` (the same under torch autograd). All give bit-identical outputs
for one seed.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.kernels import ops, reference
from distgnn.kernels.select import ENV_VAR, IMPLS, memoized, resolve, unavailable_reason

log = logging.getLogger("distgnn.kernels")

_SEED_BOUND = 2**62
_CPU_DTYPES = (torch.float32, torch.bfloat16)
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_logged: set[str] = set()


def _log_once(key: str, msg: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        log.warning(msg, *args)


def _auto(device: torch.device, dtype: torch.dtype) -> str:
    """``cpu`` for float32/bfloat16 CPU tensors when the extension builds, ``triton`` for CUDA tensors when
    triton is installed, else ``torch`` (same masks)."""
    if device.type == "cuda" and dtype in _TRITON_DTYPES and unavailable_reason("triton", device) is None:
        return "triton"
    if device.type == "cpu" and dtype in _CPU_DTYPES:
        try:
            if unavailable_reason("cpu", device) is None:
                return "cpu"
        except DistGNNError as exc:
            _log_once("cpu", "distgnn.kernels: dropout %s; using impl='torch' (same masks)", exc)
    return "torch"


def resolve_dropout(impl: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The dropout implementation to run for ``impl``; an explicit request raises if it cannot run (so
    does a ``DISTGNN_CPU_ISA`` this CPU cannot run: an error, not a fallback). Eager calls are cached."""
    return memoized(("dropout", impl, dtype), device, lambda: _resolve_dropout(impl, device, dtype))


def _resolve_dropout(impl: str, device: torch.device, dtype: torch.dtype) -> str:
    if impl == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            return resolve(env, device)
        return _auto(device, dtype)
    if impl not in IMPLS:
        raise DistGNNError(f"unknown kernel impl {impl!r}; choose one of auto, {', '.join(IMPLS)}")
    return resolve(impl, device)


def dropout(
    x: Tensor,
    p: float,
    *,
    training: bool = True,
    relu: bool = False,
    bias: Tensor | None = None,
    seed: int | None = None,
    keys: Tensor | None = None,
    generator: torch.Generator | None = None,
    impl: str = "auto",
) -> Tensor:
    """``x * keep / (1 - p)``, ``keep ~ Bernoulli(1 - p)``; ``x`` itself if p == 0 or not training.

    ``bias`` (added along the last dimension) and ``relu`` are applied first, in the same pass: a layer's
    bias and activation and the next layer's input dropout cost one read and one write. ``seed``: the mask's
    seed (default: one draw from ``generator``, torch's global CPU RNG if None). ``keys``: int64 [rows] row
    counters for a 2-D ``x`` (or a 1-D ``x`` without bias), see the module docstring. Output is contiguous.
    """
    if not isinstance(x, Tensor):
        raise DistGNNError(f"dropout expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise DistGNNError(f"dropout input must be a floating-point tensor, got {x.dtype}")
    if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
        raise DistGNNError(f"dropout p must be in [0, 1), got {p}")
    impl = resolve_dropout(impl, x.device, x.dtype)
    if impl == "cpu" and x.dtype not in _CPU_DTYPES:
        raise DistGNNError(f"impl='cpu' supports float32 and bfloat16 x, got {x.dtype}")
    if impl == "triton" and x.dtype not in _TRITON_DTYPES:
        raise DistGNNError(f"impl='triton' supports float32, bfloat16 and float16 x, got {x.dtype}")
    if bias is not None and (
        not isinstance(bias, Tensor) or tuple(bias.shape) != tuple(x.shape[-1:]) or bias.device != x.device
    ):
        raise DistGNNError(f"dropout bias must be a tensor of shape {tuple(x.shape[-1:])} on {x.device}")
    if keys is not None:
        _check_keys(x, keys, bias)
    if seed is not None and not 0 <= seed < _SEED_BOUND:
        raise DistGNNError(f"dropout seed must be in [0, 2^62), got {seed}")
    if not training or p == 0.0:
        v = x if bias is None else x + bias
        return torch.relu(v) if relu else v
    if seed is None:
        device = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(0, _SEED_BOUND, (1,), generator=generator, device=device).item())
    threshold = int(float(p) * 4294967296.0)  # keep iff the 32-bit draw >= threshold
    scale = 1.0 / (1.0 - float(p))
    if impl == "reference":
        return reference.dropout(x, seed, threshold, scale, relu, bias, keys)
    # The C++ kernel hands a plain dropout's backward its keep bits (1/32 of float32 x): one pass, no draw.
    with_bits = impl == "cpu" and not relu and ops.dropout_needs_grad(x, bias)
    return ops.dropout(x.contiguous(), seed, threshold, scale, relu, bias, keys, impl, with_bits)


def _check_keys(x: Tensor, keys: Tensor, bias: Tensor | None) -> None:
    if not isinstance(keys, Tensor) or keys.dtype != torch.int64 or keys.dim() != 1:
        raise DistGNNError("dropout keys must be a 1-D int64 tensor (one counter per row)")
    if not (x.dim() == 2 or (x.dim() == 1 and bias is None)):
        raise DistGNNError(f"dropout keys need a 2-D x (or a 1-D x without bias), got shape {tuple(x.shape)}")
    if keys.shape[0] != x.shape[0] or keys.device != x.device:
        raise DistGNNError(f"dropout keys must have {x.shape[0]} entries on {x.device}, got {keys.shape[0]}")
